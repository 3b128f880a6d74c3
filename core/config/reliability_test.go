package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const minimalDevice = "version: v1\nissuers:\n  ca: {type: acme, acme: {directory_url: https://ca.example/dir}}\ndevices:\n  web1: {plugin: pemdir, address: /srv/tls}\n"

func loadText(t *testing.T, text string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path)
	return err
}

// Finding 2: a device or a FIFO given as the configuration is refused at once.
func TestConfigThatIsNotARegularFileIsRefusedAtOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "certfleet.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/urandom", "/dev/zero", fifo} {
		done := make(chan error, 1)
		go func() { _, _, err := Load(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: %v", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) does not return", path)
		}
	}
}

// Finding 7: a second YAML document is not silently ignored.
func TestSecondYAMLDocumentIsAnError(t *testing.T) {
	err := loadText(t, minimalDevice+"---\ncertificates:\n  www: {device: web1, issuer: ca, sans: {dns: [www.example.com]}, bindings: [{kind: live-link, name: www}]}\n")
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7: a second YAML document starts here") {
		t.Fatalf("second document: %v", err)
	}
	if err := loadText(t, minimalDevice+"---\n"); err != nil {
		t.Fatalf("a trailing separator alone: %v", err)
	}
}

// Finding 7: an unreadable configuration directory says so.
func TestUnreadableConfigDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(minimalDevice), 0o600)
	os.Chmod(dir, 0o000)
	defer os.Chmod(dir, 0o700)
	_, _, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "cannot be read") || strings.Contains(err.Error(), "holds no") {
		t.Fatalf("unreadable directory: %v", err)
	}
}

// Findings 3 and 7: names a CA refuses or a client never matches, and a renewal window as long
// as the term.
func TestNamesAndWindowsCertfleetMustRefuse(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example.com"
	for _, c := range []struct{ cert, want string }{
		{"sans: {dns: [192.0.2.7]}", `"192.0.2.7" is an IP address, not a DNS name (hint: list IP addresses under sans.ip)`},
		{"sans: {dns: [www.example.com.]}", `"www.example.com." ends with a dot (hint: write "www.example.com")`},
		{"sans: {dns: [" + long + "]}", "is 72 characters long; RFC 5280 allows 64"},
		{"sans: {dns: [www.example.com]}, renew_before: 400d, issuer_options: {term: 365}", "renew_before 400d is not shorter than the certificate's term of 365 days"},
	} {
		err := loadText(t, minimalDevice+"certificates:\n  www: {device: web1, issuer: ca, bindings: [{kind: live-link, name: www}], "+c.cert+"}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got: %v\nwant: …%s…", c.cert, err, c.want)
		}
	}
	if err := loadText(t, minimalDevice+"certificates:\n  www: {device: web1, issuer: ca, bindings: [{kind: live-link, name: www}], sans: {dns: [www.example.com]}, renew_before: 30d, issuer_options: {term: 365}}\n"); err != nil {
		t.Fatalf("a sane certificate: %v", err)
	}
}
