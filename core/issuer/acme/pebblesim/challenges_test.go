package pebblesim_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
)

// client registers an account (EAB) at p with lego's ACME API, the way an independent client
// talks to it.
func client(t *testing.T, p *pebblesim.Server) *api.Core {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(p.TLSCACertPEM())) {
		t.Fatal("TLS CA not PEM")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	core, err := api.New(hc, "pebblesim-test", p.DirectoryURL(), "", key)
	if err != nil {
		t.Fatal(err)
	}
	kid, hmac := p.EAB()
	if _, err := core.Accounts.NewEAB(context.Background(), legoacme.Account{TermsOfServiceAgreed: true}, kid, hmac); err != nil {
		t.Fatal(err)
	}
	return core
}

// pendingChallenge orders name and returns its authorization's URL and challenge of type typ;
// the authorization must be pending (nothing is pre-validated with Challenges).
func pendingChallenge(t *testing.T, core *api.Core, name, typ string) (string, legoacme.Challenge) {
	t.Helper()
	ctx := context.Background()
	order, err := core.Orders.New(ctx, []string{name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := core.Authorizations.Get(ctx, order.Authorizations[0])
	if err != nil {
		t.Fatal(err)
	}
	if authz.Status != legoacme.StatusPending {
		t.Fatalf("authorization for %s is %s, want pending", name, authz.Status)
	}
	for _, c := range authz.Challenges {
		if c.Type == typ {
			return order.Authorizations[0], c
		}
	}
	t.Fatalf("no %s challenge offered for %s", typ, name)
	return "", legoacme.Challenge{}
}

// answer posts the challenge and waits for the CA's verdict on the authorization.
func answer(t *testing.T, core *api.Core, authzURL string, ch legoacme.Challenge) legoacme.Authorization {
	t.Helper()
	ctx := context.Background()
	if _, err := core.Challenges.New(ctx, ch.URL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		authz, err := core.Authorizations.Get(ctx, authzURL)
		if err != nil {
			t.Fatal(err)
		}
		if authz.Status != legoacme.StatusPending || time.Now().After(deadline) {
			return authz
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startChallenges(t *testing.T) *pebblesim.Server {
	t.Helper()
	p, err := pebblesim.Start(pebblesim.Config{Challenges: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if p.DNS() == nil || p.HTTP01Port() == 0 {
		t.Fatalf("Challenges: DNS %v, HTTP-01 port %d", p.DNS(), p.HTTP01Port())
	}
	return p
}

// TestChallengesHTTP01: Pebble's VA resolves the name through the simulator's DNS (127.0.0.1)
// and fetches the token from the HTTP-01 port; a wrong answer makes the authorization invalid.
func TestChallengesHTTP01(t *testing.T) {
	p := startChallenges(t)
	core := client(t, p)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTP01Port())))
	if err != nil {
		t.Fatal(err)
	}
	var served sync.Map // path → body
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := served.Load(r.URL.Path); ok {
			_, _ = fmt.Fprint(w, v)
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	authzURL, ch := pendingChallenge(t, core, "www.web1.example.test", "http-01")
	keyAuth, err := core.GetKeyAuthorization(ch.Token)
	if err != nil {
		t.Fatal(err)
	}
	served.Store("/.well-known/acme-challenge/"+ch.Token, keyAuth)
	if a := answer(t, core, authzURL, ch); a.Status != legoacme.StatusValid {
		t.Fatalf("served token: authorization %s, want valid", a.Status)
	}

	authzURL, ch = pendingChallenge(t, core, "api.web1.example.test", "http-01")
	served.Store("/.well-known/acme-challenge/"+ch.Token, "not the key authorization")
	if a := answer(t, core, authzURL, ch); a.Status != legoacme.StatusInvalid {
		t.Fatalf("wrong token: authorization %s, want invalid", a.Status)
	}
}

// TestChallengesDNS01: the VA reads the TXT record from the simulator's DNS, where a client
// publishes it by a TSIG-signed RFC 2136 update; without the record the authorization fails.
func TestChallengesDNS01(t *testing.T) {
	p := startChallenges(t)
	core := client(t, p)

	authzURL, ch := pendingChallenge(t, core, "vpn.fw1.example.test", "dns-01")
	keyAuth, err := core.GetKeyAuthorization(ch.Token)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(keyAuth))
	update := new(dns.Msg)
	update.SetUpdate(pebblesim.DNSZone)
	update.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.vpn.fw1.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{base64.RawURLEncoding.EncodeToString(sum[:])}}})
	keyName, secret := p.DNS().TSIG()
	update.SetTsig(keyName, pebblesim.TSIGAlgorithm, 300, time.Now().Unix())
	c := &dns.Client{TsigSecret: map[string]string{keyName: secret}}
	r, _, err := c.Exchange(update, p.DNS().Addr())
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("signed update: %v, %v", r, err)
	}
	if a := answer(t, core, authzURL, ch); a.Status != legoacme.StatusValid {
		t.Fatalf("published record: authorization %s, want valid", a.Status)
	}

	authzURL, ch = pendingChallenge(t, core, "portal.fw1.example.test", "dns-01")
	if a := answer(t, core, authzURL, ch); a.Status != legoacme.StatusInvalid {
		t.Fatalf("no record: authorization %s, want invalid", a.Status)
	}
}

// TestPrevalidatedByDefault: without Challenges every authorization is valid at once, as for a
// Sectigo ACME account with validated domains.
func TestPrevalidatedByDefault(t *testing.T) {
	p, err := pebblesim.Start(pebblesim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	core := client(t, p)
	order, err := core.Orders.New(context.Background(), []string{"www.web1.example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := core.Authorizations.Get(context.Background(), order.Authorizations[0])
	if err != nil || authz.Status != legoacme.StatusValid {
		t.Fatalf("authorization %s, %v; want valid", authz.Status, err)
	}
	if p.DNS() != nil || p.HTTP01Port() != 0 {
		t.Fatal("a pre-validating Pebble started a DNS server or reserved an HTTP-01 port")
	}
}
