// Package engine plans and runs the life of each configured certificate: it compares what the
// configuration wants, what each device holds (one Inventory per device) and what the state
// database recorded, decides an action per certificate, and carries it out step by step —
// GenerateCSR, verify the CSR, submit to the CA, collect, ImportCert, Bind, one Commit per device,
// verify, Cleanup — recording every step before starting the next, so that a run that dies
// anywhere resumes where it stopped.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// Certificate is one certificate the configuration asks for.
type Certificate struct {
	Name    string
	Device  string
	Issuer  string
	Subject sdk.Subject
	SANs    sdk.SANs
	KeySpec sdk.KeySpec
	// RenewBefore renews this long before expiry; RenewFraction (0..1) instead renews when this
	// share of the lifetime is left. RenewFraction wins when both are set.
	RenewBefore   time.Duration
	RenewFraction float64
	Bindings      []sdk.Binding
	IssuerOptions map[string]any
	// CleanupAdopted lets a renewal delete the objects of a certificate that was adopted.
	CleanupAdopted bool
	// Verify is a configured endpoint for the served certificate check, besides those the plugin
	// reports.
	Verify *sdk.ServedEndpoint
	// RollbackOnVerifyFailure restores the previous bindings when the served check fails after a
	// deployment; otherwise the new certificate stays and the failure is reported.
	RollbackOnVerifyFailure bool
}

// Device is one configured device.
type Device struct {
	Name   string
	Plugin string
	Target sdk.Target
	// Concurrency is how many calls to it are in flight at once (1: its changes are serialized).
	Concurrency int
	// Site is the device's site label; an instance with Sharing.Site set works only on its own.
	Site string
}

// Action is what a plan decides for a certificate.
type Action string

const (
	ActionNone    Action = "none"
	ActionEnroll  Action = "enroll"
	ActionRenew   Action = "renew"
	ActionResume  Action = "resume"
	ActionRebind  Action = "rebind"
	ActionUnknown Action = "unknown" // the device could not be inspected, or the policy cannot decide (Error says why)
)

// specHash identifies what a certificate must contain: its subject, names and key. A deployment
// made for another hash needs reissuing.
//
// The hash is of the JSON encoding of
//
//	struct{ Subject sdk.Subject; DNS, IP, Email []string; Key sdk.KeySpec }
//
// (the names trimmed, lower-cased and sorted), as encoding/json writes it: recorded hashes were
// made so, and a different byte would renew the whole fleet. The encoding is written here
// directly (a run hashes every certificate; reflection made it a tenth of a steady-state run's
// planning); strings that encoding/json would escape are left to it.
func specHash(c Certificate) string {
	norm := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, s := range in {
			out = append(out, strings.ToLower(strings.TrimSpace(s)))
		}
		sort.Strings(out)
		return out
	}
	// On the stack: a certificate with a subject and a few names is longer than 256 bytes.
	b := make([]byte, 0, 1024)
	b = append(b, `{"Subject":{"CommonName":`...)
	b = appendJSONString(b, c.Subject.CommonName)
	b = append(b, `,"Organization":`...)
	b = appendJSONString(b, c.Subject.Organization)
	b = append(b, `,"OrganizationalUnit":`...)
	b = appendJSONString(b, c.Subject.OrganizationalUnit)
	b = append(b, `,"Locality":`...)
	b = appendJSONString(b, c.Subject.Locality)
	b = append(b, `,"State":`...)
	b = appendJSONString(b, c.Subject.State)
	b = append(b, `,"Country":`...)
	b = appendJSONString(b, c.Subject.Country)
	b = append(b, `,"Email":`...)
	b = appendJSONString(b, c.Subject.Email)
	b = append(b, `},"DNS":`...)
	b = appendJSONStrings(b, norm(c.SANs.DNSNames))
	b = append(b, `,"IP":`...)
	b = appendJSONStrings(b, norm(c.SANs.IPAddresses))
	b = append(b, `,"Email":`...)
	b = appendJSONStrings(b, norm(c.SANs.EmailAddresses))
	b = append(b, `,"Key":{"Type":`...)
	b = strconv.AppendInt(b, int64(c.KeySpec.Type), 10)
	b = append(b, `,"Bits":`...)
	b = strconv.AppendInt(b, int64(c.KeySpec.Bits), 10)
	b = append(b, `}}`...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// appendJSONStrings appends a non-nil list of strings as encoding/json encodes it.
func appendJSONStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json encodes it: quoted as is when it is printable
// ASCII without a quote, backslash or HTML character (all a configuration's names are), else by
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			data, _ := json.Marshal(s)
			return append(b, data...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// bindingKey names a binding the way the state records it.
func bindingKey(b sdk.Binding) string { return b.Kind + "/" + b.Name }

func bindingKeys(bs []sdk.Binding) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, bindingKey(b))
	}
	sort.Strings(out)
	return out
}
