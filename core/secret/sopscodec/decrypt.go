// Package sopscodec decrypts and encrypts sops documents with sops's own Go packages
// (github.com/getsops/sops/v3), so that every file the sops CLI writes is read the same way: YAML,
// JSON, dotenv, INI and binary, fully or partially encrypted, for age, PGP (through the user's
// GnuPG keyring) or the cloud KMSs sops supports, with Shamir key groups. The MAC is always checked.
//
// It runs only in the certfleet-sops helper (cmd/certfleet-sops, see Serve): the sops library links
// every cloud KMS SDK, whose initialisation certfleet itself should not pay for. certfleet reaches
// it through package secret (secret.Decrypter, secret.Encrypt). Errors are those of package secret
// (its sentinels and *secret.KeyError), without the file name, which certfleet adds.
package sopscodec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	"github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/stores/yaml"
)

func storeFor(format string) (sops.Store, error) {
	c := config.NewStoresConfig()
	switch format {
	case secret.FormatYAML:
		return yaml.NewStore(&c.YAML), nil
	case secret.FormatJSON:
		return json.NewStore(&c.JSON), nil
	case secret.FormatDotenv:
		return dotenv.NewStore(&c.Dotenv), nil
	case secret.FormatINI:
		return ini.NewStore(&c.INI), nil
	case secret.FormatBinary:
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
		format = secret.FormatYAML
	case secret.FormatBinary:
		format = secret.FormatJSON
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

// Decrypter decrypts sops documents in process; its fields are those of secret.Decrypter, whose
// documentation says where keys are found. A Decrypter is safe for concurrent use.
type Decrypter struct {
	AgeIdentities string
	GnuPGHome     string
}

// DecryptData decrypts sops-encrypted data in the given format (see secret.FormatForPath). It
// checks the MAC over all values as the sops CLI does.
func (d *Decrypter) DecryptData(ctx context.Context, data []byte, format string) ([]byte, error) {
	if !IsSopsFile(data, format) {
		return nil, secret.ErrNotEncrypted
	}
	store, err := storeFor(format)
	if err != nil {
		return nil, err
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", secret.ErrMalformed, secret.SingleLine(err.Error(), 300))
	}
	dataKey, err := d.dataKey(ctx, &tree.Metadata)
	if err != nil {
		return nil, err
	}
	cipher := aes.NewCipher()
	computedMAC, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		// The data key is right (it decrypted), so a value that fails to decrypt was changed. sops's
		// message is not shown: for a value whose type tag was altered it quotes the plaintext.
		return nil, fmt.Errorf("%w: an encrypted value does not decrypt or authenticate: the file was changed after it was encrypted, or is corrupt; restore it, or edit it with sops rather than by hand", secret.ErrTampered)
	}
	storedMAC, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || storedMAC != computedMAC {
		// The MACs themselves are not shown: the computed one is a hash of the plaintext values.
		return nil, fmt.Errorf("%w: the file was changed after it was encrypted, or is corrupt; restore it, or edit it with sops rather than by hand", secret.ErrTampered)
	}
	plain, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("emit decrypted document: %w", err)
	}
	return plain, nil
}

// dataKey recovers the file's data key from its key groups, mirroring
// sops.Metadata.GetDataKeyWithKeyServices, but calling each master key directly so that the
// context reaches gpg, the identities configured on the Decrypter are used, and every failure is
// reported precisely.
func (d *Decrypter) dataKey(ctx context.Context, md *sops.Metadata) ([]byte, error) {
	if len(md.KeyGroups) == 0 {
		return nil, fmt.Errorf("%w: the sops metadata lists no keys", secret.ErrMalformed)
	}
	var ids sopsage.ParsedIdentities
	if strings.TrimSpace(d.AgeIdentities) != "" {
		if err := ids.Import(d.AgeIdentities); err != nil {
			return nil, fmt.Errorf("the configured age identities cannot be parsed: %w", err)
		}
	}
	home, err := gnupgHome(d.GnuPGHome)
	if err != nil {
		return nil, err
	}
	keyErr := &secret.KeyError{AgeIdentitiesConfigured: len(ids) > 0}
	for _, group := range md.KeyGroups {
		for _, key := range group {
			if t := key.TypeToIdentifier(); !slices.Contains(keyErr.KeyTypes, t) {
				keyErr.KeyTypes = append(keyErr.KeyTypes, t)
			}
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
			p, err := decryptKey(ctx, key, ids, home)
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
		return nil, fmt.Errorf("%w: cannot combine the Shamir parts of the data key: %v", secret.ErrMalformed, err)
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
	return secret.SingleLine(msg, 600)
}

// decryptKey recovers the data key from one master key, with the configured age identities and
// GnuPG home when there are.
func decryptKey(ctx context.Context, key keys.MasterKey, ids sopsage.ParsedIdentities, home pgp.GnuPGHome) ([]byte, error) {
	switch k := key.(type) {
	case *sopsage.MasterKey:
		if len(ids) > 0 {
			ids.ApplyToMasterKey(k)
		}
		return k.Decrypt()
	case *pgp.MasterKey:
		if home != "" {
			home.ApplyToMasterKey(k)
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

// gnupgHome is the GnuPG home dir, made absolute and checked as GnuPG requires; "" for none
// (sops then uses $GNUPGHOME or ~/.gnupg).
func gnupgHome(dir string) (pgp.GnuPGHome, error) {
	if dir == "" {
		return "", nil
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		err = pgp.GnuPGHome(abs).Validate()
	}
	if err != nil {
		return "", fmt.Errorf("GnuPG home %s: %w", dir, err)
	}
	return pgp.GnuPGHome(abs), nil
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
