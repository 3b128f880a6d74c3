//go:build linux && !pemdir_portable

package pemdir

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dir is a device directory, or one of its subdirectories, held open: every path below it is
// resolved from its descriptor with the *at system calls. An Inventory makes some forty calls per
// device; from a held directory each walks one or two path components instead of the whole
// absolute path, and no call registers a new *os.File with the runtime poller (which costs two
// fcntl and an epoll_ctl per open, all useless for a directory or a regular file).
type dir struct {
	fd   int
	path string
}

// openDir opens the device directory at path. A path that is not a directory gives errNotDir.
func openDir(path string) (dir, error) {
	// O_PATH: resolving names below it needs only search permission, as os.Stat did.
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if errors.Is(err, unix.ENOTDIR) {
		// The last component, or one before it, is not a directory: os.Stat tells which.
		if _, serr := os.Stat(path); serr != nil {
			return dir{}, serr
		}
		return dir{}, errNotDir
	}
	if err != nil {
		return dir{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return dir{fd: fd, path: path}, nil
}

// sub opens the subdirectory name for reading its entries and the files below it.
func (d dir) sub(name string) (dir, error) {
	path := filepath.Join(d.path, name)
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return dir{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return dir{fd: fd, path: path}, nil
}

func (d dir) close() { _ = unix.Close(d.fd) }

// mkdirs makes each subdirectory that does not exist yet, as os.MkdirAll would.
func (d dir) mkdirs(names []string, perm os.FileMode) error {
	for _, name := range names {
		var st unix.Stat_t
		err := unix.Fstatat(d.fd, name, &st, 0)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue
		}
		path := filepath.Join(d.path, name)
		if err == nil {
			return &fs.PathError{Op: "mkdir", Path: path, Err: unix.ENOTDIR}
		}
		if err := unix.Mkdirat(d.fd, name, uint32(perm.Perm())); err != nil {
			// Made by someone else meanwhile: fine if it is a directory.
			if serr := unix.Fstatat(d.fd, name, &st, 0); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				continue
			}
			return &fs.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	return nil
}

// dirEntry is a name in a directory and its type bits (fs.ModeDir, fs.ModeSymlink, ...).
type dirEntry struct {
	name string
	typ  fs.FileMode
}

func (e dirEntry) isDir() bool     { return e.typ&fs.ModeDir != 0 }
func (e dirEntry) isSymlink() bool { return e.typ&fs.ModeSymlink != 0 }

// entries lists the directory, sorted by name, without "." and "..".
func (d dir) entries() ([]dirEntry, error) {
	var out []dirEntry
	buf := make([]byte, 4096)
	for {
		n, err := retryEINTR(func() (int, error) { return unix.Getdents(d.fd, buf) })
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: d.path, Err: err}
		}
		if n <= 0 {
			break
		}
		for rec := buf[:n]; len(rec) >= direntNameOffset; {
			reclen := int(binary.NativeEndian.Uint16(rec[direntReclenOffset:]))
			if reclen < direntNameOffset || reclen > len(rec) {
				return nil, &fs.PathError{Op: "readdirent", Path: d.path, Err: errors.New("malformed directory entry")}
			}
			name := rec[direntNameOffset:reclen]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			typ := rec[direntTypeOffset]
			rec = rec[reclen:]
			if s := string(name); s != "." && s != ".." {
				e := dirEntry{name: s}
				if e.typ, err = d.entryType(s, typ); err != nil {
					if errors.Is(err, unix.ENOENT) {
						continue // removed since it was listed, as os.ReadDir skips it
					}
					return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(d.path, s), Err: err}
				}
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// Offsets in struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
const (
	direntReclenOffset = 16
	direntTypeOffset   = 18
	direntNameOffset   = 19
)

// entryType maps a d_type to fs.FileMode type bits; a file system that does not fill d_type is
// asked with lstat, as os.ReadDir does.
func (d dir) entryType(name string, typ byte) (fs.FileMode, error) {
	switch typ {
	case unix.DT_DIR:
		return fs.ModeDir, nil
	case unix.DT_LNK:
		return fs.ModeSymlink, nil
	case unix.DT_REG:
		return 0, nil
	case unix.DT_UNKNOWN:
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return fs.ModeDir, nil
		case unix.S_IFLNK:
			return fs.ModeSymlink, nil
		case unix.S_IFREG:
			return 0, nil
		}
	}
	return fs.ModeIrregular, nil
}

// readlink is os.Readlink of the path rel below d.
func (d dir) readlink(rel string) (string, error) {
	var small [256]byte
	for buf := small[:]; ; buf = make([]byte, 2*len(buf)) {
		n, err := retryEINTR(func() (int, error) { return unix.Readlinkat(d.fd, rel, buf) })
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: filepath.Join(d.path, rel), Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
	}
}

// readFile reads the file rel below d into buf's storage (grown as needed) with open, reads
// until the end and close: os.ReadFile also stats the file and registers it with the poller.
func (d dir) readFile(rel string, buf []byte) ([]byte, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.path, rel), Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 2048)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: filepath.Join(d.path, rel), Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// appendFile appends data to the file name in d (made with perm if missing) in one write.
func (d dir) appendFile(name string, data []byte, perm os.FileMode) error {
	path := filepath.Join(d.path, name)
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOCTTY, uint32(perm.Perm()))
	})
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	for len(data) > 0 {
		n, werr := retryEINTR(func() (int, error) { return unix.Write(fd, data) })
		if werr != nil {
			_ = unix.Close(fd)
			return &fs.PathError{Op: "write", Path: path, Err: werr}
		}
		data = data[n:]
	}
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: path, Err: err}
	}
	return nil
}

// lock takes the directory lock, shared or exclusive, trying every lockRetry until ctx ends; the
// returned func releases it. It is flock(2) on lockFile, what gofrs/flock (used on other
// systems) and the flock(1) of other tools take, opened the way gofrs/flock opens it.
func (d dir) lock(ctx context.Context, exclusive bool) (func(), error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	fd, err := d.openLockFile(unix.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", d.path, err)
	}
	reopened := false
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		switch {
		case err == nil:
			// Closing the only descriptor of the open file releases the lock (no separate
			// LOCK_UN): O_CLOEXEC keeps a reload command from inheriting it.
			return func() { _ = unix.Close(fd) }, nil
		case errors.Is(err, unix.EINTR):
			continue
		case (errors.Is(err, unix.EIO) || errors.Is(err, unix.EBADF)) && !reopened:
			// flock emulated with fcntl locks (NFSv4) needs a descriptor open for writing.
			reopened = true
			_ = unix.Close(fd)
			if fd, err = d.openLockFile(unix.O_RDWR); err != nil {
				return nil, fmt.Errorf("lock %s: %w", d.path, err)
			}
			continue
		case !errors.Is(err, unix.EWOULDBLOCK):
			_ = unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", d.path, &fs.PathError{Op: "flock", Path: filepath.Join(d.path, lockFile), Err: err})
		}
		t := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = unix.Close(fd)
			return nil, lockWaitError(ctx, d.path)
		case <-t.C:
		}
	}
}

func (d dir) openLockFile(mode int) (int, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, lockFile, mode|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOCTTY, lockFilePerm)
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: filepath.Join(d.path, lockFile), Err: err}
	}
	return fd, nil
}

func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
