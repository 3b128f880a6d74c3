package acme

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// The account key is sealed with AES-256-GCM under a key derived with Argon2id (RFC 9106) from a
// secret the caller holds (account_key_passphrase, else the EAB HMAC key), so the state
// database only ever holds ciphertext. The issuer's name is authenticated data: a record copied
// to another issuer does not open.

// kdfParams are Argon2id's cost parameters; they are stored with each sealed key so that they
// can be raised later without losing existing records.
type kdfParams struct {
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"` // KiB
	Threads uint8  `json:"p"`
}

// defaultKDF is OWASP's minimum recommendation for Argon2id (19 MiB, 2 passes, 1 lane).
var defaultKDF = kdfParams{Time: 2, Memory: 19 * 1024, Threads: 1}

// sealedKey is the stored form of a sealed account key.
type sealedKey struct {
	Version int       `json:"v"`
	KDF     string    `json:"kdf"`
	Params  kdfParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Nonce   []byte    `json:"nonce"`
	Data    []byte    `json:"data"`
}

const sealVersion = 1

var errWrongSecret = errors.New("the account key does not decrypt: account_key_passphrase (or, without it, eab.hmac_key) is not the one it was stored with, or the record was altered")

func sealAAD(issuerName string) []byte {
	return []byte("certfleet acme account key v1\x00" + issuerName)
}

func deriveKey(secret []byte, salt []byte, p kdfParams) []byte {
	return argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, 32)
}

// sealAccountKey encrypts plaintext (the account key's PEM) for issuerName.
func sealAccountKey(secret []byte, issuerName string, plaintext []byte, p kdfParams) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("no secret to encrypt the account key with")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	aead, err := newGCM(deriveKey(secret, salt, p))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return json.Marshal(sealedKey{
		Version: sealVersion, KDF: "argon2id", Params: p, Salt: salt, Nonce: nonce,
		Data: aead.Seal(nil, nonce, plaintext, sealAAD(issuerName)),
	})
}

// openAccountKey decrypts what sealAccountKey made.
func openAccountKey(secret []byte, issuerName string, sealed []byte) ([]byte, error) {
	var s sealedKey
	if err := json.Unmarshal(sealed, &s); err != nil {
		return nil, fmt.Errorf("stored account key is not a sealed key: %w", err)
	}
	if s.Version != sealVersion || s.KDF != "argon2id" {
		return nil, fmt.Errorf("stored account key uses an unknown format (v%d, %s)", s.Version, s.KDF)
	}
	// Refuse absurd costs from a corrupted record rather than allocating them.
	if s.Params.Time == 0 || s.Params.Time > 16 || s.Params.Memory == 0 || s.Params.Memory > 1<<21 || s.Params.Threads == 0 {
		return nil, errors.New("stored account key has invalid key-derivation parameters")
	}
	aead, err := newGCM(deriveKey(secret, s.Salt, s.Params))
	if err != nil {
		return nil, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, errors.New("stored account key has a bad nonce")
	}
	plain, err := aead.Open(nil, s.Nonce, s.Data, sealAAD(issuerName))
	if err != nil {
		return nil, errWrongSecret
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}
