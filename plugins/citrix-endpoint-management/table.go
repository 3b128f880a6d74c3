package cem

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/xms"
)

// The certificate list has no role field and no stable id (an id changes on every import), so
// the plugin writes what it needs into the description it sets at import, which the server keeps
// on the first certificate of the chain, the leaf (SEED; reference §5, "Stable references"):
//
//	certfleet role=<stored|server|listener|saml> name=<binding or certificate name> key=<key id>
//
// "stored" is a certificate ImportCert installed and no Bind has claimed yet (imported as a
// server certificate, which is how the API stores a keystore that serves nothing);
// and a key parked between GenerateCSR and ImportCert is described
//
//	certfleet key <key id> <name hint> (do not use)
const (
	tagPrefix    = "certfleet "
	parkedPrefix = "certfleet key "
	keyRefPrefix = "cfk-"
)

// row is one entry of the table with what the plugin reads from it.
type row struct {
	xms.Certificate
	certRef string
	role    string // from our tag: stored, server, listener or saml; empty for entries we did not import
	name    string
	keyID   string
	parked  bool
}

// table is a snapshot of the certificate list.
type table []row

func (s *session) table(ctx context.Context) (table, error) {
	var list []xms.Certificate
	err := s.retry(ctx, "list certificates", func() error {
		var err error
		list, err = s.c.List(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(table, 0, len(list))
	for _, c := range list {
		r := row{Certificate: c, certRef: certRefOf(c)}
		r.role, r.name, r.keyID, r.parked = parseTag(c.Description)
		out = append(out, r)
	}
	return out, nil
}

// certRefOf is "sn-<hex serial>-<8 hex of SHA-256 of the issuer's certString>": stable across
// re-imports, computed from the list alone (reference §5).
func certRefOf(c xms.Certificate) string {
	sum := sha256.Sum256([]byte(c.CertDetails.IssuerName.CertString))
	return "sn-" + serialHex(c.CertDetails.SerialNum) + "-" + hex.EncodeToString(sum[:4])
}

// serialHex reads serialNum, which the samples print in decimal (24 and 38 digits); hex is the
// fallback (reference §2: UNCONFIRMED).
func serialHex(s string) string {
	s = strings.TrimSpace(s)
	if n, ok := new(big.Int).SetString(s, 10); ok {
		return n.Text(16)
	}
	if n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ToLower(s), "0x"), 16); ok {
		return n.Text(16)
	}
	return strings.ToLower(s)
}

func tagOf(role, name, keyID string) string {
	return fmt.Sprintf("%srole=%s name=%s key=%s", tagPrefix, role, sanitize(name), keyID)
}

func parkedTag(keyID, hint string) string {
	return fmt.Sprintf("%s%s %s (do not use)", parkedPrefix, keyID, sanitize(hint))
}

func sanitize(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	if s == "" {
		return "-"
	}
	return s
}

func parseTag(desc string) (role, name, keyID string, parked bool) {
	if strings.HasPrefix(desc, parkedPrefix) {
		f := strings.Fields(strings.TrimPrefix(desc, parkedPrefix))
		if len(f) > 0 {
			return "", "", f[0], true
		}
		return "", "", "", false
	}
	if !strings.HasPrefix(desc, tagPrefix) {
		return "", "", "", false
	}
	for _, f := range strings.Fields(strings.TrimPrefix(desc, tagPrefix)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "role":
			role = v
		case "name":
			name = v
		case "key":
			keyID = v
		}
	}
	return role, name, keyID, false
}

// keyIDLen is the length of a key ID: 16 hex digits.
const keyIDLen = 16

func newKeyID() string {
	b := make([]byte, keyIDLen/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func keyIDOf(keyRef string) (string, bool) {
	id, ok := strings.CutPrefix(keyRef, keyRefPrefix)
	if !ok || len(id) != keyIDLen {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", false
	}
	return id, true
}

// byRef finds the entry with certRef.
func (tb table) byRef(certRef string) (row, bool) {
	for _, r := range tb {
		if r.certRef == certRef {
			return r, true
		}
	}
	return row{}, false
}

// byCert finds the entry of a certificate: same serial and issuer common name.
func (tb table) byCert(c *x509.Certificate) (row, bool) {
	for _, r := range tb {
		if serialHex(r.CertDetails.SerialNum) == c.SerialNumber.Text(16) && r.CertDetails.IssuerName.CommonName == c.Issuer.CommonName {
			return r, true
		}
	}
	return row{}, false
}

// parked finds the entry holding a parked key.
func (tb table) parked(keyID string) (row, bool) {
	for _, r := range tb {
		if r.parked && r.keyID == keyID {
			return r, true
		}
	}
	return row{}, false
}

// withKey returns every entry holding keyID: parked or imported by us.
func (tb table) withKey(keyID string) []row {
	var out []row
	for _, r := range tb {
		if r.keyID == keyID && keyID != "" {
			out = append(out, r)
		}
	}
	return out
}

// holder returns the entry that holds a role under a name: of the entries we tagged so, the one
// the server marks active, else the newest (highest id). The meaning of isActive is unconfirmed
// (reference §2), hence the fallback.
func (tb table) holder(role, name string) (row, bool) {
	var best row
	found := false
	for _, r := range tb {
		if r.parked || r.role != role || r.name != name {
			continue
		}
		switch {
		case !found:
			best, found = r, true
		case bool(r.IsActive) && !bool(best.IsActive):
			best = r
		case bool(r.IsActive) == bool(best.IsActive) && r.ID > best.ID:
			best = r
		}
	}
	return best, found
}

// holds reports whether r is the holder of its own role and name.
func (tb table) holds(r row) bool {
	if r.role == "" || r.role == roleStored || r.parked {
		return false
	}
	h, ok := tb.holder(r.role, r.name)
	return ok && h.ID == r.ID
}

// Tag roles.
const (
	roleStored   = "stored"
	roleServer   = "server"
	roleListener = "listener"
	roleSAML     = "saml"
)

func roleOfKind(kind string) (string, bool) {
	switch kind {
	case KindServer:
		return roleServer, true
	case KindListener:
		return roleListener, true
	case KindSAML:
		return roleSAML, true
	}
	return "", false
}

func kindOfRole(role string) string {
	switch role {
	case roleListener:
		return KindListener
	case roleSAML:
		return KindSAML
	}
	return KindServer
}

// importAs is the import path a tag role is imported under (reference §2: useAs none is server).
func importAs(role string) xms.Role {
	switch role {
	case roleListener:
		return xms.RoleListener
	case roleSAML:
		return xms.RoleSAML
	}
	return xms.RoleServer
}
