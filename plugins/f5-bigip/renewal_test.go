package f5bigip_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// prober handshakes with a virtual server in a loop. A handshake only completes when the server
// signs with the private key of the certificate it sends (TLS 1.3 CertificateVerify), so every
// completed handshake proves a matching pair, and a mismatched pair shows up as a failure.
type prober struct {
	addr     string
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []error
	serials  map[string]bool
	stop     chan struct{}
	done     sync.WaitGroup
}

func startProber(t *testing.T, addr string) *prober {
	pr := &prober{addr: addr, serials: map[string]bool{}, stop: make(chan struct{})}
	pr.done.Add(1)
	go func() {
		defer pr.done.Done()
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} //nolint:gosec // the handshake's signature check is what is tested
		for {
			select {
			case <-pr.stop:
				return
			default:
			}
			conn, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				pr.fail.Add(1)
				pr.mu.Lock()
				pr.errs = append(pr.errs, err)
				pr.mu.Unlock()
				continue
			}
			serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
			_ = conn.Close()
			pr.ok.Add(1)
			pr.mu.Lock()
			pr.serials[serial] = true
			pr.mu.Unlock()
			// Leave the CPU to the renewal now and then; the race detector makes handshakes slow.
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(pr.halt)
	return pr
}

func (pr *prober) halt() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	pr.done.Wait()
}

// waitFor lets at least n more handshakes happen.
func (pr *prober) waitFor(t *testing.T, n int64) {
	t.Helper()
	target := pr.ok.Load() + pr.fail.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for pr.ok.Load()+pr.fail.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("prober of %s made no progress", pr.addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRenewalNeverServesMismatchedPair renews the certificate of a virtual server and a shared
// client-ssl profile several times (changing key types, committing and cleaning up as the engine
// does) while clients keep connecting: every handshake must complete.
func TestRenewalNeverServesMismatchedPair(t *testing.T) {
	t.Run("PCI", func(t *testing.T) {
		renewUnderLoad(t, true, []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}, {Kind: f5bigip.KindVirtual, Name: "vs_api"}})
	})
	t.Run("NoPCI", func(t *testing.T) {
		renewUnderLoad(t, false, []sdk.Binding{
			{Kind: f5bigip.KindVirtual, Name: "vs_www"},
			{Kind: f5bigip.KindClientSSLProfile, Name: "api_clientssl", Options: sdk.Options{"virtuals": []any{"vs_api"}}},
		})
	})
}

func renewUnderLoad(t *testing.T, pci bool, bindings []sdk.Binding) {
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	tgt.Options["pci_mode"] = pci
	p, _ := launch(t, "info")
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	csr, imp, cert := enroll(t, p, tgt, ca, "renew0", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: bindings}); err != nil {
		t.Fatalf("first Bind: %v", err)
	}
	probers := []*prober{startProber(t, sim.ServedAddress("vs_www")), startProber(t, sim.ServedAddress("vs_api"))}
	issued := map[string]bool{cert.SerialNumber.String(): true}
	specs := []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeECDSA, Bits: 384}, {Type: sdk.KeyTypeECDSA, Bits: 256}}
	prev := sdk.ObjectRef{CertRef: imp.CertRef, KeyRef: csr.KeyRef}
	var last *x509.Certificate
	for i, spec := range specs {
		for _, pr := range probers {
			pr.waitFor(t, 5)
		}
		csr, imp, cert := enroll(t, p, tgt, ca, "renew", spec)
		issued[cert.SerialNumber.String()] = true
		if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: bindings}); err != nil {
			t.Fatalf("renewal %d Bind: %v", i, err)
		}
		if _, err := p.Commit(ctx, tgt, sdk.CommitRequest{}); err != nil {
			t.Fatalf("renewal %d Commit: %v", i, err)
		}
		res, err := p.Cleanup(ctx, tgt, []sdk.ObjectRef{prev})
		if err != nil || len(res) != 1 || !res[0].Removed {
			t.Fatalf("renewal %d Cleanup of the superseded pair: %+v, %v", i, res, err)
		}
		prev, last = sdk.ObjectRef{CertRef: imp.CertRef, KeyRef: csr.KeyRef}, cert
	}
	for _, pr := range probers {
		pr.waitFor(t, 5)
		pr.halt()
		if pr.fail.Load() != 0 {
			t.Errorf("%s: %d of %d handshakes failed during renewal; first: %v", pr.addr, pr.fail.Load(), pr.ok.Load()+pr.fail.Load(), pr.errs[0])
		}
		if pr.ok.Load() < 20 {
			t.Errorf("%s: only %d handshakes; the test did not watch the renewals", pr.addr, pr.ok.Load())
		}
		for serial := range pr.serials {
			if !issued[serial] {
				t.Errorf("%s served certificate serial %s, which the test did not issue", pr.addr, serial)
			}
		}
		t.Logf("%s: %d handshakes, %d certificates seen", pr.addr, pr.ok.Load(), len(pr.serials))
	}
	for _, name := range []string{"vs_www", "vs_api"} {
		if got, err := served(ctx, sim, name); err != nil || !got.Equal(last) {
			t.Errorf("%s does not serve the last certificate: %v", name, err)
		}
	}
}

// TestInPlaceReplacementWithAnotherKeyRefused: installing, over a certificate a profile serves,
// a certificate for another key (what an agent that reuses object names does) is refused by the
// device with 01070317, and clients looping TLS handshakes see no failure.
func TestInPlaceReplacementWithAnotherKeyRefused(t *testing.T) {
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	csr, imp, _ := enroll(t, p, tgt, ca, "inplace", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	_, _, other := enroll(t, p, tgt, ca, "other", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	pr := startProber(t, sim.ServedAddress("vs_www"))
	pr.waitFor(t, 5)

	c := adminClient(t, sim)
	local, err := c.Upload(ctx, "inplace.pem", []byte(sdk.EncodeCertificatePEM(other)))
	if err != nil {
		t.Fatal(err)
	}
	part, name := "Common", imp.CertRef[len("/Common/"):]
	err = c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, map[string]any{"command": "install", "name": name, "partition": part, "from-local-file": local}, nil)
	if err == nil || !strings.Contains(err.Error(), "01070317:3: profile ") || !strings.Contains(err.Error(), "key and certificate do not match") {
		t.Fatalf("install of a certificate for another key over a served one: %v, want 01070317 key and certificate do not match", err)
	}
	pr.waitFor(t, pr.ok.Load()+5)
	pr.halt()
	if n := pr.fail.Load(); n != 0 {
		t.Fatalf("%d handshakes failed: %v", n, pr.errs[0])
	}
}

// adminClient is an iControl session (basic auth) as the built-in admin.
func adminClient(t *testing.T, sim *bigipsim.Sim) *icontrol.Client {
	return userClient(t, sim, "admin", "admin-sim-password", true)
}

// userClient is an iControl session with the sim.
func userClient(t *testing.T, sim *bigipsim.Sim, user, password string, basic bool) *icontrol.Client {
	t.Helper()
	hc, err := sdk.NewHTTPClient(sdk.Target{TLS: sdk.TLSConfig{CABundlePEM: sim.CACertPEM()}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := icontrol.New(icontrol.Config{BaseURL: sim.URL(), HTTPClient: hc, Username: user, Password: password, BasicAuth: basic})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
