package paloaltopanos_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
)

// logBuffer collects what the plugin logs, safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ctxLog is ctxT with the plugin's log kept.
func ctxLog(t *testing.T) (context.Context, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	ctx, cancel := context.WithTimeout(sdk.WithLogger(context.Background(), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, logs
}

// enrollBindCommit enrolls cn, binds it to web-tls and commits; it returns the certificate.
func enrollBindCommit(t *testing.T, ctx context.Context, p sdk.Plugin, tgt sdk.Target, ca *conformance.TestCA, cn string) (*x509.Certificate, sdk.ImportResult) {
	t.Helper()
	csr, err := p.GenerateCSR(ctx, tgt, csrRequest(cn))
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := ca.SignCSR(csr.PEM, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM()})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: []sdk.Binding{webTLS}}); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if _, err := p.Commit(ctx, tgt, sdk.CommitRequest{Description: "certfleet: " + cn}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return cert, res
}

// Finding 1, both ways a device may take a chain: kept on the entry (DOC-4289), or refused on a
// key entry (psiri/letsencrypt_paloalto#1) by a device that sends separate CA entries. Either
// way a client gets the leaf and the intermediate, never the root.
func TestTheServedChainHoldsTheIntermediates(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name   string
		mutate func(*panossim.Config)
	}{
		{"chain kept on the entry", nil},
		{"chain refused on the key entry, CA entries sent", func(c *panossim.Config) { c.RefuseChainOnKeyEntry, c.ChainFromCAEntries = true, true }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, mode.mutate)
			tgt := targetFor(sim, passwordCreds, nil)
			ca := newCA(t)
			ctx, logs := ctxLog(t)
			cert, _ := enrollBindCommit(t, ctx, paloaltopanos.New(), tgt, ca, "chain.example")
			got := dialChain(t, sim.ServedAddress("web-tls"))
			if len(got) != 2 || !got[0].Equal(cert) || !got[1].Equal(ca.Intermediate) {
				t.Fatalf("served %d certificates; want the leaf and the intermediate", len(got))
			}
			refused := strings.Contains(logs.String(), "refused the certificate with its intermediates")
			if refused != (mode.mutate != nil) {
				t.Errorf("warning about the refused chain logged: %v; log:\n%s", refused, logs)
			}
		})
	}
	// A device that refuses the chain and sends no CA entries serves the leaf alone: the plugin
	// says so, and the core's check of what is served catches it.
	sim := startSim(t, func(c *panossim.Config) { c.RefuseChainOnKeyEntry = true })
	ctx, logs := ctxLog(t)
	enrollBindCommit(t, ctx, paloaltopanos.New(), targetFor(sim, passwordCreds, nil), newCA(t), "leaf-only.example")
	if got := dialChain(t, sim.ServedAddress("web-tls")); len(got) != 1 || !strings.Contains(logs.String(), "clients may not get the intermediates") {
		t.Errorf("served %d certificates; log:\n%s", len(got), logs)
	}
}

// Finding 2: a device that refuses CA certificates as entries of their own ("private key
// doesn't exist for csr") does not fail the import; the warning names the entry, the leaf and
// its chain are installed and served, and a second import of the same leaf succeeds too.
func TestARefusedCAEntryIsAWarning(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.RefuseCAImport = true })
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	ctx, logs := ctxLog(t)
	cert, res := enrollBindCommit(t, ctx, p, tgt, ca, "refused-ca.example")
	if len(res.ChainRefs) != 0 {
		t.Errorf("chain refs %v for CA entries the device refused", res.ChainRefs)
	}
	log := logs.String()
	if !strings.Contains(log, "refused the CA certificate") || !strings.Contains(log, "entry=ca-") || !strings.Contains(log, "private key doesn't exist for csr") {
		t.Errorf("no warning naming the refused entry and the device's message; log:\n%s", log)
	}
	if got := dialChain(t, sim.ServedAddress("web-tls")); len(got) != 2 || !got[0].Equal(cert) || !got[1].Equal(ca.Intermediate) {
		t.Errorf("served %d certificates; want the leaf and the intermediate", len(got))
	}
	if _, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: res.CertRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM()}); err != nil {
		t.Errorf("a repeated ImportCert (a resumed run): %v", err)
	}
}

// otherAdminsChange is unfinished work of the administrator "admin" in the candidate
// configuration: a new SSL/TLS service profile.
const otherAdminsProfile = "/config/shared/ssl-tls-service-profile/entry[@name='admins-draft']"

func stageOtherAdminsChange(t *testing.T, sim *panossim.Sim) {
	t.Helper()
	if err := sim.StageAs("admin", otherAdminsProfile, "<certificate>sim-factory-web</certificate>"); err != nil {
		t.Fatal(err)
	}
}

// Finding 3: commits are partial by default, by the administrator that made our changes: the
// keygen user, or the admin the API key belongs to (show admins marks it with <self/>). Another
// administrator's pending change stays pending. commit_scope: full commits everything.
func TestCommitsArePartialByDefault(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		apiKey    bool
		opts      sdk.Options
		wantAdmin string // "" = a full commit
	}{
		{"api key", true, nil, "certfleet"},
		{"keygen user", false, nil, "certfleet"},
		{"commit_admin", true, sdk.Options{"commit_admin": "certfleet"}, "certfleet"},
		{"commit_scope full", true, sdk.Options{"commit_scope": "full"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, nil)
			creds := passwordCreds
			if c.apiKey {
				key, err := sim.IssueKey("certfleet")
				if err != nil {
					t.Fatal(err)
				}
				creds = sdk.Credentials{APIKey: key}
			}
			stageOtherAdminsChange(t, sim)
			cert, _ := enrollBindCommit(t, ctxT(t), paloaltopanos.New(), targetFor(sim, creds, c.opts), newCA(t), "scope.example")
			if !served(t, sim, "web-tls").Equal(cert) {
				t.Fatal("our certificate is not live after the commit")
			}
			commits := sim.Commits()
			last := commits[len(commits)-1]
			if c.wantAdmin == "" {
				if last.Partial || sim.PendingChangesBy("admin") != 0 || sim.Running(otherAdminsProfile) == "" {
					t.Errorf("commit_scope full: %+v; the other admin's change must be committed too", last)
				}
				return
			}
			if !last.Partial || !slices.Equal(last.Admins, []string{c.wantAdmin}) {
				t.Errorf("commit %+v, want a partial commit by %s", last, c.wantAdmin)
			}
			if sim.PendingChangesBy("admin") != 1 || sim.Running(otherAdminsProfile) != "" {
				t.Error("another administrator's pending change was committed")
			}
		})
	}
}

// Finding 3, when the device cannot tell whose key it is (before PAN-OS 10.0 show admins has no
// <self/>): a clear error with the fix, nothing committed; and options that contradict.
func TestCommitScopeErrors(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.ShowAdminsWithoutSelf = true })
	key, err := sim.IssueKey("certfleet")
	if err != nil {
		t.Fatal(err)
	}
	stageOtherAdminsChange(t, sim)
	p := paloaltopanos.New()
	_, err = p.Commit(ctxT(t), targetFor(sim, sdk.Credentials{APIKey: key}, nil), sdk.CommitRequest{})
	e := wantCode(t, "Commit with an API key the device cannot name", err, codes.FailedPrecondition, "")
	if !strings.Contains(e.Message, "commit_admin") || !strings.Contains(e.Message, "commit_scope: full") {
		t.Errorf("error gives no fix: %v", err)
	}
	if len(sim.Commits()) != 0 || sim.PendingChangesBy("admin") != 1 {
		t.Error("something was committed")
	}
	for name, opts := range map[string]sdk.Options{
		"unknown scope":     {"commit_scope": "mine"},
		"full with admin":   {"commit_scope": "full", "commit_admin": "certfleet"},
		"description type":  {"commit_description": 7},
		"scope not a value": {"commit_scope": true},
	} {
		_, err := p.CheckTarget(ctxT(t), targetFor(sim, passwordCreds, opts))
		e := wantCode(t, name, err, codes.InvalidArgument, "")
		if !strings.Contains(e.Message, "commit_") {
			t.Errorf("%s: the error does not name the option: %v", name, err)
		}
	}
}

// Finding 4: no source shows ECDSA P-521 on the box, so it is neither advertised nor sent.
func TestNoECDSAP521(t *testing.T) {
	t.Parallel()
	p := paloaltopanos.New()
	info, err := p.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(info.Capabilities.KeySpecs, sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 521}) {
		t.Error("P-521 is advertised")
	}
	sim := startSim(t, nil)
	req := csrRequest("p521.example")
	req.KeySpec = sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 521}
	before := len(sim.Calls())
	_, err = p.GenerateCSR(ctxT(t), targetFor(sim, passwordCreds, nil), req)
	e := wantCode(t, "GenerateCSR of P-521", err, codes.InvalidArgument, sdk.ReasonUnsupported)
	if !strings.Contains(e.Message, "README") || len(sim.Calls()) != before {
		t.Errorf("error %v, %d calls: want a clear error before anything is sent", err, len(sim.Calls())-before)
	}
}

// Finding 5: the commit description can be configured (the Sectigo agent's
// paloalto_commit_description); without the option it is the core's.
func TestCommitDescriptionOption(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	enrollBindCommit(t, ctxT(t), p, targetFor(sim, passwordCreds, nil), ca, "one.example")
	enrollBindCommit(t, ctxT(t), p, targetFor(sim, passwordCreds, sdk.Options{"commit_description": "Sectigo & <certfleet> renewal"}), ca, "two.example")
	commits := sim.Commits()
	if len(commits) != 2 || commits[0].Description != "certfleet: one.example" || commits[1].Description != "Sectigo & <certfleet> renewal" {
		t.Errorf("commit descriptions %q and %q", commits[0].Description, commits[len(commits)-1].Description)
	}
}
