package pluginhost

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// bundleDir makes a bundle directory like `make dist` does: the pemdir plugin (with extra bytes
// appended, to stand for another release of it), a sample file and SHA256SUMS over both.
func bundleDir(t *testing.T, release string) (dir, pluginSum string) {
	t.Helper()
	dir = t.TempDir()
	bin, err := os.ReadFile(pemdirBinary)
	if err != nil {
		t.Fatal(err)
	}
	bin = append(bin, []byte(release)...)
	sample := []byte("version: v1\n")
	for name, data := range map[string][]byte{"certfleet-plugin-pemdir": bin, "certfleet.yaml": sample} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sums := Checksums{"certfleet-plugin-pemdir": sumBytes(bin), "certfleet.yaml": sumBytes(sample)}
	if err := os.WriteFile(filepath.Join(dir, ChecksumsFile), sums.Format(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, sumBytes(bin)
}

func readPins(t *testing.T, path string) map[string]Pin {
	t.Helper()
	var pf pinFile
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		t.Fatal(err)
	}
	return pf.Plugins
}

func newHost(t *testing.T, dir, pins string, lookOnly bool) *Host {
	t.Helper()
	h := New(Options{Dirs: []string{dir}, SkipPATH: true, PinsFile: pins, NoPinOnFirstUse: lookOnly})
	t.Cleanup(h.Close)
	return h
}

func TestInstallPinsFromTheBundleChecksums(t *testing.T) {
	src, sum := bundleDir(t, "v1")
	dest, pins := t.TempDir(), filepath.Join(t.TempDir(), "plugins.lock.json")
	h := newHost(t, dest, pins, false)
	installed, err := h.Install(src, dest)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dest, "certfleet-plugin-pemdir")
	if len(installed) != 1 || installed[0].Name != "pemdir" || installed[0].Path != want || installed[0].SHA256 != sum || installed[0].Shadowed != "" {
		t.Fatalf("installed %+v; want pemdir at %s with %s", installed, want, sum)
	}
	if got := readPins(t, pins)["pemdir"]; got.SHA256 != sum || got.Path != want {
		t.Fatalf("pin %+v; want %s at %s (from SHA256SUMS)", got, sum, want)
	}
	if st, err := os.Stat(want); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", st, err)
	}
	p, _ := h.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatalf("installed plugin does not start: %v", err)
	}
}

func TestInstallRefusesADamagedBundleAndInstallsNothing(t *testing.T) {
	src, _ := bundleDir(t, "v1")
	// One byte of the sample differs from what SHA256SUMS says: the whole bundle is refused.
	if err := os.WriteFile(filepath.Join(src, "certfleet.yaml"), []byte("version: v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest, pins := t.TempDir(), filepath.Join(t.TempDir(), "plugins.lock.json")
	_, err := newHost(t, dest, pins, false).Install(src, dest)
	if err == nil || !strings.Contains(err.Error(), "certfleet.yaml: sha256") || !strings.Contains(err.Error(), "download it again") {
		t.Fatalf("damaged bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "certfleet-plugin-pemdir")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a plugin was installed from a damaged bundle")
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Error("pins were written for a damaged bundle")
	}
}

// The upgrade path: v1 installed and running, v2 (a changed plugin) installed over it. The host
// starts v2 without a refusal and the pin follows the bundle; replacing the binary by hand is refused.
func TestUpgradeByInstallingTheNextBundle(t *testing.T) {
	v1, sum1 := bundleDir(t, "v1")
	v2, sum2 := bundleDir(t, "v2")
	if sum1 == sum2 {
		t.Fatal("test bundles must differ")
	}
	dest, pins := t.TempDir(), filepath.Join(t.TempDir(), "plugins.lock.json")
	h := newHost(t, dest, pins, false)
	if _, err := h.Install(v1, dest); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	h.Close()

	// By hand: refused, as it must be.
	copyFile(t, filepath.Join(v2, "certfleet-plugin-pemdir"), filepath.Join(dest, "certfleet-plugin-pemdir"))
	p, _ = newHost(t, dest, pins, false).Plugin("pemdir")
	var cerr *ChecksumError
	if _, err := p.Info(ctxTimeout(t, time.Minute)); !errors.As(err, &cerr) {
		t.Fatalf("a hand-copied binary: %v, want a ChecksumError", err)
	}

	// With the bundle: verified, pinned, started.
	h2 := newHost(t, dest, pins, false)
	if _, err := h2.Install(v2, dest); err != nil {
		t.Fatal(err)
	}
	if got := readPins(t, pins)["pemdir"].SHA256; got != sum2 {
		t.Fatalf("pin after upgrade %s, want %s", got, sum2)
	}
	p, _ = h2.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatalf("upgraded plugin refused: %v", err)
	}
}

func TestInstallInPlacePinsWithoutCopying(t *testing.T) {
	dir, sum := bundleDir(t, "pkg")
	pins := filepath.Join(t.TempDir(), "plugins.lock.json")
	before, _ := os.Stat(filepath.Join(dir, "certfleet-plugin-pemdir"))
	installed, err := newHost(t, dir, pins, false).Install(dir, dir)
	if err != nil || len(installed) != 1 || installed[0].SHA256 != sum {
		t.Fatalf("in place: %+v %v", installed, err)
	}
	after, _ := os.Stat(filepath.Join(dir, "certfleet-plugin-pemdir"))
	if !os.SameFile(before, after) {
		t.Error("the binary was rewritten instead of pinned in place")
	}
}

func TestInstallWarnsWhenAnotherBinaryComesFirst(t *testing.T) {
	src, _ := bundleDir(t, "v1")
	first, dest := t.TempDir(), t.TempDir()
	copyFile(t, pemdirBinary, filepath.Join(first, "certfleet-plugin-pemdir"))
	h := New(Options{Dirs: []string{first, dest}, SkipPATH: true, PinsFile: filepath.Join(t.TempDir(), "pins.json")})
	defer h.Close()
	installed, err := h.Install(src, dest)
	if err != nil || len(installed) != 1 || installed[0].Shadowed != filepath.Join(first, "certfleet-plugin-pemdir") {
		t.Fatalf("shadowed install: %+v %v", installed, err)
	}
}

func TestLookOnlyHostNeverPins(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, pemdirBinary, filepath.Join(dir, "certfleet-plugin-pemdir"))
	pins := filepath.Join(t.TempDir(), "plugins.lock.json")
	p, _ := newHost(t, dir, pins, true).Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a look-only host wrote the pins file: %v", err)
	}
}

func TestParseChecksums(t *testing.T) {
	good := strings.Repeat("ab", 32)
	sums, err := ParseChecksums([]byte(good+"  a/b\n"+strings.ToUpper(good)+" *c\n\n"), "SUMS")
	if err != nil || sums["a/b"] != good || sums["c"] != good {
		t.Fatalf("parse: %v %v", sums, err)
	}
	if string(sums.Format()) != good+"  a/b\n"+good+"  c\n" {
		t.Fatalf("format: %q", sums.Format())
	}
	for _, tc := range []struct{ text, want string }{
		{"", "lists no files"},
		{"nonsense\n", "SUMS:1: not a sha256sum line"},
		{strings.Repeat("zz", 32) + "  a\n", "SUMS:1: \"zzzz"},
		{good + "  ../etc/passwd\n", "not a plain relative path"},
		{good + "  /etc/passwd\n", "not a plain relative path"},
		{good + "  a\n" + strings.Repeat("cd", 32) + "  a\n", "SUMS:2: a is listed twice"},
	} {
		if _, err := ParseChecksums([]byte(tc.text), "SUMS"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

func tarGz(t *testing.T, entries ...*tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	tw.Close()
	zw.Close()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnpackBundle(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	top, err := UnpackBundle(tarGz(t, &tar.Header{Name: "b/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("b/SHA256SUMS"), reg("b/x")), t.TempDir())
	if err != nil || filepath.Base(top) != "b" {
		t.Fatalf("unpack: %q %v", top, err)
	}
	for _, tc := range []struct {
		entries []*tar.Header
		want    string
	}{
		{[]*tar.Header{reg("../evil")}, "not a plain relative path"},
		{[]*tar.Header{reg("/etc/evil")}, "not a plain relative path"},
		{[]*tar.Header{{Name: "b/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, "neither a file nor a directory"},
		{[]*tar.Header{reg("b/x")}, "has no SHA256SUMS"},
	} {
		if _, err := UnpackBundle(tarGz(t, tc.entries...), t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.entries[0].Name, err, tc.want)
		}
	}
}

func TestPluginOfAnotherContractMajorIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := conformance.BuildPlugin(dir, "github.com/certfleet/certfleet/core/pluginhost/testdata/certfleet-plugin-pemdir"); err != nil {
		t.Fatal(err)
	}
	p, _ := newHost(t, dir, filepath.Join(t.TempDir(), "pins.json"), false).Plugin("pemdir")
	_, err := p.Info(ctxTimeout(t, time.Minute))
	if err == nil || !strings.Contains(err.Error(), "another major version of the contract than this certfleet (v1)") {
		t.Fatalf("a contract v2 plugin: %v", err)
	}
}

func TestVerifyReleaseSignature(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "certfleet-pemdir_1.0.0_linux_amd64.tar.gz")
	if err := os.WriteFile(archive, []byte("bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	sums := Checksums{filepath.Base(archive): sumBytes([]byte("bundle"))}.Format()
	os.WriteFile(filepath.Join(dir, ChecksumsFile), sums, 0o644)
	os.WriteFile(filepath.Join(dir, SignatureFile), minisign.Sign(priv, sums), 0o644)
	keyFile := filepath.Join(t.TempDir(), "certfleet.pub")
	text, _ := pub.MarshalText()
	os.WriteFile(keyFile, append(text, '\n'), 0o644) // the same text as minisign -G writes
	if err := VerifyRelease(archive, keyFile); err != nil {
		t.Fatalf("a signed release: %v", err)
	}

	otherPub, _, _ := minisign.GenerateKey(rand.Reader)
	otherText, _ := otherPub.MarshalText()
	otherKey := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(otherKey, otherText, 0o644)
	if err := VerifyRelease(archive, otherKey); err == nil || !strings.Contains(err.Error(), "is not signed by the key") {
		t.Errorf("another key: %v", err)
	}
	os.WriteFile(archive, []byte("bundlX"), 0o644)
	if err := VerifyRelease(archive, keyFile); err == nil || !strings.Contains(err.Error(), "damaged or altered") {
		t.Errorf("altered archive: %v", err)
	}
	os.Remove(filepath.Join(dir, SignatureFile))
	if err := VerifyRelease(archive, keyFile); err == nil || !strings.Contains(err.Error(), "signature must lie beside") {
		t.Errorf("no signature: %v", err)
	}
}
