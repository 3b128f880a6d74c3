package citrixnitro_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	citrixnitro "github.com/certfleet/certfleet/plugins/citrix-nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"google.golang.org/grpc/codes"
)

type env struct {
	t   *testing.T
	sim *nitrosim.Sim
	tgt sdk.Target
	p   *citrixnitro.Plugin
	ca  *conformance.TestCA
	ctx context.Context
}

func newEnv(t *testing.T, cfg nitrosim.Config, opts sdk.Options) *env {
	t.Helper()
	sim := startSim(t, cfg)
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, sim: sim, tgt: simTarget(sim, opts), p: citrixnitro.New(), ca: ca, ctx: ctx}
}

type enrolled struct {
	ref  string
	cert *x509.Certificate
}

func (e *env) enroll(hint, cn string) enrolled {
	e.t.Helper()
	csr, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: hint, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: cn, Organization: "Example", Country: "GB", State: "Yorkshire"},
		SANs:    sdk.SANs{DNSNames: []string{cn}}})
	if err != nil {
		e.t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := e.ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()})
	if err != nil {
		e.t.Fatalf("ImportCert: %v", err)
	}
	return enrolled{ref: res.CertRef, cert: cert}
}

func wantErr(t *testing.T, what string, err error, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, code)
	}
	e := sdk.AsError(err)
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("%s: got %v/%s (%v), want %v/%s", what, e.Code, e.Reason, err, code, reason)
	}
}

// TestRenewalHasNoHandshakeFailures loops TLS handshakes against both vservers while a renewal
// is bound, committed, rolled back and bound again; not one handshake may fail or see no chain.
func TestRenewalHasNoHandshakeFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	bindings := []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_www_443"}, {Kind: citrixnitro.KindGateway, Name: "gw_vpn_443"}}
	first := e.enroll("www", "www.example.com")
	if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: first.ref, Bindings: bindings}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Root)
	var handshakes, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, vs := range []string{"vs_www_443", "gw_vpn_443"} {
		addr := e.sim.ServedAddress(vs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "www.example.com"})
				handshakes.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				c.Close()
			}
		}()
	}
	for i := 0; i < 3; i++ {
		next := e.enroll("www", "www.example.com")
		res, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: bindings})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
				t.Fatal(err)
			}
		}
		got, err := served(e.ctx, e.sim, "vs_www_443", "")
		if err != nil {
			t.Fatal(err)
		}
		if i != 1 && !got.Equal(next.cert) {
			t.Errorf("round %d: vs_www_443 serves serial %s, want %s", i, got.SerialNumber, next.cert.SerialNumber)
		}
		cl, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: res.PreviousCertRefs[0]}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d cleanup: %+v", i, cl)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if handshakes.Load() < 20 || failures.Load() != 0 {
		t.Fatalf("%d handshakes, %d failed (first: %v); want many and none failed", handshakes.Load(), failures.Load(), firstErr.Load())
	}
	t.Logf("%d handshakes during 3 renewals, 0 failures", handshakes.Load())
	// The vservers were never rebound: the binding slot stays, its content changed.
	if got := e.sim.BoundCertKeys("vs_www_443"); len(got) != 1 || got[0] != first.ref {
		t.Errorf("vs_www_443 bindings %v, want the original slot %s only", got, first.ref)
	}
}

func TestSessionExpiryReLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	e.sim.SetLatency(0)
	// Expire the session in the middle of a call: the first data request after login gets 444.
	e.sim.FailNext("GET sslcertkey", 1, 401, 444)
	if _, err := e.p.Inventory(e.ctx, e.tgt); err != nil {
		t.Fatalf("Inventory across an expired session: %v", err)
	}
	calls := strings.Join(e.sim.Calls(), "\n")
	if strings.Count(calls, "POST /nitro/v1/config/login") != 2 {
		t.Errorf("want a re-login after 444, calls:\n%s", calls)
	}
	e.sim.ExpireSessions()
	if n := e.sim.Sessions(); n != 0 {
		t.Errorf("%d sessions open", n)
	}
	// 1027 (auth timeout) also re-logs in.
	e.sim.FailNext("GET sslcertkey", 1, 401, 1027)
	if _, err := e.p.Inventory(e.ctx, e.tgt); err != nil {
		t.Fatalf("Inventory across 1027: %v", err)
	}
}

func TestErrorPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	a := e.enroll("api", "api.example.com")

	t.Run("BadLogin354", func(t *testing.T) {
		bad := e.tgt
		bad.Credentials.Password = "nope-nope"
		_, err := e.p.CheckTarget(e.ctx, bad)
		wantErr(t, "bad password", err, codes.Unauthenticated, sdk.ReasonBadCredentials)
		if strings.Contains(err.Error(), "nope-nope") {
			t.Error("error reveals the password")
		}
		if ve := sdk.AsError(err); ve.VendorCode != "354" {
			t.Errorf("vendor code %q, want 354", ve.VendorCode)
		}
	})
	t.Run("UnknownVServer461", func(t *testing.T) {
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindGateway, Name: "vs_www_443"}}})
		wantErr(t, "lb vserver named as gateway", err, codes.NotFound, sdk.ReasonUnknownBinding)
	})
	t.Run("NotSSL1544", func(t *testing.T) {
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_plain_80"}}})
		wantErr(t, "HTTP vserver", err, codes.FailedPrecondition, "NOT_SSL_VSERVER")
	})
	t.Run("FileExists1642", func(t *testing.T) {
		// Injected 1642 on the leaf upload of a fresh import: AlreadyExists with the vendor code.
		csr, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "dup", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384},
			Subject: sdk.Subject{CommonName: "dup.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := e.ca.SignCSR(csr.PEM, time.Hour)
		e.sim.FailNext("POST systemfile", 1, 409, 1642)
		_, err = e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()})
		if err == nil {
			t.Fatal("import with a colliding file succeeded")
		}
		// A retry of the same import resumes (same file content is accepted).
		if _, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()}); err != nil {
			t.Fatalf("retried import: %v", err)
		}
		if _, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()}); err != nil {
			t.Fatalf("import twice (idempotent): %v", err)
		}
	})
	t.Run("CAReused273", func(t *testing.T) {
		b := e.enroll("api2", "api2.example.com")
		inv, err := e.p.Inventory(e.ctx, e.tgt)
		if err != nil {
			t.Fatal(err)
		}
		cas := 0
		for _, c := range inv {
			if c.IsCA {
				cas++
			}
		}
		if cas != 2 {
			t.Errorf("%d CA certkeys after three imports with one chain, want 2 (reused)", cas)
		}
		_ = b
	})
	t.Run("SaveFails", func(t *testing.T) {
		e.sim.FailSave(1)
		_, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{})
		wantErr(t, "failed save", err, codes.Aborted, sdk.ReasonCommitFailed)
		if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
			t.Fatalf("second save: %v", err)
		}
	})
	t.Run("ServerError599", func(t *testing.T) {
		e.sim.FailNext("POST sslrsakey", 1, 599, 1)
		_, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "x", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
			Subject: sdk.Subject{CommonName: "x.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		wantErr(t, "599", err, codes.FailedPrecondition, sdk.ReasonDeviceError)
	})
	t.Run("CleanupNeverRemovesBound", func(t *testing.T) {
		if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_api_443"}}}); err != nil {
			t.Fatal(err)
		}
		res, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: a.ref}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Removed || !strings.Contains(res[0].Reason, "vs_api_443") {
			t.Errorf("cleanup of a bound certkey: %+v", res[0])
		}
	})
	t.Run("Latency", func(t *testing.T) {
		e.sim.SetLatency(300 * time.Millisecond)
		defer e.sim.SetLatency(0)
		ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
		defer cancel()
		_, err := e.p.Inventory(ctx, e.tgt)
		wantErr(t, "slow appliance", err, codes.DeadlineExceeded, "")
	})
	t.Run("UnknownOption", func(t *testing.T) {
		tg := e.tgt
		tg.Options = sdk.Options{"partiton": "x"}
		_, err := e.p.CheckTarget(e.ctx, tg)
		wantErr(t, "typo option", err, codes.InvalidArgument, sdk.ReasonInvalidRequest)
	})
	if n := e.sim.Sessions(); n != 0 {
		t.Errorf("%d sessions left open after error paths", n)
	}
}

func TestSNIAndDaysAsString(t *testing.T) {
	t.Parallel()
	cfg := nitrosim.DefaultConfig()
	cfg.DaysAsString = true
	e := newEnv(t, cfg, sdk.Options{"auth": "headers"})
	def := e.enroll("default", "default.example.com")
	sni1 := e.enroll("shop", "shop.example.com")
	b := []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_api_443"}}
	if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: def.ref, Bindings: b}); err != nil {
		t.Fatal(err)
	}
	sb := []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_api_443", SNI: true}}
	if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: sni1.ref, Bindings: sb}); err != nil {
		t.Fatal(err)
	}
	if got, _ := served(e.ctx, e.sim, "vs_api_443", "shop.example.com"); got == nil || !got.Equal(sni1.cert) {
		t.Fatalf("SNI shop.example.com not served the SNI certificate")
	}
	if got, _ := served(e.ctx, e.sim, "vs_api_443", ""); got == nil || !got.Equal(def.cert) {
		t.Fatalf("no-SNI client not served the default certificate")
	}
	sni2 := e.enroll("shop", "shop.example.com")
	res, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: sni2.ref, Bindings: sb})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.PreviousCertRefs) != 1 || res.PreviousCertRefs[0] != sni1.ref {
		t.Errorf("previous %v, want [%s]", res.PreviousCertRefs, sni1.ref)
	}
	if got, _ := served(e.ctx, e.sim, "vs_api_443", "shop.example.com"); got == nil || !got.Equal(sni2.cert) {
		t.Fatalf("renewed SNI certificate not served")
	}
	inv, err := e.p.Inventory(e.ctx, e.tgt)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range inv {
		if c.CertRef == sni2.ref && (len(c.Bindings) != 1 || !c.Bindings[0].SNI) {
			t.Errorf("inventory bindings of %s: %v", c.CertRef, c.Bindings)
		}
		if c.CertRef == sni1.ref {
			t.Errorf("superseded slot %s still listed", sni1.ref)
		}
	}
}

func TestPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), sdk.Options{"partition": "p_tenant1"})
	c := e.enroll("t1", "t1.example.com")
	if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: c.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_t1_443"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	if e.sim.Saves("p_tenant1") != 1 || e.sim.Saves("default") != 0 {
		t.Errorf("save went to the wrong partition")
	}
	// The default partition has no vs_t1_443.
	_, err := e.p.Bind(e.ctx, simTarget(e.sim, nil), sdk.BindRequest{CertRef: c.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_t1_443"}}})
	wantErr(t, "bind across partitions", err, codes.NotFound, "")
}

// TestCallTrace logs every NITRO call of an enrollment and of a renewal (for the docs).
func TestCallTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	b := []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_www_443"}}
	e.sim.Calls()
	first := e.enroll("www", "www.example.com")
	if _, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: first.ref, Bindings: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("enrollment:\n%s", strings.Join(e.sim.Calls(), "\n"))
	next := e.enroll("www", "www.example.com")
	res, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: res.PreviousCertRefs[0]}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("renewal:\n%s", strings.Join(e.sim.Calls(), "\n"))
}
