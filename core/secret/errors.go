package secret

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sentinel errors, for errors.Is. The errors returned by this package wrap them in a *FileError
// that names the file and, where it helps, says how to fix the problem.
var (
	// ErrNotEncrypted: Decrypt was asked to decrypt a file that is not sops-encrypted.
	ErrNotEncrypted = errors.New("not a sops-encrypted file (it has no top-level sops metadata)")
	// ErrAlreadyEncrypted: Encrypt was given a document that is already sops-encrypted.
	ErrAlreadyEncrypted = errors.New("the document is already sops-encrypted (it has a top-level sops entry)")
	// ErrMalformed: the file claims to be a sops file but cannot be parsed as one.
	ErrMalformed = errors.New("malformed sops file")
	// ErrKeyNotFound: no private key was found for any recipient of the file.
	ErrKeyNotFound = errors.New("no private key found for any recipient of the file")
	// ErrWrongKey: private keys were found, but none of them belongs to a recipient of the file.
	ErrWrongKey = errors.New("none of the private keys found belongs to a recipient of the file")
	// ErrTampered: the data key was recovered but the file's values or MAC do not authenticate.
	ErrTampered = errors.New("integrity check failed (MAC mismatch)")
)

// FileError is the error type of every file operation in this package: it names the file.
// Its message never contains a decrypted value.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func fileError(path string, err error) error { return &FileError{Path: path, Err: err} }

// KeyError explains why the data key of a sops file could not be recovered: which recipients the
// file is encrypted for, what went wrong with each, and how to provide the missing key.
// errors.Is(err, ErrKeyNotFound) or errors.Is(err, ErrWrongKey) tells the two cases apart.
type KeyError struct {
	// Recipients lists the file's master keys as "age age1…", "pgp <fingerprint>", "kms <arn>", ….
	Recipients []string
	// Reasons holds, for each master key tried, the reason it failed (sops's own words).
	Reasons []string
	// WrongKey is true when private keys were available but none matched (age reports this
	// precisely; GnuPG does not distinguish a missing key from a wrong one).
	WrongKey bool
	// NeedGroups and GotGroups are set for Shamir-split files (more than one key group).
	NeedGroups, GotGroups int
	// KeyTypes are the kinds of the file's master keys ("age", "pgp", "kms", …), for the hints.
	KeyTypes []string
	// AgeIdentitiesConfigured is true when the age identities came from certfleet's configuration
	// (Decrypter.AgeIdentities) rather than from where sops looks.
	AgeIdentitiesConfigured bool
}

func (e *KeyError) Is(target error) bool {
	return (target == ErrWrongKey && e.WrongKey) || (target == ErrKeyNotFound && !e.WrongKey)
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.WrongKey {
		b.WriteString(ErrWrongKey.Error())
	} else {
		b.WriteString(ErrKeyNotFound.Error())
	}
	fmt.Fprintf(&b, " (encrypted for: %s)", strings.Join(e.Recipients, ", "))
	if e.NeedGroups > 1 {
		fmt.Fprintf(&b, "; the file is split across key groups: %d needed, %d recovered", e.NeedGroups, e.GotGroups)
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(". ")
		b.WriteString(hint)
	}
	if len(e.Reasons) > 0 {
		b.WriteString(". Details: ")
		b.WriteString(strings.Join(e.Reasons, "; "))
	}
	return b.String()
}

func (e *KeyError) hint() string {
	var hints []string
	if slices.Contains(e.KeyTypes, "age") {
		if e.AgeIdentitiesConfigured {
			hints = append(hints, "the age identities configured for certfleet do not include the key of any age recipient")
		} else {
			hints = append(hints, "to use age, point SOPS_AGE_KEY_FILE at the age key file (or set SOPS_AGE_KEY to the key itself, or put it in "+defaultAgeKeyFile()+")")
		}
	}
	if slices.Contains(e.KeyTypes, "pgp") {
		hints = append(hints, "to use PGP, import the secret key into the GnuPG keyring (gpg --import; $GNUPGHOME or ~/.gnupg); keys protected by a passphrase need a gpg-agent that has it")
	}
	for _, kind := range e.KeyTypes {
		if kind != "age" && kind != "pgp" {
			hints = append(hints, "for "+kind+" keys, provide the same cloud credentials the sops CLI would use")
			break
		}
	}
	if e.WrongKey {
		hints = append(hints, "or re-encrypt the file for your key (sops updatekeys / certfleet secrets encrypt)")
	}
	if len(hints) == 0 {
		return ""
	}
	s := strings.Join(hints, "; ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// defaultAgeKeyFile is where sops looks for age keys when no environment variable names them.
func defaultAgeKeyFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "$XDG_CONFIG_HOME/sops/age/keys.txt"
	}
	return filepath.Join(dir, "sops", "age", "keys.txt")
}

// SingleLine squeezes a multi-line message (gpg's stderr, sops's wrapped errors) onto one line and
// bounds its length, so that error messages stay readable in logs.
func SingleLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
