package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// statusCertificate is a configured certificate renewed 30 days before it expires.
func statusCertificate(name string) Certificate {
	host := name + ".example.com"
	return Certificate{Name: name, Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: host}, SANs: sdk.SANs{DNSNames: []string{host}},
		KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, RenewBefore: 30 * 24 * time.Hour,
		Bindings: []sdk.Binding{{Kind: "live-link", Name: name}}}
}

// Status says of each certificate what the state says the next run does, without an inventory.
func TestStatusOfSaysTheNextAction(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	issued := now.Add(-60 * 24 * time.Hour)
	deployed := func(c Certificate, notAfter time.Time) state.Deployment {
		return state.Deployment{Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, CertRef: "cf-" + c.Name, Serial: "01",
			Fingerprint: "f-" + c.Name, NotBefore: issued, NotAfter: notAfter, SpecHash: specHash(c), Summary: true}
	}
	current, revoked, changed, expired, due := statusCertificate("current"), statusCertificate("revoked"), statusCertificate("changed"),
		statusCertificate("expired"), statusCertificate("due")
	resumed, fresh := statusCertificate("resumed"), statusCertificate("fresh")
	st := &StatusState{deployments: map[string]state.Deployment{}, ops: map[string]*state.Operation{}, last: map[string]state.Result{}}
	for _, d := range []state.Deployment{deployed(current, now.Add(100*24*time.Hour)), deployed(revoked, now.Add(100*24*time.Hour)),
		deployed(changed, now.Add(100*24*time.Hour)), deployed(expired, now.Add(-time.Hour)), deployed(due, now.Add(20*24*time.Hour)),
		deployed(resumed, now.Add(20*24*time.Hour)), {Certificate: "gone", Device: "web9", Issuer: "ca", NotAfter: now.Add(48 * time.Hour)}} {
		st.deployments[d.Certificate] = d
	}
	d := st.deployments["revoked"]
	d.Revoked = true
	st.deployments["revoked"] = d
	d = st.deployments["changed"]
	d.SpecHash = "other"
	st.deployments["changed"] = d
	st.ops["resumed"] = &state.Operation{Certificate: "resumed", Action: "renew", Step: state.StepIssued}
	st.last["current"] = state.Result{Certificate: "current", Outcome: state.OutcomeUnchanged, FinishedAt: now}
	st.last["expired"] = state.Result{Certificate: "expired", Outcome: state.OutcomeFailed, Error: "inventory of web1: unavailable", FinishedAt: now}

	e := New(Options{Certificates: []Certificate{current, revoked, changed, expired, due, resumed, fresh}, Now: func() time.Time { return now }})
	want := map[string]string{
		"current": "renew on 2027-02-15",
		"revoked": "renew: revoked by the CA",
		"changed": "renew: subject, names or key changed in the configuration",
		"expired": "renew: expired on 2026-12-07",
		"due":     "renew: expires in 20 days (renewal window opened 2026-11-27)",
		"resumed": `resume renew from step "issued"`,
		"fresh":   "enroll",
	}
	rows := e.StatusOf(st)
	if len(rows) != len(want)+1 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	for _, r := range rows[:len(want)] {
		if r.NextAction != want[r.Certificate] || r.Retired {
			t.Errorf("%s: next action %q, want %q", r.Certificate, r.NextAction, want[r.Certificate])
		}
		if d, ok := st.deployments[r.Certificate]; ok != (r.DaysLeft != nil) || (ok && (*r.DaysLeft != days(d.NotAfter.Sub(now)) ||
			!r.RenewAt.Equal(d.NotAfter.Add(-30*24*time.Hour)) || r.Serial != "01")) {
			t.Errorf("%s: %+v", r.Certificate, r)
		}
	}
	if r := rows[0]; r.LastOutcome != "unchanged" || !r.LastRunAt.Equal(now) {
		t.Errorf("current: %+v", r)
	}
	if r := rows[3]; r.LastOutcome != "failed" || r.LastError != "inventory of web1: unavailable" {
		t.Errorf("expired: %+v", r)
	}
	if r := rows[len(want)]; r.Certificate != "gone" || !r.Retired || r.DaysLeft == nil || *r.DaysLeft != 2 || r.NextAction == "" {
		t.Errorf("retired: %+v", r)
	}
}

// BenchmarkStatusOf10k builds the status rows of 10,000 current certificates from what was read
// of the state.
func BenchmarkStatusOf10k(b *testing.B) {
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	const n = 10000
	certs := make([]Certificate, n)
	st := &StatusState{deployments: map[string]state.Deployment{}, ops: map[string]*state.Operation{}, last: map[string]state.Result{}}
	for i := range certs {
		c := statusCertificate(fmt.Sprintf("web%04d-site%02d", i/10, i%10))
		certs[i] = c
		st.deployments[c.Name] = state.Deployment{Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, CertRef: "cf-" + c.Name, Serial: fmt.Sprintf("%x", i),
			Fingerprint: fmt.Sprintf("%064x", i), NotBefore: now, NotAfter: now.Add(200 * 24 * time.Hour), SpecHash: specHash(c), Summary: true}
		st.last[c.Name] = state.Result{Certificate: c.Name, Device: c.Device, Action: "none", Outcome: state.OutcomeUnchanged, FinishedAt: now}
	}
	e := New(Options{Certificates: certs, Now: func() time.Time { return now }})
	b.ReportAllocs()
	for b.Loop() {
		if rows := e.StatusOf(st); len(rows) != n || rows[0].NextAction != "renew on 2027-05-26" {
			b.Fatalf("%d rows, first %+v", len(rows), rows[0])
		}
	}
}
