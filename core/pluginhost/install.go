package pluginhost

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/core/atomicfile"
)

// Installed is one plugin binary installed from a bundle and pinned.
type Installed struct {
	Name   string
	Path   string
	SHA256 string
	// Shadowed names the binary the host would run instead, when one comes earlier in the search
	// path than the installed one; the pin then refuses it until that binary is removed.
	Shadowed string
}

// Install checks every file a bundle directory's SHA256SUMS lists, copies each plugin binary it
// lists into destDir and pins each one to the checksum SHA256SUMS gives. Nothing is installed or
// pinned unless the whole bundle checks out. Pins of other plugins are left as they are.
func (h *Host) Install(bundleDir, destDir string) ([]Installed, error) {
	sums, err := ReadChecksums(filepath.Join(bundleDir, ChecksumsFile))
	if err != nil {
		return nil, err
	}
	if err := sums.Verify(bundleDir); err != nil {
		return nil, err
	}
	type candidate struct{ name, rel, sum string }
	var found []candidate
	for rel, sum := range sums {
		if name, ok := PluginName(path.Base(rel)); ok {
			found = append(found, candidate{name, rel, sum})
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%s lists no %s binary for this system; is this a certfleet bundle for %s?",
			filepath.Join(bundleDir, ChecksumsFile), BinaryName("<name>"), exeSuffixOS())
	}
	sort.Slice(found, func(i, j int) bool { return found[i].rel < found[j].rel })
	seen := map[string]string{}
	for _, c := range found {
		if prev, dup := seen[c.name]; dup {
			return nil, fmt.Errorf("%s lists plugin %s twice (%s and %s)", ChecksumsFile, c.name, prev, c.rel)
		}
		seen[c.name] = c.rel
	}
	var out []Installed
	for _, c := range found {
		data, err := os.ReadFile(filepath.Join(bundleDir, filepath.FromSlash(c.rel)))
		if err != nil {
			return out, fmt.Errorf("install plugin %s: %w", c.name, err)
		}
		// The file was verified above; checking the bytes actually copied closes the gap between.
		if got := sumBytes(data); got != c.sum {
			return out, fmt.Errorf("install plugin %s: %s changed while being installed (sha256 %s, %s says %s)", c.name, c.rel, got, ChecksumsFile, c.sum)
		}
		dest := filepath.Join(destDir, BinaryName(c.name))
		if abs, err := filepath.Abs(dest); err == nil {
			dest = abs
		}
		// A directory that already is a plugin directory (a package's, an unpacked bundle run in
		// place) has its plugins pinned where they are.
		if !sameFile(filepath.Join(bundleDir, filepath.FromSlash(c.rel)), dest) {
			if err := atomicfile.Write(dest, data, 0o755); err != nil {
				return out, fmt.Errorf("install plugin %s: %w", c.name, err)
			}
		}
		if h.pins != nil {
			if err := h.pins.set(c.name, dest, c.sum); err != nil {
				return out, fmt.Errorf("pin plugin %s: %w", c.name, err)
			}
		}
		inst := Installed{Name: c.name, Path: dest, SHA256: c.sum}
		if first, err := h.find(c.name); err == nil && first != dest {
			inst.Shadowed = first
		} else if err != nil {
			inst.Shadowed = "(not on the plugin search path)"
		}
		out = append(out, inst)
	}
	return out, nil
}

func exeSuffixOS() string {
	if exeSuffix != "" {
		return "Windows"
	}
	return "this OS"
}

// maxBundleFile bounds each file unpacked from a bundle archive (a plugin binary is ~30 MB).
const maxBundleFile = 512 << 20

// UnpackBundle unpacks a .tar.gz bundle into dir and returns the directory that holds its
// SHA256SUMS (the archive's single top directory, or dir). Only regular files and directories are
// unpacked, and only below dir.
func UnpackBundle(archive, dir string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", fmt.Errorf("open bundle: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("bundle %s is not a .tar.gz: %w", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read bundle %s: %w", archive, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if err := checkRelative(name); err != nil {
			return "", fmt.Errorf("bundle %s: %w", archive, err)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return "", err
			}
		case tar.TypeReg:
			if hdr.Size > maxBundleFile {
				return "", fmt.Errorf("bundle %s: %s is %d bytes, more than a bundle file can be", archive, name, hdr.Size)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return "", err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(hdr.Mode).Perm()&0o755)
			if err != nil {
				return "", fmt.Errorf("unpack %s: %w", name, err)
			}
			_, err = io.Copy(out, io.LimitReader(tr, maxBundleFile))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("unpack %s: %w", name, err)
			}
		default:
			return "", fmt.Errorf("bundle %s: %s is neither a file nor a directory (type %q); refusing it", archive, name, hdr.Typeflag)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ChecksumsFile)); err == nil {
		return dir, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(entries) == 1 && entries[0].IsDir() {
		top := filepath.Join(dir, entries[0].Name())
		if _, err := os.Stat(filepath.Join(top, ChecksumsFile)); err == nil {
			return top, nil
		}
	}
	return "", fmt.Errorf("bundle %s has no %s at its top; it is not a certfleet bundle", archive, ChecksumsFile)
}

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
