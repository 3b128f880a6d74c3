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
func specHash(c Certificate) string {
	norm := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, s := range in {
			out = append(out, strings.ToLower(strings.TrimSpace(s)))
		}
		sort.Strings(out)
		return out
	}
	data, _ := json.Marshal(struct {
		Subject sdk.Subject
		DNS     []string
		IP      []string
		Email   []string
		Key     sdk.KeySpec
	}{c.Subject, norm(c.SANs.DNSNames), norm(c.SANs.IPAddresses), norm(c.SANs.EmailAddresses), c.KeySpec})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
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
