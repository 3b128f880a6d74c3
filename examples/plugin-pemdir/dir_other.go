//go:build !linux || pemdir_portable

package pemdir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

// dir is a device directory, or one of its subdirectories, by path: the portable form of the
// Linux one, which holds it open and resolves names from its descriptor. The pemdir_portable
// build tag selects it on Linux too, to test it there.
type dir struct {
	path string
}

// openDir opens the device directory at path. A path that is not a directory gives errNotDir.
func openDir(path string) (dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return dir{}, err
	}
	if !st.IsDir() {
		return dir{}, errNotDir
	}
	return dir{path: path}, nil
}

// sub opens the subdirectory name for reading its entries and the files below it.
func (d dir) sub(name string) (dir, error) { return dir{path: filepath.Join(d.path, name)}, nil }

func (d dir) close() {}

// mkdirs makes each subdirectory that does not exist yet.
func (d dir) mkdirs(names []string, perm os.FileMode) error {
	for _, name := range names {
		if err := os.MkdirAll(filepath.Join(d.path, name), perm); err != nil {
			return err
		}
	}
	return nil
}

// dirEntry is a name in a directory and its type bits (fs.ModeDir, fs.ModeSymlink, ...).
type dirEntry struct {
	name string
	typ  os.FileMode
}

func (e dirEntry) isDir() bool     { return e.typ&os.ModeDir != 0 }
func (e dirEntry) isSymlink() bool { return e.typ&os.ModeSymlink != 0 }

// entries lists the directory, sorted by name.
func (d dir) entries() ([]dirEntry, error) {
	list, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, 0, len(list))
	for _, e := range list {
		out = append(out, dirEntry{name: e.Name(), typ: e.Type()})
	}
	return out, nil
}

// readlink is os.Readlink of the path rel below d.
func (d dir) readlink(rel string) (string, error) { return os.Readlink(filepath.Join(d.path, rel)) }

// readFile reads the file rel below d; buf is the Linux form's scratch space.
func (d dir) readFile(rel string, _ []byte) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.path, rel))
}

// appendFile appends data to the file name in d (made with perm if missing) in one write.
func (d dir) appendFile(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(filepath.Join(d.path, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lock takes the directory lock, shared or exclusive, trying every lockRetry until ctx ends; the
// returned func releases it. gofrs/flock is flock(2) on Unix (what other tools' `flock` uses) and
// LockFileEx on Windows.
func (d dir) lock(ctx context.Context, exclusive bool) (func(), error) {
	fl := flock.New(filepath.Join(d.path, lockFile), flock.SetPermissions(lockFilePerm))
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
		return nil, lockWaitError(ctx, d.path)
	}
	return nil, fmt.Errorf("lock %s: %w", d.path, err)
}
