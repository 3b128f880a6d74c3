package secret

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Finding 2: ${file:...}, ${sops:...} and the credentials file never read a device, a FIFO or a
// file without end; each is refused at once with the file's name.
func TestSecretFilesThatAreNotRegularFilesAreRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "secret")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Redactor: NewRedactor()}
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"file:/dev/zero", func() error { _, err := r.Resolve(context.Background(), "${file:/dev/zero}"); return err }},
		{"file:fifo", func() error { _, err := r.Resolve(context.Background(), "${file:"+fifo+"}"); return err }},
		{"sops:/dev/urandom", func() error {
			_, err := r.Resolve(context.Background(), "${sops:/dev/urandom#a}")
			return err
		}},
		{"credentials /dev/zero", func() error { _, err := r.LoadCredentialsFile(context.Background(), "/dev/zero"); return err }},
		{"credentials fifo", func() error { _, err := r.LoadCredentialsFile(context.Background(), fifo); return err }},
	} {
		done := make(chan error, 1)
		go func() { done <- call.do() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: %v", call.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: does not return", call.name)
		}
	}
}
