package pemdir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// lockFile is taken by every call so that certfleet and other tools (a web server's own reload
// script, an operator) never see a half-changed directory. Readers share it, writers own it.
const lockFile = ".certfleet.lock"

// lock waits for the directory lock until ctx ends; the returned func releases it.
func lock(ctx context.Context, dir string, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, sdk.FromContext(ctx).WithCause(fmt.Errorf("waiting for the lock on %s held by another process", dir))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
