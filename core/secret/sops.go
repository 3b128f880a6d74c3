package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/certfleet/certfleet/core/boundedfile"
)

// File formats, named as the sops CLI names them (--input-type).
const (
	FormatYAML   = "yaml"
	FormatJSON   = "json"
	FormatDotenv = "dotenv"
	FormatINI    = "ini"
	// FormatBinary is any other file: sops stores it whole, as one encrypted value in a JSON document.
	FormatBinary = "binary"
)

// FormatForPath returns the format sops uses for a file, chosen by its extension as the sops CLI
// chooses it (getsops/sops cmd/sops/formats.FormatForPath: .yaml/.yml, .json, .env, .ini; anything
// else is binary).
func FormatForPath(path string) string {
	switch {
	case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"):
		return FormatYAML
	case strings.HasSuffix(path, ".json"):
		return FormatJSON
	case strings.HasSuffix(path, ".env"):
		return FormatDotenv
	case strings.HasSuffix(path, ".ini"):
		return FormatINI
	}
	return FormatBinary
}

// MayBeSops says whether data may be a sops-encrypted document, in any format: whether "sops"
// appears where sops writes its metadata (getsops/sops stores: a top-level "sops:" YAML key and
// "[sops]" INI section at the start of a line, "sops_…" dotenv keys, a "sops" JSON key). It is
// cheap, and never wrong about a file sops wrote; data it accepts is given to the sops helper,
// which decides. A configuration that merely holds ${sops:…} references is not taken for one.
func MayBeSops(data []byte) bool {
	for i := 0; ; i += 4 {
		j := bytes.Index(data[i:], []byte("sops"))
		if j < 0 {
			return false
		}
		i += j
		if sopsMetadataAt(data, i) {
			return true
		}
	}
}

// sopsMetadataAt says whether the "sops" at data[at:] is a key where sops writes its metadata.
func sopsMetadataAt(data []byte, at int) bool {
	lineStart := func(i int) bool { return i == 0 || data[i-1] == '\n' }
	rest := data[at+4:]
	switch {
	case lineStart(at): // YAML "sops:", dotenv "sops_version=" …
		return len(rest) > 0 && (rest[0] == ':' || rest[0] == '_')
	case data[at-1] == '[': // INI section
		return lineStart(at-1) && len(rest) > 0 && rest[0] == ']'
	case data[at-1] == '"': // JSON key (sops indents the top level), or a quoted YAML key
		rest, ok := bytes.CutPrefix(rest, []byte{'"'})
		return ok && bytes.HasPrefix(bytes.TrimLeft(rest, " \t"), []byte{':'})
	}
	return false
}

// Decrypter decrypts sops files with sops's own Go packages, in the certfleet-sops helper process
// (see runSopsHelper). Decrypted data is only ever held in memory.
//
// The zero value finds private keys where the sops CLI does:
//   - age: SOPS_AGE_KEY (the key itself), SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, then
//     $XDG_CONFIG_HOME/sops/age/keys.txt (~/.config/sops/age/keys.txt), and SSH keys as sops does
//     (SOPS_AGE_SSH_PRIVATE_KEY_FILE, ~/.ssh/id_ed25519, ~/.ssh/id_rsa);
//   - PGP: the user's GnuPG keyring ($GNUPGHOME or ~/.gnupg), through the gpg binary
//     (SOPS_GPG_EXEC overrides its name), or a legacy secring.gpg read directly;
//   - AWS KMS, GCP KMS, Azure Key Vault, HashiCorp Vault transit and HuaweiCloud KMS: the ambient
//     credentials of each cloud SDK.
//
// Key types are tried in the order of SOPS_DECRYPTION_ORDER (default: age, then pgp, then the rest).
// A Decrypter is safe for concurrent use.
type Decrypter struct {
	// AgeIdentities, when not empty, is the text of an age identity file (one AGE-SECRET-KEY-1…
	// per line; blank lines and # comments are ignored). Only these identities are used for age
	// recipients then: the environment is not consulted.
	AgeIdentities string
	// GnuPGHome, when not empty, is the GnuPG home directory to use instead of $GNUPGHOME or
	// ~/.gnupg. It must be an existing directory with mode 0700 (GnuPG's own requirement).
	GnuPGHome string
}

// ReadFile returns the plaintext content of a file, decrypting it when it is a sops file (the
// format follows from the extension, as for the sops CLI). Plain files are returned as they are.
func ReadFile(ctx context.Context, path string) ([]byte, error) {
	return (&Decrypter{}).ReadFile(ctx, path)
}

// Decrypt returns the plaintext of a sops-encrypted file; a file that is not sops-encrypted is an
// error (ErrNotEncrypted).
func Decrypt(ctx context.Context, path string) ([]byte, error) {
	return (&Decrypter{}).Decrypt(ctx, path)
}

// DecryptData decrypts sops-encrypted data in the given format; name is used in error messages.
func DecryptData(ctx context.Context, data []byte, format, name string) ([]byte, error) {
	return (&Decrypter{}).DecryptData(ctx, data, format, name)
}

// ReadFile returns the plaintext content of a file, decrypting it when it is a sops file.
func (d *Decrypter) ReadFile(ctx context.Context, path string) ([]byte, error) {
	data, _, err := d.readFile(ctx, path)
	return data, err
}

// Decrypt returns the plaintext of a sops-encrypted file; a plain file is an error (ErrNotEncrypted).
func (d *Decrypter) Decrypt(ctx context.Context, path string) ([]byte, error) {
	data, err := readRaw(path)
	if err != nil {
		return nil, err
	}
	return d.DecryptData(ctx, data, FormatForPath(path), path)
}

// DecryptData decrypts sops-encrypted data in the given format (see FormatForPath); name is used
// in error messages. It checks the MAC over all values as the sops CLI does.
func (d *Decrypter) DecryptData(ctx context.Context, data []byte, format, name string) ([]byte, error) {
	plain, encrypted, err := d.decrypt(ctx, data, format, name)
	if err == nil && !encrypted {
		return nil, fileError(name, ErrNotEncrypted)
	}
	return plain, err
}

// readFile reads path and decrypts it if it is a sops file; encrypted says which it was.
func (d *Decrypter) readFile(ctx context.Context, path string) (data []byte, encrypted bool, err error) {
	data, err = readRaw(path)
	if err != nil {
		return nil, false, err
	}
	plain, encrypted, err := d.decrypt(ctx, data, FormatForPath(path), path)
	switch {
	case err != nil:
		return nil, true, err
	case !encrypted:
		return data, false, nil
	}
	return plain, true, nil
}

// decrypt asks the sops helper for the plaintext of data; encrypted is false (and plain nil) when
// data is not a sops document.
func (d *Decrypter) decrypt(ctx context.Context, data []byte, format, name string) (plain []byte, encrypted bool, err error) {
	if !MayBeSops(data) {
		return nil, false, nil
	}
	resp, err := runSopsHelper(ctx, &SopsHelperRequest{
		Op: SopsOpDecrypt, Name: name, Format: format, Data: data,
		AgeIdentities: d.AgeIdentities, GnuPGHome: d.GnuPGHome,
	})
	if err != nil {
		return nil, false, fileError(name, err)
	}
	return resp.Data, resp.Encrypted, nil
}

func readRaw(path string) ([]byte, error) {
	data, err := boundedfile.Read(path, boundedfile.DefaultLimit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fileError(path, fmt.Errorf("%w (file not found: check the path; relative paths are relative to the configuration file or the working directory)", fs.ErrNotExist))
	case errors.Is(err, fs.ErrPermission):
		return nil, fileError(path, fmt.Errorf("%w (the user running certfleet cannot read it)", fs.ErrPermission))
	case err != nil:
		return nil, fileError(path, err)
	}
	return data, nil
}

// EncryptOptions says for whom a document is encrypted and which of its values.
type EncryptOptions struct {
	// AgeRecipients are age public keys (age1…), as for sops --age.
	AgeRecipients []string `json:",omitempty"`
	// PGPFingerprints are PGP key fingerprints, as for sops --pgp. The public keys must be in the
	// GnuPG keyring (GnuPGHome, else $GNUPGHOME or ~/.gnupg).
	PGPFingerprints []string `json:",omitempty"`
	// GnuPGHome, when not empty, is the GnuPG home holding the PGP public keys.
	GnuPGHome string `json:",omitempty"`

	// At most one of the following selects the values to encrypt, as the sops options of the same
	// names do. With none of them, every value is encrypted except those whose key ends with
	// "_unencrypted" (the sops CLI's default). A regular expression is matched against each key on
	// the path to a value (for example '^password$' or '^(client_secret|api_key)$').
	EncryptedRegex    string `json:",omitempty"`
	UnencryptedRegex  string `json:",omitempty"`
	EncryptedSuffix   string `json:",omitempty"`
	UnencryptedSuffix string `json:",omitempty"`
	// MACOnlyEncrypted computes the MAC over the encrypted values only, so that the plain values
	// of a partially encrypted file can be edited without sops (sops --mac-only-encrypted).
	MACOnlyEncrypted bool `json:",omitempty"`
}

// Encrypt encrypts a plaintext document (format: yaml, json, dotenv, ini or binary) for the
// recipients in opts and returns the sops file, which the sops CLI (and Decrypt) can decrypt.
// It refuses a document that is already sops-encrypted, and a selection (regex or suffix) that
// leaves every value unencrypted. The work is done in the sops helper, as for decryption.
func Encrypt(ctx context.Context, plaintext []byte, format string, opts EncryptOptions) ([]byte, error) {
	resp, err := runSopsHelper(ctx, &SopsHelperRequest{Op: SopsOpEncrypt, Format: format, Data: plaintext, Encrypt: &opts})
	if err != nil {
		return nil, err
	}
	return resp.Data, nil
}
