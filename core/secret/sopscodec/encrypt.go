package sopscodec

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/pgp"
)

// Encrypt encrypts a plaintext document (format: yaml, json, dotenv, ini or binary) for the
// recipients in opts and returns the sops file, which the sops CLI (and Decrypt) can decrypt.
// It refuses a document that is already sops-encrypted, and a selection (regex or suffix) that
// leaves every value unencrypted.
func Encrypt(ctx context.Context, plaintext []byte, format string, opts secret.EncryptOptions) ([]byte, error) {
	store, err := storeFor(format)
	if err != nil {
		return nil, err
	}
	if len(opts.AgeRecipients)+len(opts.PGPFingerprints) == 0 {
		return nil, errors.New("encrypt: no recipients: give at least one age recipient (age1…) or PGP fingerprint")
	}
	var rules int
	for _, rule := range []string{opts.EncryptedRegex, opts.UnencryptedRegex, opts.EncryptedSuffix, opts.UnencryptedSuffix} {
		if rule != "" {
			rules++
		}
	}
	if rules > 1 {
		return nil, errors.New("encrypt: use at most one of encrypted regex, unencrypted regex, encrypted suffix and unencrypted suffix")
	}
	// sops ignores a regex that does not compile, which would leave every value in plain text.
	for name, re := range map[string]string{"encrypted regex": opts.EncryptedRegex, "unencrypted regex": opts.UnencryptedRegex} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("encrypt: %s %q: %w", name, re, err)
		}
	}
	unencryptedSuffix := opts.UnencryptedSuffix
	if rules == 0 && format != secret.FormatBinary {
		unencryptedSuffix = sops.DefaultUnencryptedSuffix
	}

	branches, err := store.LoadPlainFile(plaintext)
	if err != nil {
		return nil, fmt.Errorf("encrypt: cannot parse the document as %s: %s", format, secret.SingleLine(err.Error(), 200))
	}
	if len(branches) == 0 || len(branches[0]) == 0 {
		return nil, errors.New("encrypt: the document is empty")
	}
	if store.HasSopsTopLevelKey(branches[0]) {
		return nil, fmt.Errorf("encrypt: %w", secret.ErrAlreadyEncrypted)
	}

	var group sops.KeyGroup
	for _, r := range opts.AgeRecipients {
		k, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, fmt.Errorf("encrypt: age recipient %q: %w", r, err)
		}
		group = append(group, k)
	}
	home, err := gnupgHome(opts.GnuPGHome)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	for _, fp := range opts.PGPFingerprints {
		k := pgp.NewMasterKeyFromFingerprint(fp)
		if home != "" {
			home.ApplyToMasterKey(k)
		}
		group = append(group, k)
	}

	tree := sops.Tree{
		Branches: branches,
		Metadata: sops.Metadata{
			KeyGroups:         []sops.KeyGroup{group},
			UnencryptedSuffix: unencryptedSuffix,
			EncryptedSuffix:   opts.EncryptedSuffix,
			UnencryptedRegex:  opts.UnencryptedRegex,
			EncryptedRegex:    opts.EncryptedRegex,
			MACOnlyEncrypted:  opts.MACOnlyEncrypted,
			Version:           sopsVersion(),
		},
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("encrypt: generate data key: %w", err)
	}
	for _, k := range group {
		if err := encryptDataKey(ctx, k, dataKey); err != nil {
			return nil, fmt.Errorf("encrypt: %s %s: %s", k.TypeToIdentifier(), k.ToString(), secret.SingleLine(err.Error(), 400))
		}
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		// sops's message is not shown: it can quote a plaintext value.
		return nil, errors.New("encrypt: a value cannot be encrypted (unsupported value type)")
	}
	if rules > 0 && countEncrypted(tree.Branches) == 0 {
		return nil, errors.New("encrypt: the selection matches no key, so nothing would be encrypted: check the regex or suffix")
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encrypt: MAC: %w", err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("encrypt: emit: %w", err)
	}
	return out, nil
}

func encryptDataKey(ctx context.Context, k keys.MasterKey, dataKey []byte) error {
	if p, ok := k.(*pgp.MasterKey); ok {
		return p.EncryptContext(ctx, dataKey)
	}
	return k.Encrypt(dataKey)
}

// countEncrypted counts the values of an encrypted tree that are sops ciphertexts.
func countEncrypted(branches sops.TreeBranches) int {
	var walk func(v any) int
	walk = func(v any) int {
		switch v := v.(type) {
		case sops.TreeBranch:
			n := 0
			for _, item := range v {
				n += walk(item.Value)
			}
			return n
		case []any:
			n := 0
			for _, item := range v {
				n += walk(item)
			}
			return n
		case string:
			if strings.HasPrefix(v, "ENC[") {
				return 1
			}
		}
		return 0
	}
	n := 0
	for _, b := range branches {
		n += walk(b)
	}
	return n
}

// sopsVersion is the version of the sops library built in, which sops records in each file it
// writes. It is read from the build information rather than from sops's version package, which
// would pull in sops's command-line dependencies for one constant.
var sopsVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/getsops/sops/v3" {
				if dep.Replace != nil {
					dep = dep.Replace
				}
				if v := strings.TrimPrefix(dep.Version, "v"); v != "" && v != "(devel)" {
					return v
				}
			}
		}
	}
	return "3.13.3" // the version in go.mod when this was written
})
