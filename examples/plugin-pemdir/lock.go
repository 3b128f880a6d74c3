package pemdir

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/gofrs/flock"
)

// lockFile is taken by every call so that certfleet and other tools (a web server's own reload
// script, an operator) never see a half-changed directory. Readers share it, writers own it.
const lockFile = ".certfleet.lock"

// lockRetry is how often a held lock is tried again while ctx lasts.
const lockRetry = 20 * time.Millisecond

// lock waits for the directory lock until ctx ends; the returned func releases it. gofrs/flock is
// flock(2) on Unix (what other tools' `flock` uses) and LockFileEx on Windows.
func lock(ctx context.Context, dir string, exclusive bool) (func(), error) {
	fl := flock.New(filepath.Join(dir, lockFile), flock.SetPermissions(0o600))
	try := fl.TryRLockContext
	if exclusive {
		try = fl.TryLockContext
	}
	ok, err := try(ctx, lockRetry)
	if ok {
		return func() { _ = fl.Unlock() }, nil
	}
	_ = fl.Close()
	if ctx.Err() != nil {
		return nil, sdk.FromContext(ctx).WithCause(fmt.Errorf("waiting for the lock on %s held by another process", dir))
	}
	return nil, fmt.Errorf("lock %s: %w", dir, err)
}
