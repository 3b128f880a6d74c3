// Package boundedfile reads the files a user names (configuration, secrets, credentials, CA
// bundles) without trusting them to be sane: only regular files, never more than a limit.
// A FIFO, a device such as /dev/zero or /dev/urandom, or a huge file is refused at once, instead
// of hanging (deaf to SIGTERM) or growing until the kernel kills the process.
package boundedfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// DefaultLimit is the size limit for configuration and secret files: far above any real one.
const DefaultLimit = 8 << 20

// ErrNotRegular is returned for a path that is not a regular file (FIFO, device, socket, directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned for a file over the limit.
var ErrTooLarge = errors.New("file too large")

// Read returns the content of the regular file at path, refusing anything else and anything over
// limit bytes. Errors wrap fs.ErrNotExist and fs.ErrPermission as os.ReadFile's do.
func Read(path string, limit int64) ([]byte, error) {
	f, size, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Sized from the start: a configuration of thousands of certificates is megabytes, which
	// growing from nothing would copy a dozen times.
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
	}
	return data, nil
}

// Open opens the regular file at path for reading and returns its size, refusing anything else
// and anything over limit bytes, as Read does; a caller reading it in parts reads at most limit+1
// bytes (a file may grow after Open) and refuses more.
func Open(path string, limit int64) (*os.File, int64, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, 0, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (it is %s): give the path of a file", ErrNotRegular, kind(info.Mode()))}
	}
	if info.Size() > limit {
		f.Close()
		return nil, 0, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, info.Size(), limit)}
	}
	return f, info.Size(), nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}
