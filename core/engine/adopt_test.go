package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

func TestPlanAdoption(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	live := func(mod func(*sdk.DeviceCertificate)) sdk.DeviceCertificate {
		dc := sdk.DeviceCertificate{CertRef: "agent-www", Subject: "CN=WWW.example.com,O=Someone Else", SHA256Fingerprint: "aa",
			SANs:      sdk.SANs{DNSNames: []string{"example.com", "www.example.com"}},
			KeySpec:   sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(200 * 24 * time.Hour),
			Bindings: []sdk.Binding{{Kind: "live-link", Name: "www"}}}
		if mod != nil {
			mod(&dc)
		}
		return dc
	}
	inv := func(dcs ...sdk.DeviceCertificate) inventory {
		out := inventory{certs: map[string]sdk.DeviceCertificate{}, boundAt: map[string][]string{}}
		for _, dc := range dcs {
			out.certs[dc.CertRef] = dc
			for _, b := range dc.Bindings {
				out.boundAt[bindingKey(b)] = append(out.boundAt[bindingKey(b)], dc.CertRef)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		cert   func(*Certificate)
		inv    inventory
		force  bool
		action Action // "" means not adopted
		ref    string
		reason string
	}{
		{name: "live with the configured names, key and binding", inv: inv(live(nil)), action: ActionAdopt, ref: "agent-www", reason: "agent-www is live at live-link/www"},
		{name: "longest lasting of two", inv: inv(live(nil), live(func(dc *sdk.DeviceCertificate) { dc.CertRef, dc.NotAfter = "agent-www-2", now.Add(300*24*time.Hour) })),
			action: ActionAdopt, ref: "agent-www-2"},
		{name: "inside the renewal window: adopt, then renew", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.NotAfter = now.Add(10 * 24 * time.Hour) })),
			action: ActionRenew, ref: "agent-www", reason: "adopt agent-www, then expires in 10 days"},
		{name: "forced: adopt, then renew", inv: inv(live(nil)), force: true, action: ActionRenew, ref: "agent-www", reason: "adopt agent-www, then renewal forced"},
		{name: "expired", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.NotAfter = now.Add(-time.Hour) }))},
		{name: "not yet valid", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.NotBefore = now.Add(time.Hour) }))},
		{name: "another key size", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.KeySpec.Bits = 384 }))},
		{name: "another key type", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.KeySpec = sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 256} }))},
		{name: "a SAN missing", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.SANs.DNSNames = dc.SANs.DNSNames[:1] }))},
		{name: "an extra SAN", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.SANs.DNSNames = append(dc.SANs.DNSNames, "api.example.com") }))},
		{name: "another common name", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.Subject = "CN=example.com" }))},
		{name: "bound elsewhere", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.Bindings = []sdk.Binding{{Kind: "live-link", Name: "api"}} }))},
		{name: "not bound at every configured binding", cert: func(c *Certificate) { c.Bindings = append(c.Bindings, sdk.Binding{Kind: "live-link", Name: "api"}) }, inv: inv(live(nil))},
		{name: "a CA certificate", inv: inv(live(func(dc *sdk.DeviceCertificate) { dc.IsCA = true }))},
		{name: "nothing on the device", inv: inv()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCert()
			if tc.cert != nil {
				tc.cert(&c)
			}
			item := PlanItem{Certificate: c.Name, cert: c}
			adopted := planAdoption(&item, tc.inv, tc.force, now)
			if tc.action == "" {
				if adopted {
					t.Fatalf("adopted %s (%s): want an enrollment", item.adopted.CertRef, item.Reason)
				}
				return
			}
			if !adopted {
				t.Fatalf("not adopted, want %s of %s", tc.action, tc.ref)
			}
			if item.Action != tc.action || item.adopted.CertRef != tc.ref || !strings.Contains(item.Reason, tc.reason) {
				t.Fatalf("got %s of %s (%q), want %s of %s (%q)", item.Action, item.adopted.CertRef, item.Reason, tc.action, tc.ref, tc.reason)
			}
			d := item.adopted
			if !d.Adopted || d.OrderRef != "" || d.SpecHash != specHash(c) || d.Fingerprint != tc.inv.certs[tc.ref].SHA256Fingerprint || item.deployment != d {
				t.Fatalf("adopted deployment %+v", d)
			}
			// The next plan, with the adoption recorded, leaves it alone until it is due.
			if tc.action == ActionAdopt {
				if action, reason := decide(c, d, tc.inv, false, now); action != ActionNone {
					t.Fatalf("after adoption: %s (%s)", action, reason)
				}
			}
		})
	}
}
