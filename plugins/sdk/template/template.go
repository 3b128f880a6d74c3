// Package template writes a new device plugin from the template in skeleton/: a compilable
// plugin, a simulator skeleton and a conformance test that pass `go test` as written. `certfleet
// plugins new` calls it.
package template

import (
	"embed"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed skeleton
var skeleton embed.FS

// templateModule is the template's import path inside certfleet.
const templateModule = "github.com/certfleet/certfleet/plugins/sdk/template/skeleton"

// sdkModule is the module a generated plugin requires.
const sdkModule = "github.com/certfleet/certfleet"

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)

// Options say what to write.
type Options struct {
	// Name of the plugin: the binary is certfleet-plugin-<Name>.
	Name string
	// Module is the new plugin's Go module path, e.g. example.com/acme/certfleet-plugin-acme. A
	// path inside certfleet's own module (github.com/certfleet/certfleet/plugins/acme) writes the
	// plugin as a package of that module, with no go.mod.
	Module string
	// Dir is where to write it; it must not exist or be empty.
	Dir string
	// SDKDir, when set, is a local certfleet checkout the go.mod replaces the SDK module with.
	SDKDir string
	// GoVersion for the go directive.
	GoVersion string
}

// Generate writes the plugin and returns the files written, relative to Dir.
func Generate(o Options) ([]string, error) {
	if !validName.MatchString(o.Name) || o.Name == "skeleton" {
		return nil, fmt.Errorf("plugin name %q: use 3 to 40 lower-case letters, digits and dashes, starting with a letter (e.g. acme-adc)", o.Name)
	}
	if o.Module == "" || strings.ContainsAny(o.Module, " \t\n\\") {
		return nil, fmt.Errorf("module path %q: give the new plugin's Go module path, e.g. example.com/you/certfleet-plugin-%s", o.Module, o.Name)
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("directory %s is not empty: choose a new directory", o.Dir)
	}
	pkg := strings.ReplaceAll(o.Name, "-", "")
	replacer := strings.NewReplacer(
		// The import in main.go names the package: a module path ending in a dashed name
		// (plugins/acme-lb) would otherwise import a package whose name readers cannot see.
		"\tskeleton \"", "\t"+pkg+" \"",
		templateModule, o.Module,
		"certfleet-plugin-skeleton", "certfleet-plugin-"+o.Name,
		"skeletonsim", pkg+"sim",
		`Name: "skeleton"`, `Name: "`+o.Name+`"`,
		"package skeleton", "package "+pkg,
		"Package skeleton ", "Package "+pkg+" ",
		"skeleton.", pkg+".",
		"skeleton rollback token", o.Name+" rollback token",
	)
	var written []string
	err := fs.WalkDir(skeleton, "skeleton", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := skeleton.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "skeleton/")
		rel = strings.NewReplacer("skeletonsim", pkg+"sim", "certfleet-plugin-skeleton", "certfleet-plugin-"+o.Name).Replace(rel)
		out := []byte(replacer.Replace(string(data)))
		if strings.HasSuffix(rel, ".go") {
			// Renaming moves imports out of order; gofmt puts them back.
			if out, err = format.Source(out); err != nil {
				return fmt.Errorf("template file %s: %w", rel, err)
			}
		}
		if err := write(o.Dir, rel, out); err != nil {
			return err
		}
		written = append(written, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write the template: %w", err)
	}
	if inTree(o.Module) {
		// Inside certfleet's own module (plugins/<name>): a go.mod of its own would cut the
		// plugin out of the module, so `go build ./...`, `make build` and the tests would miss it.
		return written, nil
	}
	goVersion := o.GoVersion
	if goVersion == "" {
		goVersion = "1.24"
	}
	mod := fmt.Sprintf("module %s\n\ngo %s\n\nrequire %s v0.0.0\n", o.Module, goVersion, sdkModule)
	if o.SDKDir != "" {
		abs, err := filepath.Abs(o.SDKDir)
		if err != nil {
			return nil, err
		}
		mod += fmt.Sprintf("\nreplace %s => %s\n", sdkModule, abs)
	}
	if err := write(o.Dir, "go.mod", []byte(mod)); err != nil {
		return nil, err
	}
	return append(written, "go.mod"), nil
}

// inTree reports whether module is a package path inside certfleet's module.
func inTree(module string) bool { return strings.HasPrefix(module, sdkModule+"/") }

func write(dir, rel string, data []byte) error {
	full := filepath.Join(dir, filepath.FromSlash(path.Clean(rel)))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, data, 0o644)
}
