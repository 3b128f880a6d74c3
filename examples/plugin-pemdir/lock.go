package pemdir

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// lockFile is taken by every call so that certfleet and other tools (a web server's own reload
// script, an operator) never see a half-changed directory. Readers share it, writers own it
// (dir.lock).
const lockFile = ".certfleet.lock"

const lockFilePerm = 0o600

// lockRetry is how often a held lock is tried again while ctx lasts.
const lockRetry = 20 * time.Millisecond

// lockWaitError is the error of a call whose ctx ended while another process held the lock.
func lockWaitError(ctx context.Context, dir string) error {
	return sdk.FromContext(ctx).WithCause(fmt.Errorf("waiting for the lock on %s held by another process", dir))
}
