package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
)

// AccountRecord is an issuer's ACME account as stored: the account URL and the account private
// key (PKCS #8 PEM) sealed with AES-256-GCM, so the store only ever sees ciphertext.
type AccountRecord struct {
	// DirectoryURL is the CA the account belongs to; when the issuer's directory changes a new
	// account is registered.
	DirectoryURL string `json:"directory_url"`
	// AccountURL is the account's URL (the JWS "kid"); empty between saving a new key and the CA
	// confirming the registration.
	AccountURL string `json:"account_url,omitempty"`
	// SealedKey is the encrypted private key.
	SealedKey []byte `json:"sealed_key"`
}

// AccountStore keeps one account per issuer; the engine implements it on its state database.
type AccountStore interface {
	LoadAccount(ctx context.Context, issuerName string) (AccountRecord, bool, error)
	SaveAccount(ctx context.Context, issuerName string, rec AccountRecord) error
}

// BlobStore is a store of opaque account blobs per issuer (the state database's accounts table).
type BlobStore interface {
	LoadAccount(ctx context.Context, issuer string) ([]byte, bool, error)
	SaveAccount(ctx context.Context, issuer string, data []byte) error
}

// BlobAccountStore adapts a BlobStore: records are stored as JSON.
func BlobAccountStore(s BlobStore) AccountStore { return blobAccountStore{s} }

type blobAccountStore struct{ s BlobStore }

func (b blobAccountStore) LoadAccount(ctx context.Context, issuerName string) (AccountRecord, bool, error) {
	data, found, err := b.s.LoadAccount(ctx, issuerName)
	if err != nil || !found {
		return AccountRecord{}, false, err
	}
	var rec AccountRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return AccountRecord{}, false, fmt.Errorf("stored account of issuer %q is not an ACME account record: %w", issuerName, err)
	}
	return rec, true, nil
}

func (b blobAccountStore) SaveAccount(ctx context.Context, issuerName string, rec AccountRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode account of issuer %q: %w", issuerName, err)
	}
	return b.s.SaveAccount(ctx, issuerName, data)
}

// MemoryAccountStore is an AccountStore in memory, for tests and one-shot runs.
type MemoryAccountStore struct {
	mu   sync.Mutex
	recs map[string]AccountRecord
}

// NewMemoryAccountStore returns an empty store.
func NewMemoryAccountStore() *MemoryAccountStore {
	return &MemoryAccountStore{recs: map[string]AccountRecord{}}
}

// LoadAccount returns the issuer's record.
func (m *MemoryAccountStore) LoadAccount(_ context.Context, issuerName string) (AccountRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[issuerName]
	rec.SealedKey = append([]byte(nil), rec.SealedKey...)
	return rec, ok, nil
}

// SaveAccount stores the issuer's record.
func (m *MemoryAccountStore) SaveAccount(_ context.Context, issuerName string, rec AccountRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec.SealedKey = append([]byte(nil), rec.SealedKey...)
	m.recs[issuerName] = rec
	return nil
}

// Register makes sure the issuer has an account at the CA (registering it, with External
// Account Binding when configured, the first time) and returns the account URL.
func (i *Issuer) Register(ctx context.Context) (string, error) {
	if _, err := i.account(ctx); err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.accountURL, nil
}

// account returns a client bound to the issuer's account, loading or registering it once.
func (i *Issuer) account(ctx context.Context) (*api.Core, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.core != nil {
		return i.core, nil
	}
	core, url, err := i.loadOrRegister(ctx)
	if err != nil {
		return nil, err
	}
	i.core, i.accountURL = core, url
	return core, nil
}

// forgetAccount drops a client the CA no longer accepts, so the next call looks the account up
// (and registers it again if the CA says it does not exist).
func (i *Issuer) forgetAccount(stale *api.Core) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.core == stale {
		i.core, i.accountURL = nil, ""
	}
}

// withAccount runs fn with the account; when the CA answers that the account does not exist,
// it looks the account up again (registering it anew) and runs fn once more. fn must only be
// repeatable when that problem means the CA did nothing, which RFC 8555 guarantees.
func (i *Issuer) withAccount(ctx context.Context, fn func(*api.Core) error) error {
	core, err := i.account(ctx)
	if err != nil {
		return err
	}
	err = fn(core)
	if !isProblem(err, problemAccountDoesNotExist) {
		return err
	}
	i.log.Warn("the CA no longer knows the account; looking it up again", "issuer", i.cfg.Name)
	i.forgetAccount(core)
	if core, err = i.account(ctx); err != nil {
		return err
	}
	return fn(core)
}

func (i *Issuer) loadOrRegister(ctx context.Context) (*api.Core, string, error) {
	const op = "account"
	name, dir := i.cfg.Name, i.cfg.DirectoryURL
	rec, found, err := i.store.LoadAccount(ctx, name)
	if err != nil {
		return nil, "", &Error{Op: op, Detail: fmt.Sprintf("load the stored account of issuer %q: %v", name, err), retryable: true, cause: err}
	}

	var key crypto.Signer
	reuse := found && rec.DirectoryURL == dir && len(rec.SealedKey) > 0
	if reuse {
		plain, err := openAccountKey(i.secret, name, rec.SealedKey)
		resealed := false
		if errors.Is(err, errWrongSecret) && len(i.oldSecret) > 0 {
			if plain, err = openAccountKey(i.oldSecret, name, rec.SealedKey); err == nil {
				if rec.SealedKey, err = sealAccountKey(i.secret, name, plain, i.kdf); err != nil {
					return nil, "", fmt.Errorf("encrypt account key: %w", err)
				}
				resealed = true
			}
		}
		if err != nil {
			return nil, "", configError(op, "issuer %q: %v; restore that secret, or delete the stored account to register a new one", name, err)
		}
		if key, err = parseAccountKey(plain); err != nil {
			return nil, "", configError(op, "issuer %q: stored account key: %v", name, err)
		}
		if resealed {
			if err := i.store.SaveAccount(ctx, name, rec); err != nil {
				return nil, "", &Error{Op: op, Detail: fmt.Sprintf("save the account key of issuer %q: %v", name, err), retryable: true, cause: err}
			}
			i.log.Info("account key now encrypted under account_key_passphrase", "issuer", name)
		}
	} else {
		if found {
			i.log.Info("stored account belongs to another directory; registering a new account",
				"issuer", name, "stored_directory", rec.DirectoryURL, "directory", dir)
		}
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, "", fmt.Errorf("generate account key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, "", fmt.Errorf("encode account key: %w", err)
		}
		sealed, err := sealAccountKey(i.secret, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), i.kdf)
		if err != nil {
			return nil, "", fmt.Errorf("encrypt account key: %w", err)
		}
		// Saved before registering: if the answer to newAccount is lost, the next attempt finds
		// the account by this key instead of registering a second one.
		rec = AccountRecord{DirectoryURL: dir, SealedKey: sealed}
		if err := i.store.SaveAccount(ctx, name, rec); err != nil {
			return nil, "", &Error{Op: op, Detail: fmt.Sprintf("save the account key of issuer %q: %v", name, err), retryable: true, cause: err}
		}
	}

	core, err := api.New(i.newHTTPClient(), i.userAgent, dir, "", key)
	if err != nil {
		e := classify("fetch the ACME directory", err)
		e.Detail = fmt.Sprintf("%s (directory_url %s)", e.Detail, dir)
		return nil, "", e
	}

	if reuse {
		// Ask the CA for the key's account without creating one.
		existing, err := core.Accounts.New(ctx, legoacme.Account{OnlyReturnExisting: true})
		switch {
		case err == nil && existing.Location != "":
			if existing.Location != rec.AccountURL {
				rec.AccountURL = existing.Location
				if err := i.store.SaveAccount(ctx, name, rec); err != nil {
					return nil, "", &Error{Op: op, Detail: fmt.Sprintf("save the account of issuer %q: %v", name, err), retryable: true, cause: err}
				}
			}
			return core, existing.Location, nil
		case err == nil:
			return nil, "", &Error{Op: op, Detail: "the CA returned no account URL", retryable: true}
		case !isProblem(err, problemAccountDoesNotExist):
			return nil, "", classify("look up the ACME account", err)
		}
		if rec.AccountURL != "" {
			i.log.Warn("the CA does not know the stored account; registering it again", "issuer", name)
		}
	}

	url, err := i.registerAccount(ctx, core)
	if err != nil {
		return nil, "", err
	}
	rec.AccountURL = url
	if err := i.store.SaveAccount(ctx, name, rec); err != nil {
		return nil, "", &Error{Op: op, Detail: fmt.Sprintf("save the account of issuer %q: %v", name, err), retryable: true, cause: err}
	}
	i.log.Info("registered ACME account", "issuer", name, "account", url, "eab_key_id", i.cfg.EAB.KeyID)
	return core, url, nil
}

// registerAccount creates the account, binding it to the CA's external account when configured.
func (i *Issuer) registerAccount(ctx context.Context, core *api.Core) (string, error) {
	const op = "register ACME account"
	// Agreeing to the CA's terms is implied by configuring it (with EAB, by the CA contract).
	req := legoacme.Account{TermsOfServiceAgreed: true}
	if i.cfg.Contact != "" {
		req.Contact = []string{"mailto:" + strings.TrimPrefix(i.cfg.Contact, "mailto:")}
	}
	var (
		acct legoacme.ExtendedAccount
		err  error
	)
	if i.cfg.EAB.KeyID != "" {
		acct, err = core.Accounts.NewEAB(ctx, req, i.cfg.EAB.KeyID, i.cfg.EAB.HMACKey)
	} else {
		acct, err = core.Accounts.New(ctx, req)
	}
	if err != nil {
		e := classify(op, err)
		switch {
		case isProblem(err, problemExternalAccountReq):
			e.Detail = fmt.Sprintf("issuer %q: the CA requires External Account Binding; set eab.key_id and eab.hmac_key (Sectigo: SCM → ACME Accounts, Key ID and HMAC Key)", i.cfg.Name)
		case i.cfg.EAB.KeyID != "" && (isProblem(err, problemUnauthorized) || isProblem(err, problemMalformed)):
			e.Detail = fmt.Sprintf("issuer %q: the CA refused the External Account Binding for eab.key_id %q (%s); check eab.key_id and eab.hmac_key",
				i.cfg.Name, i.cfg.EAB.KeyID, problemOf(err).Detail)
		}
		return "", e
	}
	if acct.Location == "" {
		return "", &Error{Op: op, Detail: "the CA returned no account URL", retryable: true}
	}
	return acct.Location, nil
}

func parseAccountKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return signer, nil
}
