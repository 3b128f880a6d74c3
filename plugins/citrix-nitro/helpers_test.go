package citrixnitro_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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

// env is a simulator, the plugin (in process, as the binary runs it) and a test CA.
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, sim: sim, tgt: simTarget(sim, opts), p: citrixnitro.New(), ca: mustCA(t), ctx: ctx}
}

func mustCA(t *testing.T) *conformance.TestCA {
	t.Helper()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

type enrolled struct {
	ref  string
	cert *x509.Certificate
}

// enroll runs GenerateCSR (ECDSA P-256), signs with the test CA and imports with its chain.
func (e *env) enroll(hint string, names ...string) enrolled {
	e.t.Helper()
	return e.enrollWithChain(hint, e.ca.ChainPEM(), names...)
}

func (e *env) enrollWithChain(hint string, chain []string, names ...string) enrolled {
	e.t.Helper()
	return e.enrollKey(hint, sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, chain, names...)
}

// enrollKey enrolls with a given key spec and chain.
func (e *env) enrollKey(hint string, spec sdk.KeySpec, chain []string, names ...string) enrolled {
	e.t.Helper()
	csr, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: hint, KeySpec: spec,
		Subject: sdk.Subject{CommonName: names[0], Organization: "Example", Country: "GB", State: "Yorkshire"},
		SANs:    sdk.SANs{DNSNames: names}})
	if err != nil {
		e.t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := e.ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: chain})
	if err != nil {
		e.t.Fatalf("ImportCert: %v", err)
	}
	return enrolled{ref: res.CertRef, cert: cert}
}

func (e *env) bind(c enrolled, bs ...sdk.Binding) sdk.BindResult {
	e.t.Helper()
	res, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: c.ref, KeyRef: c.ref, Bindings: bs})
	if err != nil {
		e.t.Fatalf("Bind %s to %v: %v", c.ref, bs, err)
	}
	return res
}

func (e *env) commit() {
	e.t.Helper()
	if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
		e.t.Fatalf("Commit: %v", err)
	}
}

// wantServed checks the certificate vserver serves to a client asking for serverName.
func (e *env) wantServed(stage, vserver, serverName string, want enrolled) {
	e.t.Helper()
	got, err := served(e.ctx, e.sim, vserver, serverName)
	if err != nil {
		e.t.Fatalf("%s: TLS to %s: %v", stage, vserver, err)
	}
	if !got.Equal(want.cert) {
		e.t.Fatalf("%s: %s serves %s serial %s, want %s serial %s", stage, vserver, got.Subject.CommonName, got.SerialNumber, want.ref, want.cert.SerialNumber)
	}
}

func (e *env) inventory() map[string]sdk.DeviceCertificate {
	e.t.Helper()
	certs, err := e.p.Inventory(e.ctx, e.tgt)
	if err != nil {
		e.t.Fatalf("Inventory: %v", err)
	}
	out := map[string]sdk.DeviceCertificate{}
	for _, c := range certs {
		out[c.CertRef] = c
	}
	return out
}

func wantErr(t *testing.T, what string, err error, code codes.Code, reason string) *sdk.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, code)
	}
	e := sdk.AsError(err)
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("%s: got %v/%s (%v), want %v/%s", what, e.Code, e.Reason, err, code, reason)
	}
	return e
}

func countCalls(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// poller loops TLS handshakes against vserver listeners, verifying each chain against the test
// root and the server name, until finish is called.
type poller struct {
	stop                 chan struct{}
	wg                   sync.WaitGroup
	handshakes, failures atomic.Int64
	firstErr             atomic.Value
}

func (e *env) pollHandshakes(serverName string, vservers ...string) *poller {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Root)
	p := &poller{stop: make(chan struct{})}
	for _, vs := range vservers {
		addr := e.sim.ServedAddress(vs)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.stop:
					return
				default:
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
					&tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12})
				p.handshakes.Add(1)
				if err != nil {
					p.failures.Add(1)
					p.firstErr.CompareAndSwap(nil, vs+": "+err.Error())
					continue
				}
				_ = c.Close()
			}
		}()
	}
	return p
}

func (p *poller) finish() (handshakes, failures int64, firstErr any) {
	close(p.stop)
	p.wg.Wait()
	return p.handshakes.Load(), p.failures.Load(), p.firstErr.Load()
}

// adminCertKey installs a certificate the way an administrator does, outside certfleet: a key
// and certificate under relative file names, its certkey, and a binding.
func (e *env) adminCertKey(name, dns, certFile, keyFile, vserver string, sni bool) enrolled {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: dns}, DNSNames: []string{dns}}, key)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := e.ca.SignCSR(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})), 24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sim.AddAdminCertKey(nitrosim.AdminCertKey{Name: name, CertFile: certFile, KeyFile: keyFile,
		CertPEM: []byte(sdk.EncodeCertificatePEM(cert)), KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		BindTo: vserver, SNI: sni}); err != nil {
		e.t.Fatal(err)
	}
	return enrolled{ref: name, cert: cert}
}
