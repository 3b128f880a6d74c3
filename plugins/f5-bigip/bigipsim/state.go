package bigipsim

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The configuration a BIG-IP keeps in mcpd: what tmsh lists and "save sys config" writes. Values
// are stored by value and their slices are never changed in place, so a shallow copy of the maps
// (clone) is a snapshot: the saved configuration, and the scratch copy a transaction runs on.

type keyObj struct {
	path       string
	signer     crypto.Signer
	keyType    string // rsa-private, ec-private
	keySize    int
	curve      string // none, prime256v1, secp384r1
	passphrase string // empty for securityType normal
	created    time.Time
}

func (k keyObj) securityType() string {
	if k.passphrase != "" {
		return "password"
	}
	return "normal"
}

type csrObj struct {
	path       string
	key        string
	pem        string
	systemPath string
	created    time.Time
}

type certObj struct {
	path    string
	certs   []*x509.Certificate
	created time.Time
	updated time.Time
}

type chainEntry struct {
	name, cert, key, chain string
}

type profileObj struct {
	path         string
	defaultsFrom string
	entries      []chainEntry
	serverName   string
	sniDefault   bool
	description  string
	// settings are the TLS settings set on this profile itself (by REST name); the others come
	// from the parent chain (effectiveSettings).
	settings map[string]any
}

// profileSettings are the client-ssl properties the sim keeps and inherits through defaultsFrom:
// the ones f5-ansible's bigip_profile_client_ssl reads and writes (api_attributes), which cover
// ciphers, protocol options, renegotiation and client-certificate authentication.
var profileSettings = []string{
	"ciphers", "cipherGroup", "tmOptions", "secureRenegotiation", "renegotiation", "allowNonSsl",
	"sniRequire", "peerCertMode", "authenticate", "authenticateDepth", "retainCertificate", "caFile",
	"clientCertCa", "crlFile", "allowExpiredCrl", "strictResume", "cacheSize", "cacheTimeout",
}

// factoryClientSSL are /Common/clientssl's values as a real 11.6.2 device listed them for a
// child profile that set none of them (colin-stubbs/dehydrated-bigip issue #9: ciphers DEFAULT,
// tmOptions [dont-insert-empty-fragments], peerCertMode ignore, authenticate once,
// authenticateDepth 9, renegotiation enabled, secureRenegotiation require, ...).
func factoryClientSSL() map[string]any {
	return map[string]any{
		"ciphers": "DEFAULT", "cipherGroup": "none", "tmOptions": []any{"dont-insert-empty-fragments"},
		"secureRenegotiation": "require", "renegotiation": "enabled", "allowNonSsl": "disabled", "sniRequire": "false",
		"peerCertMode": "ignore", "authenticate": "once", "authenticateDepth": float64(9), "retainCertificate": "true",
		"caFile": "none", "clientCertCa": "none", "crlFile": "none", "allowExpiredCrl": "disabled", "strictResume": "disabled",
		"cacheSize": float64(262144), "cacheTimeout": float64(3600),
	}
}

// effectiveSettings walks the parent chain: a value set on a profile wins over its parent's.
func (s *state) effectiveSettings(p profileObj) map[string]any {
	out := map[string]any{}
	seen := map[string]bool{}
	for cur, ok := p, true; ok && !seen[cur.path]; cur, ok = s.clientSSL[cur.defaultsFrom] {
		seen[cur.path] = true
		for k, v := range cur.settings {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
	return out
}

type attachedProfile struct {
	path    string
	context string
}

type virtualObj struct {
	path     string
	port     int
	profiles []attachedProfile
}

type state struct {
	folders   map[string]bool
	keys      map[string]keyObj
	csrs      map[string]csrObj
	certs     map[string]certObj
	clientSSL map[string]profileObj
	// otherProfiles are the non-SSL profiles a virtual may carry (tcp, http), by path → kind.
	otherProfiles map[string]string
	virtuals      map[string]virtualObj
	// generation counts changes, for config-sync status.
	generation int64
}

func newState() *state {
	return &state{
		folders: map[string]bool{"Common": true}, keys: map[string]keyObj{}, csrs: map[string]csrObj{},
		certs: map[string]certObj{}, clientSSL: map[string]profileObj{}, virtuals: map[string]virtualObj{},
		otherProfiles: map[string]string{"/Common/tcp": "tcp", "/Common/http": "http", "/Common/fastL4": "fastl4"},
	}
}

func (s *state) clone() *state {
	return &state{
		folders: maps.Clone(s.folders), keys: maps.Clone(s.keys), csrs: maps.Clone(s.csrs),
		certs: maps.Clone(s.certs), clientSSL: maps.Clone(s.clientSSL), otherProfiles: maps.Clone(s.otherProfiles),
		virtuals: maps.Clone(s.virtuals), generation: s.generation,
	}
}

// BIG-IP object names: a letter, digit or '_' first, then letters, digits and ._-; the sim allows
// up to 255 characters (tmsh's limit for most names [UNCONFIRMED]).
var objectName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$`)

// fullPath resolves name (short or /Partition/name) and partition into /Partition/name.
func fullPath(name, partition string) (string, error) {
	if strings.HasPrefix(name, "/") {
		parts := strings.Split(name[1:], "/")
		if len(parts) != 2 || !objectName.MatchString(parts[0]) || !objectName.MatchString(parts[1]) {
			return "", fmt.Errorf("invalid object name %q", name)
		}
		return name, nil
	}
	if partition == "" {
		partition = "Common"
	}
	if !objectName.MatchString(name) || !objectName.MatchString(partition) {
		return "", fmt.Errorf("invalid object name %q", name)
	}
	return "/" + partition + "/" + name, nil
}

func splitPath(p string) (partition, name string) {
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)
	if len(parts) != 2 {
		return "Common", p
	}
	return parts[0], parts[1]
}

// canReference reports whether an object in from's partition may refer to target: objects see
// their own partition and /Common only.
func canReference(from, target string) bool {
	fp, _ := splitPath(from)
	tp, _ := splitPath(target)
	return tp == "Common" || tp == fp
}

// clientSSLOf returns the client-ssl profiles attached to a virtual, in order.
func (s *state) clientSSLOf(v virtualObj) []profileObj {
	var out []profileObj
	for _, ap := range v.profiles {
		if p, ok := s.clientSSL[ap.path]; ok {
			out = append(out, p)
		}
	}
	return out
}

// certInUse names the profiles whose entries use path as cert or chain.
func (s *state) certInUse(path string) []string {
	var out []string
	for _, p := range s.clientSSL {
		for _, e := range p.entries {
			if e.cert == path || e.chain == path {
				out = append(out, p.path)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func (s *state) keyInUse(path string) []string {
	var out []string
	for _, p := range s.clientSSL {
		for _, e := range p.entries {
			if e.key == path {
				out = append(out, p.path)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func (s *state) profileInUse(path string) []string {
	var out []string
	for _, v := range s.virtuals {
		for _, ap := range v.profiles {
			if ap.path == path {
				out = append(out, v.path)
			}
		}
	}
	slices.Sort(out)
	return out
}
