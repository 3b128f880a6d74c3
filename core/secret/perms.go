package secret

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// PermissionWarning says that a file holding plaintext secrets can be read (or changed) by users
// other than its owner. It is a warning, not an error: the caller logs it and carries on.
type PermissionWarning struct {
	Path string
	Mode fs.FileMode
}

func (w PermissionWarning) String() string {
	var who []string
	if w.Mode&0o044 != 0 {
		who = append(who, "readable")
	}
	if w.Mode&0o022 != 0 {
		who = append(who, "writable")
	}
	return fmt.Sprintf("%s holds secrets in plain text and is %s by group or others (mode %04o): restrict it with chmod 600 %s, or encrypt it with sops",
		w.Path, strings.Join(who, " and "), uint32(w.Mode.Perm()), w.Path)
}

// CheckPermissions returns a warning when the file at path (a file that holds plaintext secrets)
// can be read or written by group or others. It returns nil, nil when the permissions are tight,
// and always on Windows, where mode bits do not describe access. Symbolic links are followed.
func CheckPermissions(path string) (*PermissionWarning, error) {
	if runtime.GOOS == "windows" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	if fi.Mode().Perm()&0o066 == 0 {
		return nil, nil
	}
	return &PermissionWarning{Path: path, Mode: fi.Mode().Perm()}, nil
}
