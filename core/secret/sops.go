package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/logging"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	"github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/stores/yaml"
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

// FormatForPath returns the format sops uses for a file, chosen by its extension (.yaml/.yml,
// .json, .env, .ini; anything else is binary).
func FormatForPath(path string) string {
	switch formats.FormatForPath(path) {
	case formats.Yaml:
		return FormatYAML
	case formats.Json:
		return FormatJSON
	case formats.Dotenv:
		return FormatDotenv
	case formats.Ini:
		return FormatINI
	default:
		return FormatBinary
	}
}

func storeFor(format string) (sops.Store, error) {
	c := config.NewStoresConfig()
	switch format {
	case FormatYAML:
		return yaml.NewStore(&c.YAML), nil
	case FormatJSON:
		return json.NewStore(&c.JSON), nil
	case FormatDotenv:
		return dotenv.NewStore(&c.Dotenv), nil
	case FormatINI:
		return ini.NewStore(&c.INI), nil
	case FormatBinary:
		return json.NewBinaryStore(&c.JSONBinary), nil
	}
	return nil, fmt.Errorf("unknown file format %q: use yaml, json, dotenv, ini or binary", format)
}

// IsSopsFile reports whether data, in the given format, is a sops-encrypted document: whether it
// has sops's top-level metadata entry, the same test the sops CLI applies. An empty format means
// YAML. A binary-format file is sops-encrypted when it is a JSON document with that entry.
func IsSopsFile(data []byte, format string) bool {
	// Every sops file names its metadata "sops" (or sops_* in flat formats): a cheap first test
	// that spares parsing ordinary configuration files.
	if !bytes.Contains(data, []byte("sops")) {
		return false
	}
	switch format {
	case "":
		format = FormatYAML
	case FormatBinary:
		format = FormatJSON
	}
	store, err := storeFor(format)
	if err != nil {
		return false
	}
	branches, err := store.LoadPlainFile(data)
	if err != nil || len(branches) == 0 {
		return false
	}
	return store.HasSopsTopLevelKey(branches[0])
}

// Decrypter decrypts sops files in process, with sops's own Go packages. Decrypted data is only
// ever held in memory.
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

// readFile reads path and decrypts it if it is a sops file; encrypted says which it was.
func (d *Decrypter) readFile(ctx context.Context, path string) (data []byte, encrypted bool, err error) {
	data, err = readRaw(path)
	if err != nil {
		return nil, false, err
	}
	format := FormatForPath(path)
	if !IsSopsFile(data, format) {
		return data, false, nil
	}
	plain, err := d.DecryptData(ctx, data, format, path)
	return plain, true, err
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

// DecryptData decrypts sops-encrypted data in the given format (see FormatForPath); name is used
// in error messages. It checks the MAC over all values as the sops CLI does.
func (d *Decrypter) DecryptData(ctx context.Context, data []byte, format, name string) ([]byte, error) {
	if !IsSopsFile(data, format) {
		return nil, fileError(name, ErrNotEncrypted)
	}
	store, err := storeFor(format)
	if err != nil {
		return nil, fileError(name, err)
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fileError(name, fmt.Errorf("%w: %s", ErrMalformed, oneLine(err.Error(), 300)))
	}
	dataKey, err := d.dataKey(ctx, &tree.Metadata)
	if err != nil {
		return nil, fileError(name, err)
	}
	cipher := aes.NewCipher()
	computedMAC, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		// The data key is right (it decrypted), so a value that fails to decrypt was changed. sops's
		// message is not shown: for a value whose type tag was altered it quotes the plaintext.
		return nil, fileError(name, fmt.Errorf("%w: an encrypted value does not decrypt or authenticate: the file was changed after it was encrypted, or is corrupt; restore it, or edit it with sops rather than by hand", ErrTampered))
	}
	storedMAC, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || storedMAC != computedMAC {
		// The MACs themselves are not shown: the computed one is a hash of the plaintext values.
		return nil, fileError(name, fmt.Errorf("%w: the file was changed after it was encrypted, or is corrupt; restore it, or edit it with sops rather than by hand", ErrTampered))
	}
	plain, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fileError(name, fmt.Errorf("emit decrypted document: %w", err))
	}
	return plain, nil
}

// dataKey recovers the file's data key from its key groups, mirroring
// sops.Metadata.GetDataKeyWithKeyServices, but calling each master key directly so that the
// context reaches gpg, the identities configured on the Decrypter are used, and every failure is
// reported precisely.
func (d *Decrypter) dataKey(ctx context.Context, md *sops.Metadata) ([]byte, error) {
	if len(md.KeyGroups) == 0 {
		return nil, fmt.Errorf("%w: the sops metadata lists no keys", ErrMalformed)
	}
	var ids sopsage.ParsedIdentities
	if strings.TrimSpace(d.AgeIdentities) != "" {
		if err := ids.Import(d.AgeIdentities); err != nil {
			return nil, fmt.Errorf("the configured age identities cannot be parsed: %w", err)
		}
	}
	if d.GnuPGHome != "" {
		home, err := filepath.Abs(d.GnuPGHome)
		if err == nil {
			err = pgp.GnuPGHome(home).Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("GnuPG home %s: %w", d.GnuPGHome, err)
		}
	}
	keyErr := &KeyError{kinds: map[string]bool{}, ageFromConfig: len(ids) > 0}
	for _, group := range md.KeyGroups {
		for _, key := range group {
			keyErr.kinds[key.TypeToIdentifier()] = true
			keyErr.Recipients = append(keyErr.Recipients, key.TypeToIdentifier()+" "+key.ToString())
		}
	}
	var parts [][]byte
	for _, group := range md.KeyGroups {
		var part []byte
		for _, key := range sortedKeys(group) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			p, err := d.decryptKey(ctx, key, ids)
			if err == nil {
				part = p
				break
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) {
				keyErr.WrongKey = true
			}
			keyErr.Reasons = append(keyErr.Reasons, key.TypeToIdentifier()+" "+key.ToString()+": "+keyFailure(err))
		}
		if part != nil {
			parts = append(parts, part)
		}
	}
	if len(md.KeyGroups) == 1 {
		if len(parts) == 1 {
			return parts[0], nil
		}
		return nil, keyErr
	}
	need := md.ShamirThreshold
	if need <= 0 {
		need = len(md.KeyGroups)
	}
	if len(parts) < need {
		keyErr.NeedGroups, keyErr.GotGroups = need, len(parts)
		return nil, keyErr
	}
	key, err := shamir.Combine(parts)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot combine the Shamir parts of the data key: %v", ErrMalformed, err)
	}
	return key, nil
}

// keyFailure shortens a master key's error for the user. For PGP, sops reports two attempts: the
// legacy secring.gpg read by OpenPGP, which fails on every modern GnuPG home, and the gpg binary,
// whose message is the one that matters.
func keyFailure(err error) string {
	msg := err.Error()
	if _, gpgMsg, ok := strings.Cut(msg, "GnuPG binary error: "); ok {
		msg = gpgMsg
	}
	return oneLine(msg, 600)
}

func (d *Decrypter) decryptKey(ctx context.Context, key keys.MasterKey, ids sopsage.ParsedIdentities) ([]byte, error) {
	switch k := key.(type) {
	case *sopsage.MasterKey:
		if len(ids) > 0 {
			ids.ApplyToMasterKey(k)
		}
		return k.Decrypt()
	case *pgp.MasterKey:
		if d.GnuPGHome != "" {
			home, _ := filepath.Abs(d.GnuPGHome) // validated in dataKey
			pgp.GnuPGHome(home).ApplyToMasterKey(k)
		}
		return k.DecryptContext(ctx)
	}
	if kc, ok := key.(interface {
		DecryptContext(context.Context) ([]byte, error)
	}); ok {
		return kc.DecryptContext(ctx)
	}
	return key.Decrypt()
}

// sortedKeys orders a key group as sops does: by SOPS_DECRYPTION_ORDER, default age then pgp,
// everything else after in file order.
func sortedKeys(group sops.KeyGroup) []keys.MasterKey {
	order := sops.DefaultDecryptionOrder
	if env := os.Getenv("SOPS_DECRYPTION_ORDER"); env != "" {
		order = strings.Split(env, ",")
	}
	rank := func(k keys.MasterKey) int {
		for i, t := range order {
			if strings.TrimSpace(t) == k.TypeToIdentifier() {
				return i
			}
		}
		return len(order)
	}
	out := append([]keys.MasterKey(nil), group...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// SetSopsLogOutput sends the sops library's own log messages to w. sops logs only warnings (for
// example about a comment that does not decrypt) and by default writes them to standard error in
// its own format; the CLI can point them at its log output, or at io.Discard.
func SetSopsLogOutput(w io.Writer) {
	for _, l := range logging.Loggers {
		l.SetOutput(w)
	}
}
