package haproxysim

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

func start(t *testing.T, opts Options) *Sim {
	t.Helper()
	if opts.CrtLists == nil {
		opts.CrtLists = []string{"www.crtlist"}
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// send is a non-interactive client: one command (and payload), the whole answer.
func send(t *testing.T, s *Sim, command, payload string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Address, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := command + "\n"
	if payload != "" {
		req = command + " <<\n" + strings.TrimRight(payload, "\n") + "\n\n"
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// pair is a certificate and its key in the PEM a "set ssl cert" payload takes.
func pair(t *testing.T, cn string) (certPEM, keyPEM string, key crypto.Signer) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), k
}

func want(t *testing.T, got, prefix string) {
	t.Helper()
	if !strings.Contains(got, prefix) {
		t.Errorf("answer %q, want it to contain %q", got, prefix)
	}
}

// TestSimRules checks each rule the simulator enforces against the answer its source gives.
func TestSimRules(t *testing.T) {
	s := start(t, Options{})
	a, aKey, _ := pair(t, "a.test")
	b, bKey, _ := pair(t, "b.test")
	want(t, send(t, s, "new ssl cert a.pem", ""), "New empty certificate store 'a.pem'!")
	want(t, send(t, s, "new ssl cert a.pem", ""), "Certificate 'a.pem' already exists!")
	want(t, send(t, s, "new ssl cert b.pem", ""), "New empty certificate store 'b.pem'!")

	// One transaction at a time, process-wide.
	want(t, send(t, s, "set ssl cert a.pem", a+aKey), "Transaction created for certificate a.pem!")
	want(t, send(t, s, "set ssl cert b.pem", b+bKey), "The ongoing transaction is about 'a.pem' but you are trying to set 'b.pem'\nCan't update b.pem!")
	want(t, send(t, s, "set ssl cert a.pem", a+aKey), "Transaction updated for certificate a.pem!")
	want(t, send(t, s, "show ssl cert", ""), "# transaction\n*a.pem\n")
	want(t, send(t, s, "commit ssl cert a.pem", ""), "\nSuccess!")

	// A commit that fails (key and certificate differ) leaves its transaction open.
	want(t, send(t, s, "set ssl cert b.pem", b+aKey), "Transaction created")
	want(t, send(t, s, "commit ssl cert b.pem", ""), "inconsistencies between private key and certificate loaded 'b.pem'.\nCan't commit b.pem!")
	want(t, send(t, s, "set ssl cert a.pem", a+aKey), "The ongoing transaction is about 'b.pem'")
	want(t, send(t, s, "abort ssl cert a.pem", ""), "The ongoing transaction is about 'b.pem' but you are trying to abort a transaction for 'a.pem'")
	want(t, send(t, s, "abort ssl cert b.pem", ""), "Transaction aborted for certificate 'b.pem'!")
	want(t, send(t, s, "abort ssl cert b.pem", ""), "No ongoing transaction!")

	// Details as "show ssl cert <file>" prints them.
	details := send(t, s, "show ssl cert a.pem", "")
	for _, line := range []string{"Filename: a.pem\nStatus: Unused\n", "Subject Alternative Name: DNS:a.test\n", "Algorithm: EC256\n", "Subject: /CN=a.test\n"} {
		want(t, details, line)
	}
	want(t, send(t, s, "show ssl cert b.pem", ""), "Status: Empty")
	want(t, send(t, s, "show ssl cert nope.pem", ""), "Can't display the certificate: Not found")

	// The dump: key, leaf, chain.
	dump := send(t, s, "dump ssl cert a.pem", "")
	if !strings.HasPrefix(dump, "-----BEGIN PRIVATE KEY-----") || !strings.Contains(dump, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("dump: %.60q", dump)
	}

	// crt-lists: the administrator's default certificate cannot leave its list; a store may be
	// added twice (two lines), and then needs a line number to be deleted.
	want(t, send(t, s, "show ssl crt-list", ""), "www.crtlist\n")
	want(t, send(t, s, "del ssl crt-list www.crtlist /etc/haproxy/certs/admin-1.pem", ""), "cannot be deleted, it is used as default certificate")
	want(t, send(t, s, "add ssl crt-list www.crtlist b.pem", ""), "certificate 'b.pem' is empty!")
	want(t, send(t, s, "add ssl crt-list www.crtlist a.pem", ""), "\nSuccess!")
	want(t, send(t, s, "add ssl crt-list www.crtlist", "a.pem [alpn h2] a.test"), "\nSuccess!")
	want(t, send(t, s, "show ssl crt-list -n www.crtlist", ""), "a.pem:2\na.pem:3 [alpn h2] a.test\n")
	want(t, send(t, s, "del ssl crt-list www.crtlist a.pem", ""), "found the certificate 'a.pem' in several entries")
	want(t, send(t, s, "del ssl crt-list www.crtlist a.pem:3", ""), "Entry 'a.pem' deleted in crtlist 'www.crtlist'!")
	want(t, send(t, s, "show ssl cert a.pem", ""), "Status: Used")

	// A store in use, or from the configuration, cannot be deleted; an unused one can.
	want(t, send(t, s, "del ssl cert a.pem", ""), "certificate 'a.pem' in use, can't be deleted!")
	want(t, send(t, s, "del ssl cert /etc/haproxy/certs/admin-1.pem", ""), "in use, can't be deleted!")
	want(t, send(t, s, "del ssl cert b.pem", ""), "Certificate 'b.pem' deleted!")
	want(t, send(t, s, "del ssl cert b.pem", ""), "certificate 'b.pem' doesn't exist!")

	// A payload without a key leaves the store without one: a used store then fails to commit.
	want(t, send(t, s, "set ssl cert a.pem", a), "Transaction created")
	want(t, send(t, s, "commit ssl cert a.pem", ""), "Failed!")
	want(t, send(t, s, "abort ssl cert a.pem", ""), "Transaction aborted")

	// The frontend serves a.pem for its name, the default certificate otherwise.
	served, err := conformance.ServedChain(context.Background(), s.FrontendAddr("www.crtlist"), &tls.Config{ServerName: "a.test"})
	if err != nil || served[0].Subject.CommonName != "a.test" {
		t.Errorf("SNI a.test: %v %v", served, err)
	}
	served, err = conformance.ServedChain(context.Background(), s.FrontendAddr("www.crtlist"), nil)
	if err != nil || served[0].Subject.CommonName != "admin-1.haproxysim.test" {
		t.Errorf("no SNI: %v %v", served, err)
	}
	want(t, send(t, s, "frobnicate ssl cert", ""), "Unknown command: 'frobnicate ssl cert'")
}

func TestSimVersionsAndLevels(t *testing.T) {
	old := start(t, Options{Version: "3.0.9"})
	want(t, send(t, old, "show info", ""), "Version: 3.0.9\n")
	want(t, send(t, old, "dump ssl cert /etc/haproxy/certs/admin-1.pem", ""), "Unknown command")

	op := start(t, Options{OperatorLevel: true})
	want(t, send(t, op, "new ssl cert x.pem", ""), "Permission denied")
	want(t, send(t, op, "show ssl cert", ""), "/etc/haproxy/certs/admin-1.pem")

	trad := start(t, Options{TraditionalKeyPEM: true})
	want(t, send(t, trad, "dump ssl cert /etc/haproxy/certs/admin-1.pem", ""), "-----BEGIN EC PRIVATE KEY-----")
}

func TestSimStallDropsCommandsOfClientsThatLeft(t *testing.T) {
	s := start(t, Options{})
	release, _ := s.Stall(context.Background())
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Address, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "new ssl cert left.pem\n")
	for s.stalled() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	release()
	want(t, send(t, s, "show ssl cert left.pem", ""), "Not found")
}
