package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// A plugin merged without its bundle material would break `make dist`; this says so at `make test`.
func TestEveryPluginBringsItsBundleFiles(t *testing.T) {
	wd, _ := os.Getwd()
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	vendors, err := discoverVendors()
	if err != nil {
		t.Fatal(err)
	}
	if len(vendors) < 3 {
		t.Fatalf("found %d plugins: %+v", len(vendors), vendors)
	}
}

func TestBundleArchivesAreReproducible(t *testing.T) {
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &release{mtime: mtime}
	files := []file{{name: "certfleet", data: []byte("core"), exec: true}, {name: "man/certfleet.1", data: []byte("man")}}
	var a, b bytes.Buffer
	if err := r.writeTarGz(&a, "top", files); err != nil {
		t.Fatal(err)
	}
	if err := r.writeTarGz(&b, "top", files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same files differ")
	}
	zr, err := gzip.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q / time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
			t.Errorf("%s: mtime %v uid %d gid %d %s/%s; want the commit time and root", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if want := int64(0o644); h.Name == "top/man/certfleet.1" && h.Mode != want {
			t.Errorf("%s mode %o", h.Name, h.Mode)
		}
		if h.Name == "top/certfleet" && h.Mode != 0o755 {
			t.Errorf("%s mode %o", h.Name, h.Mode)
		}
	}
	want := []string{"top/", "top/man/", "top/certfleet", "top/man/certfleet.1"}
	if len(names) != len(want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %v, want %v", names, want)
		}
	}
}

// The image of the same files is the same bytes wherever it is built; it holds one manifest per
// platform, runs as the non-root user, owns only its state and log directories, and pins exactly
// the plugins it ships.
func TestImageIsReproducibleAndRunsAsItsUser(t *testing.T) {
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	platforms := []imagePlatform{}
	for _, arch := range []string{"amd64", "arm64"} {
		platforms = append(platforms, imagePlatform{arch: arch, files: []installed{
			{dst: "/usr/bin/certfleet", data: []byte("core-" + arch), mode: 0o755},
			{dst: pluginDir + "/certfleet-plugin-demo", data: []byte("plugin-" + arch), mode: 0o755},
			{dst: pluginDir + "/SHA256SUMS", data: []byte("sums"), mode: 0o644},
			{dst: "/etc/certfleet/certfleet.yaml.sample", data: []byte("version: v1\n"), mode: 0o640, config: true},
		}})
	}
	build := func() []byte {
		r := &release{options: options{version: "1.2.3", out: t.TempDir()}, mtime: mtime, revision: "0123abc", sums: pluginhost.Checksums{}, imagePlatforms: platforms}
		if err := r.ociImage(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(r.out, imageArchive("1.2.3")))
		if err != nil {
			t.Fatal(err)
		}
		if r.sums[imageArchive("1.2.3")] != sha256Hex(data) {
			t.Error("the image is not in SHA256SUMS")
		}
		return data
	}
	a, b := build(), build()
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same image differ")
	}

	dir := t.TempDir()
	cmd := exec.Command("tar", "-xf", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(a)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 {
		t.Fatalf("index.json: %v %+v", err, tm)
	}
	if got := tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "1.2.3" {
		t.Errorf("ref.name %q", got)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.String() != "linux/amd64" || im.Manifests[1].Platform.String() != "linux/arm64" {
		t.Fatalf("platforms: %+v", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Architecture != "arm64" || !cfg.Created.Time.Equal(mtime) ||
		cfg.Config.Labels["org.opencontainers.image.version"] != "1.2.3" || cfg.Config.Labels["org.opencontainers.image.revision"] != "0123abc" || cfg.Config.Labels["org.opencontainers.image.created"] != "2026-01-02T03:04:05Z" {
		t.Errorf("config: %+v created %v", cfg.Config, cfg.Created)
	}
	if _, ok := cfg.Config.Labels["org.opencontainers.image.licenses"]; ok {
		t.Error("a licenses label without a licence")
	}
	owners := map[string]string{}
	var pins []byte
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		owners[strings.TrimSuffix(h.Name, "/")] = fmt.Sprintf("%d:%d %o", h.Uid, h.Gid, h.Mode)
		if h.Name == strings.TrimPrefix(imagePins, "/") {
			pins, _ = io.ReadAll(tr)
		}
	}
	for name, want := range map[string]string{
		"var/lib/certfleet":                   "65532:65532 700",
		"var/log/certfleet":                   "65532:65532 750",
		"etc/certfleet":                       "0:65532 750",
		"etc/certfleet/certfleet.yaml.sample": "0:65532 640",
		"usr/bin/certfleet":                   "0:0 755",
		"usr/lib/certfleet/plugins":           "0:0 755",
		"tmp":                                 "0:0 1777",
		"etc/passwd":                          "0:0 644",
		strings.TrimPrefix(imagePins, "/"):    "0:0 644",
	} {
		if owners[name] != want {
			t.Errorf("%s: %q, want %q", name, owners[name], want)
		}
	}
	if want := sha256Hex([]byte("plugin-arm64")); !bytes.Contains(pins, []byte(`"demo"`)) || !bytes.Contains(pins, []byte(want)) || bytes.Contains(pins, []byte("SHA256SUMS")) {
		t.Errorf("pins file does not pin exactly the demo plugin (%s): %s", want, pins)
	}
}
