package f5bigip

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// BIG-IP object names: letters, digits, '.', '_' and '-', not starting with '.' or '-'.
var (
	objectName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$`)
	fullName   = regexp.MustCompile(`^/[A-Za-z0-9_][A-Za-z0-9._-]{0,63}/[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$`)
)

// resolve turns a short name (in the target's partition) or a full path into a full path.
func (d *device) resolve(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		if !fullName.MatchString(name) {
			return "", fmt.Errorf("%q is not a BIG-IP object path (/Partition/name)", name)
		}
		return name, nil
	}
	if !objectName.MatchString(name) {
		return "", fmt.Errorf("%q is not a BIG-IP object name (letters, digits, '.', '_', '-')", name)
	}
	return "/" + d.partition + "/" + name, nil
}

// display is how a binding name is reported: short in the target's partition, else the full path.
func (d *device) display(path string) string {
	if rest, ok := strings.CutPrefix(path, "/"+d.partition+"/"); ok {
		return rest
	}
	return path
}

func splitPath(path string) (partition, name string) {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)
	if len(parts) != 2 {
		return "", path
	}
	return parts[0], parts[1]
}

// maxBaseHint is how much of a hint goes into a base name.
const maxBaseHint = 48

// csrBaseName is the stem of the objects of one GenerateCSR call: for an attempt
// (CSRRequest.AttemptID) always "<hint>_<12 hex of the attempt>" (sdk.AttemptName), so a call
// repeated after its answer was lost finds the objects the first call made; without one, baseName.
func csrBaseName(req sdk.CSRRequest, now time.Time) (string, error) {
	if req.AttemptID == "" {
		return baseName(req.NameHint, now)
	}
	return sdk.AttemptName(cleanHint(req.NameHint), "_", req.AttemptID, maxBaseHint+1+sdk.AttemptTagLen), nil
}

// cleanHint keeps what an object name allows from a hint; never empty.
func cleanHint(hint string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, hint)
	clean = strings.TrimLeft(clean, ".-")
	if len(clean) > maxBaseHint {
		clean = clean[:maxBaseHint]
	}
	if clean == "" {
		clean = "certfleet"
	}
	return clean
}

// baseName makes the stem of a new key's objects: "<hint>_<yymmddHHMMSS>_<6 hex>".
func baseName(hint string, now time.Time) (string, error) {
	clean := cleanHint(hint)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s_%s_%x", clean, now.UTC().Format("060102150405"), b), nil
}

// keyRef is what GenerateCSR returns: the key's path and the SHA-256 of its public key (the CSR's
// SubjectPublicKeyInfo), so ImportCert can reject a certificate for another key by itself.
type keyRef struct {
	path string
	spki string // hex; empty for a key certfleet did not make
}

func (k keyRef) String() string {
	if k.spki == "" {
		return k.path
	}
	return k.path + "#" + k.spki
}

var spkiHex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func parseKeyRef(s string) (keyRef, error) {
	path, spki, hasHash := strings.Cut(s, "#")
	if !fullName.MatchString(path) || (hasHash && !spkiHex.MatchString(spki)) {
		return keyRef{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "key_ref %q was not made by this plugin (want /Partition/name.key#<sha256>)", s)
	}
	return keyRef{path: path, spki: spki}, nil
}

func spkiHash(rawSPKI []byte) string {
	sum := sha256.Sum256(rawSPKI)
	return hex.EncodeToString(sum[:])
}

// stem is a key path without ".key": the base of the names of its CSR, certificate and chain.
func stem(keyPath string) string { return strings.TrimSuffix(keyPath, ".key") }

func csrPath(keyPath string) string { return stem(keyPath) + ".csr" }

// certPath names the certificate object for a key and a certificate fingerprint, so importing the
// same certificate again finds it, and another certificate for the same key gets another name.
func certPath(keyPath, fingerprint string) string {
	return stem(keyPath) + "_" + fingerprint[:8] + ".crt"
}

// chainPath is the chain bundle installed with a certificate.
func chainPath(certPath string) string { return strings.TrimSuffix(certPath, ".crt") + "_chain.crt" }

// pciCertPath is the certificate object a PCI key's profile holds: made on the device as a
// placeholder by GenerateCSR, replaced in place by ImportCert with the CA-issued certificate.
func pciCertPath(keyPath string) string { return stem(keyPath) + ".crt" }

// keyProfilePath is the client-ssl profile GenerateCSR makes for a PCI key: the only place the
// key's passphrase lives (encrypted by the device).
func keyProfilePath(keyPath string) string { return stem(keyPath) + "_clientssl" }
