// Command dist builds a certfleet release (`make dist VERSION=x.y.z`): static, reproducible
// binaries for each target; one bundle per vendor plugin (certfleet, that plugin, a sample
// configuration, systemd units, man page, completions, README, SHA256SUMS) and a full bundle with
// every plugin; .deb and .rpm packages (nfpm); an SBOM per binary (cyclonedx-gomod); SHA256SUMS
// over all of it and, given a key, a minisign signature over SHA256SUMS.
//
// Every plugin under plugins/*/cmd/certfleet-plugin-* is bundled; it brings its vendor's sample
// configuration and README in plugins/<dir>/dist/. Nothing in the output depends on the checkout
// path, the clock or the user: the same commit gives the same bytes.
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/pluginhost"
)

const module = "github.com/certfleet/certfleet"

type options struct {
	version    string
	out        string
	targets    []string
	packages   bool
	nfpm       string
	sbomTool   string
	signingKey string
	minisign   string
	image      bool
	// imageTargets are the image's platforms (linux only); those not in targets are built for
	// the image alone, with no bundle or package.
	imageTargets []string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("dist: ")
	var o options
	var targets string
	flag.StringVar(&o.version, "version", "", "release version, e.g. 1.2.3 (required)")
	flag.StringVar(&o.out, "out", "dist", "output directory (emptied first)")
	flag.StringVar(&targets, "targets", "linux/amd64,linux/arm64,windows/amd64", "GOOS/GOARCH list")
	flag.BoolVar(&o.packages, "packages", true, "build .deb and .rpm for the linux targets")
	flag.BoolVar(&o.image, "image", true, "build the OCI image (an index of every linux target) as "+imageArchive("VERSION"))
	flag.StringVar(&o.nfpm, "nfpm", "nfpm", "nfpm binary")
	flag.StringVar(&o.sbomTool, "cyclonedx-gomod", "cyclonedx-gomod", "cyclonedx-gomod binary (empty: no SBOM)")
	flag.StringVar(&o.signingKey, "signing-key", "", "minisign secret key signing SHA256SUMS (empty: unsigned)")
	flag.StringVar(&o.minisign, "minisign", "minisign", "minisign binary")
	var imageTargets string
	flag.StringVar(&imageTargets, "image-targets", "", "the image's platforms, built for it alone when not in -targets (default: the linux ones of -targets)")
	flag.Parse()
	o.targets = strings.Split(targets, ",")
	if imageTargets != "" {
		o.imageTargets = strings.Split(imageTargets, ",")
	} else {
		for _, t := range o.targets {
			if strings.HasPrefix(t, "linux/") {
				o.imageTargets = append(o.imageTargets, t)
			}
		}
	}
	for _, t := range o.imageTargets {
		if !strings.HasPrefix(t, "linux/") {
			log.Fatalf("-image-targets %s: the image is for linux targets only", t)
		}
	}
	if o.version == "" || strings.ContainsAny(o.version, " /_") {
		log.Fatal("-version x.y.z is required (no spaces, slashes or underscores)")
	}
	if err := buildRelease(o); err != nil {
		log.Fatal(err)
	}
}

// vendor is one plugin with its bundle material.
type vendor struct {
	name   string // plugin name: certfleet-plugin-<name>
	pkg    string // its main package
	sample string // sample configuration
	readme string // README from install to first run
}

func discoverVendors() ([]vendor, error) {
	mains, err := filepath.Glob("plugins/*/cmd/" + "certfleet-plugin-*")
	if err != nil {
		return nil, err
	}
	sort.Strings(mains)
	var out []vendor
	var errs []error
	for _, m := range mains {
		dir := filepath.Dir(filepath.Dir(m))
		v := vendor{
			name:   strings.TrimPrefix(filepath.Base(m), "certfleet-plugin-"),
			pkg:    "./" + filepath.ToSlash(m),
			sample: filepath.Join(dir, "dist", "certfleet.yaml"),
			readme: filepath.Join(dir, "dist", "README.md"),
		}
		for _, f := range []string{v.sample, v.readme} {
			if _, err := os.Stat(f); err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: %s is missing: every bundled plugin brings a sample configuration and a README in %s/dist/", v.name, f, dir))
			}
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		errs = append(errs, errors.New("no plugins/*/cmd/certfleet-plugin-* found: run from the repository root"))
	}
	return out, errors.Join(errs...)
}

// commitTime is the time of HEAD (or SOURCE_DATE_EPOCH): the only time that goes into the output.
func commitTime() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	out, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time (git log): %w; set SOURCE_DATE_EPOCH outside a git checkout", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time: %q", out)
	}
	return time.Unix(n, 0).UTC(), nil
}

type release struct {
	options
	vendors []vendor
	mtime   time.Time
	// revision is the commit built (empty outside git), for the image's labels.
	revision string
	docs     docs
	sums     pluginhost.Checksums
	// imagePlatforms are the linux targets' files for the OCI image, built after every target.
	imagePlatforms []imagePlatform
}

// docs are the files generated from the CLI definition, the same for every target.
type docs struct{ man, bash, zsh, fish []byte }

func buildRelease(o options) error {
	vendors, err := discoverVendors()
	if err != nil {
		return err
	}
	mtime, err := commitTime()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(o.out); err != nil {
		return err
	}
	r := &release{options: o, vendors: vendors, mtime: mtime, sums: pluginhost.Checksums{}}
	if o.image {
		r.revision = commitRevision()
	}
	if err := r.generateDocs(); err != nil {
		return err
	}
	// The targets, then the image's platforms not among them: binaries only, for the image.
	builds := slices.Clone(o.targets)
	for _, t := range o.imageTargets {
		if o.image && !slices.Contains(builds, t) {
			builds = append(builds, t)
		}
	}
	for _, t := range builds {
		goos, goarch, ok := strings.Cut(t, "/")
		if !ok {
			return fmt.Errorf("-targets, -image-targets: %q is not GOOS/GOARCH", t)
		}
		if err := r.target(goos, goarch, slices.Contains(o.targets, t)); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	if err := r.ociImage(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "SHA256SUMS"), r.sums.Format(), 0o644); err != nil {
		return err
	}
	if o.signingKey != "" {
		if err := run(nil, o.minisign, "-S", "-s", o.signingKey, "-t", "certfleet "+o.version+" SHA256SUMS", "-m", filepath.Join(o.out, "SHA256SUMS")); err != nil {
			return fmt.Errorf("sign SHA256SUMS: %w", err)
		}
	} else {
		log.Print("no -signing-key: SHA256SUMS is not signed")
	}
	log.Printf("release %s in %s (%d files, commit time %s)", o.version, o.out, len(r.sums), mtime.Format(time.RFC3339))
	return nil
}

func run(env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// ldflags stamp the release version into the core and (through the SDK) every plugin; -buildid=
// and -trimpath keep the checkout path and build ids out of the binaries.
func (r *release) goBuild(goos, goarch, outDir string, pkgs ...string) error {
	ldflags := fmt.Sprintf("-s -w -buildid= -X main.version=%s -X %s/plugins/sdk.releaseVersion=%s", r.version, module, r.version)
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", outDir + string(filepath.Separator)}, pkgs...)
	return run([]string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch, "GOFLAGS=-mod=readonly"}, "go", args...)
}

// generateDocs runs a certfleet built for this machine to print its man page and completions.
func (r *release) generateDocs() error {
	tmp, err := os.MkdirTemp("", "certfleet-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := r.goBuild(runtime.GOOS, runtime.GOARCH, tmp, "./cmd/certfleet"); err != nil {
		return err
	}
	self := filepath.Join(tmp, "certfleet")
	gen := func(args ...string) ([]byte, error) {
		out, err := exec.Command(self, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("certfleet %s: %w", strings.Join(args, " "), err)
		}
		return out, nil
	}
	var errs [4]error
	r.docs.man, errs[0] = gen("man")
	r.docs.bash, errs[1] = gen("completion", "bash")
	r.docs.zsh, errs[2] = gen("completion", "zsh")
	r.docs.fish, errs[3] = gen("completion", "fish")
	return errors.Join(errs[:]...)
}

// file is one entry of a bundle.
type file struct {
	name string // slash path inside the bundle
	data []byte
	exec bool
}

func (r *release) target(goos, goarch string, bundles bool) error {
	binDir := filepath.Join(r.out, ".build", goos+"_"+goarch) // binaries before bundling; not part of the release
	pkgs := []string{"./cmd/certfleet", "./cmd/certfleet-sops"}
	for _, v := range r.vendors {
		pkgs = append(pkgs, v.pkg)
	}
	start := time.Now()
	if err := r.goBuild(goos, goarch, binDir, pkgs...); err != nil {
		return err
	}
	log.Printf("%s/%s: built %d binaries in %s", goos, goarch, len(pkgs), time.Since(start).Round(time.Second))
	exe := ""
	if goos == "windows" {
		exe = ".exe"
	}
	read := func(name string) (file, error) {
		data, err := os.ReadFile(filepath.Join(binDir, name+exe))
		return file{name: name + exe, data: data, exec: true}, err
	}
	// The core is certfleet and its sops helper, which it finds beside itself.
	var core []file
	for _, name := range []string{"certfleet", "certfleet-sops"} {
		f, err := read(name)
		if err != nil {
			return err
		}
		core = append(core, f)
	}
	var all []file
	for _, v := range r.vendors {
		plugin, err := read("certfleet-plugin-" + v.name)
		if err != nil {
			return err
		}
		all = append(all, plugin)
	}
	if bundles {
		if err := r.bundles(goos, goarch, binDir, core, all); err != nil {
			return err
		}
	}
	inImage := r.image && slices.Contains(r.imageTargets, goos+"/"+goarch)
	if goos != "linux" || !(inImage || bundles && r.packages) {
		return nil
	}
	installed, err := r.fhsFiles(binDir, all)
	if err != nil {
		return err
	}
	if inImage {
		r.imagePlatforms = append(r.imagePlatforms, imagePlatform{arch: goarch, files: installed})
	}
	if bundles && r.packages {
		return r.linuxPackages(goarch, binDir, installed)
	}
	return nil
}

// bundles writes a target's per-vendor bundles, its full bundle and the binaries' SBOMs.
func (r *release) bundles(goos, goarch, binDir string, core, plugins []file) error {
	common, err := r.commonFiles(goos)
	if err != nil {
		return err
	}
	for i, v := range r.vendors {
		sample, err1 := os.ReadFile(v.sample)
		readme, err2 := os.ReadFile(v.readme)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		files := append(slices.Concat(core, []file{plugins[i], {name: "certfleet.yaml", data: sample}, {name: "README.md", data: readme}}), common...)
		if err := r.bundle(fmt.Sprintf("certfleet-%s_%s_%s_%s", v.name, r.version, goos, goarch), goos, files); err != nil {
			return err
		}
	}
	sample, err1 := os.ReadFile("examples/certfleet.yaml")
	readme, err2 := os.ReadFile("README.md")
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	full := slices.Concat(core, plugins, []file{{name: "certfleet.yaml", data: sample}, {name: "README.md", data: readme}}, common)
	// certfleet.yaml is the annotated reference of every field (its devices use the pemdir
	// example plugin, which is not shipped); each vendor's own sample, which validates against
	// the shipped plugins, comes beside it.
	vendorSamples, err := r.vendorSamples()
	if err != nil {
		return err
	}
	for _, vs := range vendorSamples {
		full = append(full, file{name: "samples/" + vs.name, data: vs.data})
	}
	if err := r.bundle(fmt.Sprintf("certfleet_%s_%s_%s", r.version, goos, goarch), goos, full); err != nil {
		return err
	}
	if r.sbomTool != "" {
		for _, f := range slices.Concat(core, plugins) {
			if err := r.sbom(binDir, f.name, goos, goarch); err != nil {
				return err
			}
		}
	}
	return nil
}

// systemdUnits (examples/systemd) go into every Linux bundle and package; they run as the user
// certfleet, which the packages' postinstall creates.
var systemdUnits = []string{"certfleet.service", "certfleet.timer", "certfleet-daemon.service"}

// commonFiles are in every bundle: the docs generated from the CLI, systemd units, the licence.
func (r *release) commonFiles(goos string) ([]file, error) {
	files := []file{{name: "man/certfleet.1", data: r.docs.man}}
	if goos != "windows" {
		files = append(files,
			file{name: "completions/certfleet.bash", data: r.docs.bash},
			file{name: "completions/_certfleet", data: r.docs.zsh},
			file{name: "completions/certfleet.fish", data: r.docs.fish})
		for _, unit := range systemdUnits {
			data, err := os.ReadFile(filepath.Join("examples", "systemd", unit))
			if err != nil {
				return nil, err
			}
			files = append(files, file{name: "systemd/" + unit, data: data})
		}
	}
	if data, err := os.ReadFile("LICENSE"); err == nil {
		files = append(files, file{name: "LICENSE", data: data})
	} else {
		log.Printf("warning: no LICENSE at the repository root; bundles ship without one")
	}
	return files, nil
}

// bundle writes <name>.tar.gz (.zip for Windows): a top directory <name>/ holding the files and
// a SHA256SUMS over them, which `certfleet plugins install` checks and pins from.
func (r *release) bundle(name, goos string, files []file) error {
	sums := pluginhost.Checksums{}
	for _, f := range files {
		sums[f.name] = sha256Hex(f.data)
	}
	files = append(files, file{name: pluginhost.ChecksumsFile, data: sums.Format()})
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	var err error
	archive := name + ".tar.gz"
	if goos == "windows" {
		archive = name + ".zip"
		err = r.writeZip(&buf, name, files)
	} else {
		err = r.writeTarGz(&buf, name, files)
	}
	if err != nil {
		return err
	}
	return r.emit(archive, buf.Bytes())
}

// emit writes a release file and records its checksum.
func (r *release) emit(name string, data []byte) error {
	full := filepath.Join(r.out, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		return err
	}
	r.sums[name] = sha256Hex(data)
	log.Printf("%-60s %6.1f MB", name, float64(len(data))/1e6)
	return nil
}

func dirsOf(files []file) []string {
	seen := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			seen[d] = true
		}
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

func (r *release) writeTarGz(w io.Writer, top string, files []file) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression) // no name, no mtime in the header
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: r.mtime,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	entries := []*tar.Header{hdr(top+"/", 0o755, tar.TypeDir, 0)}
	for _, d := range dirsOf(files) {
		entries = append(entries, hdr(top+"/"+d+"/", 0o755, tar.TypeDir, 0))
	}
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	for _, f := range files {
		mode := int64(0o644)
		if f.exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(hdr(top+"/"+f.name, mode, tar.TypeReg, int64(len(f.data)))); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func (r *release) writeZip(w io.Writer, top string, files []file) error {
	zw := zip.NewWriter(w)
	for _, f := range files {
		mode := fs.FileMode(0o644)
		if f.exec {
			mode = 0o755
		}
		h := &zip.FileHeader{Name: top + "/" + f.name, Method: zip.Deflate, Modified: r.mtime}
		h.SetMode(mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// sbom writes a CycloneDX SBOM of one binary, from the module list the Go toolchain embedded in it.
func (r *release) sbom(binDir, binary, goos, goarch string) error {
	name := fmt.Sprintf("%s_%s_%s_%s.cdx.json", strings.TrimSuffix(binary, ".exe"), r.version, goos, goarch)
	tmp := filepath.Join(binDir, name)
	if err := run(nil, r.sbomTool, "bin", "-json", "-noserial", "-notimestamp", "-version", "v"+r.version, "-output", tmp, filepath.Join(binDir, binary)); err != nil {
		return err
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	return r.emit(filepath.ToSlash(filepath.Join("sbom", name)), data)
}

// installed is a file as the .deb, the .rpm and the OCI image install it.
type installed struct {
	dst    string // absolute path on the system
	data   []byte
	mode   os.FileMode
	config bool // the administrator's to change: kept on upgrade
}

// fhsFiles are the full bundle's files in their FHS places: what the packages and the image install.
func (r *release) fhsFiles(binDir string, plugins []file) ([]installed, error) {
	var man bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&man, gzip.BestCompression)
	zw.Write(r.docs.man)
	zw.Close()
	core, err1 := os.ReadFile(filepath.Join(binDir, "certfleet"))
	sopsHelper, err2 := os.ReadFile(filepath.Join(binDir, "certfleet-sops"))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	// certfleet looks for its sops helper beside itself, then at /usr/lib/certfleet (core/secret).
	files := []installed{{dst: "/usr/bin/certfleet", data: core, mode: 0o755}, {dst: "/usr/lib/certfleet/certfleet-sops", data: sopsHelper, mode: 0o755}}
	sums := pluginhost.Checksums{}
	for _, p := range plugins {
		sums[p.name] = sha256Hex(p.data)
		files = append(files, installed{dst: pluginDir + "/" + p.name, data: p.data, mode: 0o755})
	}
	// The plugins' checksums travel with them: the postinstall script pins from this file.
	files = append(files,
		installed{dst: pluginDir + "/SHA256SUMS", data: sums.Format(), mode: 0o644},
		installed{dst: "/usr/share/man/man1/certfleet.1.gz", data: man.Bytes(), mode: 0o644},
		installed{dst: "/usr/share/bash-completion/completions/certfleet", data: r.docs.bash, mode: 0o644},
		installed{dst: "/usr/share/zsh/vendor-completions/_certfleet", data: r.docs.zsh, mode: 0o644},
		installed{dst: "/usr/share/fish/vendor_completions.d/certfleet.fish", data: r.docs.fish, mode: 0o644})
	var errs []error
	for _, unit := range systemdUnits {
		data, err := os.ReadFile(filepath.Join("examples", "systemd", unit))
		errs = append(errs, err)
		files = append(files, installed{dst: "/usr/lib/systemd/system/" + unit, data: data, mode: 0o644})
	}
	sample, err := os.ReadFile("examples/certfleet.yaml")
	errs = append(errs, err)
	readme, err := os.ReadFile("README.md")
	errs = append(errs, err)
	vendorSamples, err := r.vendorSamples()
	errs = append(errs, err)
	for _, vs := range vendorSamples {
		files = append(files, installed{dst: "/usr/share/doc/certfleet/samples/" + vs.name, data: vs.data, mode: 0o644})
	}
	files = append(files,
		installed{dst: "/etc/certfleet/certfleet.yaml.sample", data: sample, mode: 0o640, config: true},
		installed{dst: "/usr/share/doc/certfleet/README.md", data: readme, mode: 0o644})
	if lic, err := os.ReadFile("LICENSE"); err == nil {
		files = append(files, installed{dst: "/usr/share/doc/certfleet/LICENSE", data: lic, mode: 0o644})
	}
	return files, errors.Join(errs...)
}

// vendorSamples are the bundled plugins' sample configurations, named <plugin>.yaml.
func (r *release) vendorSamples() ([]file, error) {
	var out []file
	for _, v := range r.vendors {
		data, err := os.ReadFile(v.sample)
		if err != nil {
			return nil, err
		}
		out = append(out, file{name: v.name + ".yaml", data: data})
	}
	return out, nil
}

// pluginDir is where the packages and the image install the plugins.
const pluginDir = "/usr/lib/certfleet/plugins"

// linuxPackages builds the .deb and .rpm: the same files in FHS places, plugins pinned on install.
func (r *release) linuxPackages(goarch, binDir string, files []installed) error {
	stage := filepath.Join(binDir, "pkg")
	type content struct{ src, dst, typ, mode string }
	var contents []content
	for _, f := range files {
		src, err := filepath.Abs(filepath.Join(stage, filepath.FromSlash(f.dst)))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(src, f.data, f.mode); err != nil {
			return err
		}
		typ := ""
		if f.config {
			typ = "config|noreplace"
		}
		contents = append(contents, content{src, f.dst, typ, fmt.Sprintf("0%o", f.mode)})
	}
	postinstall, _ := filepath.Abs(filepath.Join("packaging", "postinstall.sh"))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `name: certfleet
arch: %s
platform: linux
version: %s
release: "1"
section: admin
priority: optional
maintainer: certfleet maintainers <certfleet@localhost>
description: |
  certfleet keeps TLS certificates alive on network appliances (Citrix ADC / NetScaler,
  Palo Alto PAN-OS, F5 BIG-IP): on-device keys and CSRs, Sectigo SCM or ACME, install, bind,
  commit, renew. With every device plugin.
homepage: https://github.com/certfleet/certfleet
mtime: %s
umask: 0o022
scripts:
  postinstall: %s
contents:
  - dst: /var/lib/certfleet
    type: dir
    file_info: {mode: 0700}
  - dst: /etc/certfleet
    type: dir
    file_info: {mode: 0750}
  - dst: /var/log/certfleet
    type: dir
    file_info: {mode: 0750}
`, goarch, r.version, r.mtime.Format(time.RFC3339), postinstall)
	for _, c := range contents {
		fmt.Fprintf(&cfg, "  - src: %s\n    dst: %s\n    file_info: {mode: %s}\n", c.src, c.dst, c.mode)
		if c.typ != "" {
			fmt.Fprintf(&cfg, "    type: %s\n", c.typ)
		}
	}
	cfgPath := filepath.Join(stage, "nfpm.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return err
	}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(r.mtime.Unix(), 10)}
	for _, p := range []struct{ packager, file string }{
		{"deb", fmt.Sprintf("certfleet_%s_%s.deb", r.version, goarch)},
		{"rpm", fmt.Sprintf("certfleet-%s-1.%s.rpm", r.version, rpmArch(goarch))},
	} {
		target := filepath.Join(stage, p.file)
		if err := run(env, r.nfpm, "package", "--config", cfgPath, "--packager", p.packager, "--target", target); err != nil {
			return err
		}
		data, err := os.ReadFile(target)
		if err != nil {
			return err
		}
		if err := r.emit(p.file, data); err != nil {
			return err
		}
	}
	return nil
}

func rpmArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
