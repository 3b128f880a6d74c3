package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
	"time"
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
