package boundedfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, 1025), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("version: v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want error
	}{
		{"/dev/urandom", ErrNotRegular}, {"/dev/zero", ErrNotRegular}, {fifo, ErrNotRegular}, {dir, ErrNotRegular},
		{big, ErrTooLarge}, {filepath.Join(dir, "missing"), fs.ErrNotExist},
	} {
		done := make(chan error, 1)
		go func() { _, err := Read(c.path, 1024); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.path, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Read hangs", c.path)
		}
	}
	if data, err := Read(small, 1024); err != nil || string(data) != "version: v1\n" {
		t.Fatalf("small file: %q %v", data, err)
	}
}
