package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"

	"github.com/certfleet/certfleet/core/issuer"
)

// request builds an issuer request with a fresh device-style key and CSR.
func request(t *testing.T, dnsNames, ips []string, opts map[string]any) (issuer.Request, *ecdsa.PrivateKey) {
	t.Helper()
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	csr, key := newCSR(t, cn, dnsNames, ips)
	return issuer.Request{CertificateName: t.Name(), RequestID: randomLabel(t), CSRPEM: csr,
		CommonName: cn, DNSNames: dnsNames, IPAddresses: ips, Options: opts}, key
}

// collectUntilDone calls Collect until the order leaves Pending.
func collectUntilDone(t *testing.T, ctx context.Context, iss *Issuer, ref issuer.OrderRef) issuer.Result {
	t.Helper()
	for {
		res, err := iss.Collect(ctx, ref)
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
		if res.State != issuer.Pending {
			return res
		}
		if err := sleepCtx(ctx, res.RetryAfter); err != nil {
			t.Fatal(err)
		}
	}
}

// issue submits and collects; it fails the test unless a certificate is issued.
func issue(t *testing.T, ctx context.Context, iss *Issuer, req issuer.Request) (issuer.Result, issuer.OrderRef, *x509.Certificate) {
	t.Helper()
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	res := collectUntilDone(t, ctx, iss, ref)
	if res.State != issuer.Issued {
		t.Fatalf("Collect: %s (%s), want issued", res.State, res.Message)
	}
	return res, ref, parseCert(t, res.CertPEM)
}

func parseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("not PEM: %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func verifiesTo(leaf *x509.Certificate, chainPEM []string, root *x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chainPEM {
		inter.AppendCertsFromPEM([]byte(c))
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func TestRegisterWithEABAndReuseAccount(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	var logs bytes.Buffer
	cfg := p.config("sectigo-ov")
	iss, err := New(cfg, store, withKDF(testKDF), WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	url, err := iss.Register(ctx)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if !strings.Contains(url, "/my-account/") {
		t.Fatalf("account URL %q", url)
	}
	if n := p.wire.createdAt("/sign-me-up"); n != 1 {
		t.Fatalf("Pebble created %d accounts, want 1", n)
	}

	rec, found, _ := store.LoadAccount(ctx, "sectigo-ov")
	if !found || rec.AccountURL != url || rec.DirectoryURL != p.dirURL {
		t.Fatalf("stored record %+v, want account %s at %s", rec, url, p.dirURL)
	}
	// The store sees ciphertext only; the key opens with the EAB HMAC key and is the account's.
	if bytes.Contains(rec.SealedKey, []byte("PRIVATE KEY")) || bytes.Contains(rec.SealedKey, []byte("BEGIN")) {
		t.Fatal("the stored account key is not encrypted")
	}
	hmacKey, _ := decodeHMACKey(p.eabHMAC)
	plain, err := openAccountKey(hmacKey, "sectigo-ov", rec.SealedKey)
	if err != nil {
		t.Fatalf("open stored key with the EAB HMAC key: %v", err)
	}
	key, err := parseAccountKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	id := url[strings.LastIndex(url, "/")+1:]
	acct := p.store.GetAccountByID(id)
	if acct == nil || acct.ExternalAccountBinding == nil {
		t.Fatalf("Pebble's account %s has no external account binding", id)
	}
	if !publicKeysEqual(key.Public(), acct.Key.Key) {
		t.Fatal("the stored key is not the account's key")
	}

	// A new Issuer on the same store reuses the account: no second registration.
	again := newIssuer(t, cfg, store)
	url2, err := again.Register(ctx)
	if err != nil {
		t.Fatalf("Register with stored account: %v", err)
	}
	if url2 != url || p.wire.createdAt("/sign-me-up") != 1 {
		t.Fatalf("stored account not reused: %s vs %s, %d accounts created", url2, url, p.wire.createdAt("/sign-me-up"))
	}

	for _, secret := range []string{p.eabHMAC, string(plain)} {
		if strings.Contains(logs.String(), strings.TrimSpace(secret)) {
			t.Fatal("a secret appears in the logs")
		}
	}
}

func TestRegisterRefusedWithoutEAB(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	cfg := p.config("no-eab")
	cfg.EAB = EAB{}
	cfg.AccountKeyPassphrase = "correct horse battery staple"
	_, err := newIssuer(t, cfg, NewMemoryAccountStore()).Register(testContext(t))
	if err == nil {
		t.Fatal("registration without EAB succeeded against a CA that requires it")
	}
	if !strings.Contains(err.Error(), "eab.key_id") || !strings.Contains(err.Error(), "externalAccountRequired") {
		t.Fatalf("error does not name the fix: %v", err)
	}
	if issuer.IsRetryable(err) {
		t.Fatal("a missing EAB is not retryable")
	}
	if p.wire.createdAt("/sign-me-up") != 0 {
		t.Fatal("an account was created")
	}
}

func TestRegisterRefusedWithWrongEAB(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	wrongKey := base64.RawURLEncoding.EncodeToString(randomBytes(t, 32))
	for name, eab := range map[string]EAB{
		"wrong-hmac": {KeyID: p.eabKID, HMACKey: wrongKey},
		"wrong-kid":  {KeyID: "kid-unknown", HMACKey: p.eabHMAC},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := p.config(name)
			cfg.EAB = eab
			_, err := newIssuer(t, cfg, NewMemoryAccountStore()).Register(testContext(t))
			if err == nil {
				t.Fatal("registration with a wrong EAB succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, "External Account Binding") || !strings.Contains(msg, eab.KeyID) {
				t.Fatalf("error does not explain the EAB refusal: %v", err)
			}
			if strings.Contains(msg, eab.HMACKey) || strings.Contains(msg, p.eabHMAC) {
				t.Fatal("the HMAC key appears in the error")
			}
			if issuer.IsRetryable(err) {
				t.Fatal("a refused EAB is not retryable")
			}
		})
	}
	if p.wire.createdAt("/sign-me-up") != 0 {
		t.Fatal("an account was created")
	}
}

func TestIssueFromCSR(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("pebble"), NewMemoryAccountStore())
	names := testNames(t, 2)
	req, key := request(t, names, nil, nil)

	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	orderURL, err := OrderURL(ref)
	if err != nil || !strings.Contains(orderURL, "/my-order/") {
		t.Fatalf("reference %q holds no order URL (%v)", ref, err)
	}
	if p.wire.createdAt("/order-plz") != 1 || p.wire.postsTo("/finalize-order/") != 0 || p.wire.postsTo("/chalZ/") != 0 {
		t.Fatal("Submit must only place the order")
	}

	res := collectUntilDone(t, ctx, iss, ref)
	if res.State != issuer.Issued {
		t.Fatalf("Collect: %s %s", res.State, res.Message)
	}
	leaf := parseCert(t, res.CertPEM)
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	got := slices.Clone(leaf.DNSNames)
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(leaf.IPAddresses) != 0 {
		t.Fatalf("certificate names %v %v, want exactly %v", leaf.DNSNames, leaf.IPAddresses, want)
	}
	// The chain is Pebble's intermediate, and leaf + chain verify to Pebble's root.
	inter := p.mgmtCert(t, "/intermediates/0")
	if len(res.ChainPEM) != 1 || !parseCert(t, res.ChainPEM[0]).Equal(inter) {
		t.Fatalf("chain is not Pebble's intermediate: %d certificates", len(res.ChainPEM))
	}
	if err := verifiesTo(leaf, res.ChainPEM, p.mgmtCert(t, "/roots/0")); err != nil {
		t.Fatalf("chain does not verify to Pebble's root: %v", err)
	}
	// Both challenges were answered through DNS and the records removed afterwards.
	for _, n := range names {
		if dnsServer.UpdateCount("_acme-challenge."+n) < 2 || len(dnsServer.Records("_acme-challenge."+n)) != 0 {
			t.Fatalf("DNS-01 record for %s: %d updates, %v left", n, dnsServer.UpdateCount("_acme-challenge."+n), dnsServer.Records("_acme-challenge."+n))
		}
	}

	// Collecting again downloads again and never finalizes twice.
	res2, err := iss.Collect(ctx, ref)
	if err != nil || res2.State != issuer.Issued || res2.CertPEM != res.CertPEM {
		t.Fatalf("second Collect: %v %v", res2.State, err)
	}
	if n := p.wire.postsTo("/finalize-order/"); n != 1 {
		t.Fatalf("finalized %d times", n)
	}
	if n := p.wire.createdAt("/order-plz"); n != 1 {
		t.Fatalf("%d orders", n)
	}
}

func TestCollectHonoursRetryAfterAndNeverRefinalizes(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{retryAfterOrder: 2})
	ctx := testContext(t)
	cfg := p.config("retry-after")
	iss := newIssuer(t, cfg, NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := iss.Collect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	// Pebble answers finalize with "processing" and Retry-After: 2 s (as seconds or a date).
	if res.State != issuer.Pending || res.RetryAfter < time.Second || res.RetryAfter > 2*time.Second {
		t.Fatalf("Collect after finalize: %s, retry after %s; want pending with the CA's 1-2 s", res.State, res.RetryAfter)
	}
	final := collectUntilDone(t, ctx, iss, ref)
	if final.State != issuer.Issued {
		t.Fatalf("%s: %s", final.State, final.Message)
	}
	if n := p.wire.postsTo("/finalize-order/"); n != 1 {
		t.Fatalf("finalized %d times", n)
	}
}

func TestResumeAfterCrashBetweenOrderAndFinalize(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	cfg := p.config("resume")

	t.Run("order pending", func(t *testing.T) {
		first := newIssuer(t, cfg, store)
		req, key := request(t, testNames(t, 2), nil, nil)
		ref, err := first.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		stored := string(ref) // what the engine records
		accountURL, _ := first.Register(ctx)
		first = nil //nolint:ineffassign,wastedassign // the process "dies": nothing of it is used again
		_ = first

		second := newIssuer(t, cfg, store)
		res := collectUntilDone(t, ctx, second, issuer.OrderRef(stored))
		if res.State != issuer.Issued || !publicKeysEqual(parseCert(t, res.CertPEM).PublicKey, key.Public()) {
			t.Fatalf("resumed Collect: %s %s", res.State, res.Message)
		}
		if url, _ := second.Register(ctx); url != accountURL {
			t.Fatalf("the resumed issuer registered another account: %s vs %s", url, accountURL)
		}
		if n := len(p.orders(accountURL)); n != 1 {
			t.Fatalf("Pebble holds %d orders, want 1", n)
		}
		if p.wire.createdAt("/order-plz") != 1 || p.wire.postsTo("/finalize-order/") != 1 {
			t.Fatalf("%d orders placed, %d finalizations", p.wire.createdAt("/order-plz"), p.wire.postsTo("/finalize-order/"))
		}
	})

	t.Run("order ready", func(t *testing.T) {
		orders, finals, answers := p.wire.createdAt("/order-plz"), p.wire.postsTo("/finalize-order/"), p.wire.postsTo("/chalZ/")
		first := newIssuer(t, cfg, store)
		names := testNames(t, 2)
		req, _ := request(t, names, nil, nil)
		ref, err := first.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// The first process gets as far as valid authorizations, then dies before finalizing.
		r, _ := decodeRef(ref)
		core, err := first.account(ctx)
		if err != nil {
			t.Fatal(err)
		}
		octx, obs := withObserver(ctx)
		order, err := core.Orders.Get(octx, r.OrderURL)
		if err != nil {
			t.Fatal(err)
		}
		if err := first.authorize(octx, core, obs, order.Authorizations); err != nil {
			t.Fatal(err)
		}
		if order, _ = core.Orders.Get(octx, r.OrderURL); order.Status != legoacme.StatusReady {
			t.Fatalf("order is %s, want ready", order.Status)
		}

		second := newIssuer(t, cfg, store)
		res := collectUntilDone(t, ctx, second, ref)
		if res.State != issuer.Issued {
			t.Fatalf("%s %s", res.State, res.Message)
		}
		if p.wire.createdAt("/order-plz")-orders != 1 || p.wire.postsTo("/finalize-order/")-finals != 1 {
			t.Fatal("resuming a ready order placed another order or finalized more than once")
		}
		if p.wire.postsTo("/chalZ/")-answers != len(names) {
			t.Fatalf("challenges answered %d times for %d names", p.wire.postsTo("/chalZ/")-answers, len(names))
		}
	})
}

func TestConcurrentCollectsOfOneOrder(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("concurrent"), NewMemoryAccountStore())
	names := testNames(t, 2)
	req, _ := request(t, names, nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan issuer.Result, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			// Collect does not wait for a processing order: each caller collects until done.
			for {
				res, err := iss.Collect(ctx, ref)
				if err == nil && res.State == issuer.Pending {
					if err = sleepCtx(ctx, res.RetryAfter); err == nil {
						continue
					}
				}
				results <- res
				errs <- err
				return
			}
		}()
	}
	var certs []string
	for range 2 {
		res, err := <-results, <-errs
		if err != nil || res.State != issuer.Issued {
			t.Fatalf("Collect: %s %v", res.State, err)
		}
		certs = append(certs, res.CertPEM)
	}
	if certs[0] != certs[1] {
		t.Fatal("two certificates for one order")
	}
	if p.wire.postsTo("/finalize-order/") != 1 || p.wire.postsTo("/chalZ/") != len(names) {
		t.Fatalf("%d finalizations, %d challenge answers for %d names", p.wire.postsTo("/finalize-order/"), p.wire.postsTo("/chalZ/"), len(names))
	}
}

func TestCollectOfAnOrderTheCANoLongerHasFails(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("gone"), NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := decodeRef(ref)
	r.OrderURL = r.OrderURL[:strings.LastIndex(r.OrderURL, "/")+1] + "no-such-order"
	gone, _ := r.encode()
	res, err := iss.Collect(ctx, gone)
	if err != nil || res.State != issuer.Failed || !strings.Contains(res.Message, "no longer exists") {
		t.Fatalf("Collect of a missing order: %s %q %v", res.State, res.Message, err)
	}
}

func TestLostNewOrderAnswerIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("lost"), NewMemoryAccountStore())
	if _, err := iss.Register(ctx); err != nil {
		t.Fatal(err)
	}
	p.wire.loseAnswersTo("/order-plz")
	req, _ := request(t, testNames(t, 1), nil, nil)
	_, err := iss.Submit(ctx, req)
	if !errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("Submit whose answer was lost: %v, want ErrOutcomeUnknown", err)
	}
	if issuer.IsRetryable(err) {
		t.Fatal("an unknown outcome must not be retried blindly")
	}
	if p.wire.createdAt("/order-plz") != 1 || p.wire.postsTo("/order-plz") != 1 {
		t.Fatal("the order should have reached Pebble exactly once")
	}
	if _, found, err := iss.Find(ctx, req); found || err != nil {
		t.Fatalf("Find: %v %v", found, err)
	}
}

func TestRenewWithReplaces(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("renew"), NewMemoryAccountStore())
	names := testNames(t, 1)
	req, _ := request(t, names, nil, nil)
	_, _, old := issue(t, ctx, iss, req)
	oldID, err := CertID(old)
	if err != nil {
		t.Fatal(err)
	}
	// Pebble indexes an order by its certificate's serial just after issuing (asynchronously);
	// a replacement order arriving before that gets a 500.
	p.waitSerialIndexed(t, old)

	renewal, newKey := request(t, names, nil, map[string]any{OptionReplaces: oldID})
	ref, err := iss.Submit(ctx, renewal)
	if err != nil {
		t.Fatalf("renewal Submit: %v", err)
	}
	res := collectUntilDone(t, ctx, iss, ref)
	if res.State != issuer.Issued {
		t.Fatalf("%s %s", res.State, res.Message)
	}
	renewed := parseCert(t, res.CertPEM)
	if !publicKeysEqual(renewed.PublicKey, newKey.Public()) || renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("the renewal is not a new certificate for the new key")
	}
	url, _ := iss.Register(ctx)
	var replacing int
	for _, o := range p.orders(url) {
		o.RLock()
		if o.Replaces == oldID {
			replacing++
		}
		o.RUnlock()
	}
	if replacing != 1 {
		t.Fatalf("%d orders carry replaces=%s, want 1", replacing, oldID)
	}
	// Pebble marks the replaced certificate's order once the renewal is issued.
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, err := p.store.GetOrderByIssuedSerial(hex.EncodeToString(old.SerialNumber.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		o.RLock()
		replaced := o.IsReplaced
		o.RUnlock()
		if replaced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Pebble did not mark the old certificate replaced")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The replaced certificate given as PEM: the CA says alreadyReplaced, the order is placed
	// without replaces rather than failing the renewal.
	again, _ := request(t, names, nil, map[string]any{OptionReplaces: encodeCert(old)})
	if _, _, c := issue(t, ctx, iss, again); c == nil {
		t.Fatal("no certificate")
	}
}

func TestRevokeAndRenewalInfo(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("revoke"), NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), nil, nil)
	_, ref, cert := issue(t, ctx, iss, req)

	id, err := CertID(cert)
	if err != nil {
		t.Fatal(err)
	}
	wantID := base64.RawURLEncoding.EncodeToString(cert.AuthorityKeyId) + "."
	if !strings.HasPrefix(id, wantID) || !regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`).MatchString(id) {
		t.Fatalf("cert ID %q", id)
	}

	before, err := iss.RenewalWindow(ctx, cert)
	if err != nil {
		t.Fatalf("RenewalWindow: %v", err)
	}
	if !before.Start.After(time.Now()) || !before.End.After(before.Start) || before.End.After(cert.NotAfter) || before.Start.Before(cert.NotBefore) {
		t.Fatalf("window %s – %s for a certificate valid %s – %s", before.Start, before.End, cert.NotBefore, cert.NotAfter)
	}
	if before.RetryAfter != 6*time.Hour {
		t.Fatalf("RetryAfter %s, want Pebble's 6h", before.RetryAfter)
	}

	if err := iss.Revoke(ctx, ref, cert, issuer.ReasonKeyCompromise); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	status, reason := p.certStatus(t, cert.SerialNumber)
	if status != "Revoked" || reason == nil || *reason != uint(issuer.ReasonKeyCompromise) {
		t.Fatalf("Pebble says %s (reason %v)", status, reason)
	}
	after, err := iss.RenewalWindow(ctx, cert)
	if err != nil {
		t.Fatal(err)
	}
	if after.Start.After(time.Now()) {
		t.Fatalf("a revoked certificate's window starts %s, want now", after.Start)
	}
	// Revoking again is not an error (alreadyRevoked).
	if err := iss.Revoke(ctx, ref, cert, issuer.ReasonKeyCompromise); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}

	// Without the certificate at hand, the order's certificate is revoked.
	req2, _ := request(t, testNames(t, 1), nil, nil)
	_, ref2, cert2 := issue(t, ctx, iss, req2)
	if err := iss.Revoke(ctx, ref2, nil, issuer.ReasonSuperseded); err != nil {
		t.Fatalf("Revoke by order: %v", err)
	}
	if status, _ := p.certStatus(t, cert2.SerialNumber); status != "Revoked" {
		t.Fatalf("Pebble says %s", status)
	}
	if err := iss.Revoke(ctx, ref2, cert2, issuer.RevokeReason(7)); err == nil || issuer.IsRetryable(err) {
		t.Fatalf("reason 7: %v", err)
	}
}

func TestPreferredChain(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{alternateRoots: 2})
	ctx := testContext(t)
	roots := []*x509.Certificate{p.mgmtCert(t, "/roots/0"), p.mgmtCert(t, "/roots/1"), p.mgmtCert(t, "/roots/2")}
	store := NewMemoryAccountStore()

	onlyVerifiesTo := func(t *testing.T, res issuer.Result, want int) {
		t.Helper()
		leaf := parseCert(t, res.CertPEM)
		for n, root := range roots {
			err := verifiesTo(leaf, res.ChainPEM, root)
			if (n == want) != (err == nil) {
				t.Fatalf("chain vs root %d (%s): %v; want only root %d", n, root.Subject.CommonName, err, want)
			}
		}
	}

	cfg := p.config("chains")
	iss := newIssuer(t, cfg, store)
	req, _ := request(t, testNames(t, 1), nil, nil)
	res, _, _ := issue(t, ctx, iss, req)
	onlyVerifiesTo(t, res, 0)

	req, _ = request(t, testNames(t, 1), nil, map[string]any{OptionPreferredChain: roots[1].Subject.CommonName})
	res, _, _ = issue(t, ctx, iss, req)
	onlyVerifiesTo(t, res, 1)

	cfg.PreferredChain = roots[2].Subject.CommonName
	iss2 := newIssuer(t, cfg, store)
	req, _ = request(t, testNames(t, 1), nil, nil)
	res, _, _ = issue(t, ctx, iss2, req)
	onlyVerifiesTo(t, res, 2)

	// No chain matches: the CA's default.
	req, _ = request(t, testNames(t, 1), nil, map[string]any{OptionPreferredChain: "No Such Root"})
	res, _, _ = issue(t, ctx, iss2, req)
	onlyVerifiesTo(t, res, 0)
}

// TestPreferredChainIgnoresIntermediateNames: with two intermediates per chain, each alternate
// chain's topmost certificate is an intermediate of its own name. Naming it is not naming a chain
// (certbot, lego: only the topmost certificate's issuer counts), so the CA's default is used.
func TestPreferredChainIgnoresIntermediateNames(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{alternateRoots: 1, chainLength: 2})
	ctx := testContext(t)
	roots := []*x509.Certificate{p.mgmtCert(t, "/roots/0"), p.mgmtCert(t, "/roots/1")}
	iss := newIssuer(t, p.config("intermediates"), NewMemoryAccountStore())

	req, _ := request(t, testNames(t, 1), nil, map[string]any{OptionPreferredChain: roots[1].Subject.CommonName})
	res, _, _ := issue(t, ctx, iss, req)
	if len(res.ChainPEM) != 2 {
		t.Fatalf("%d certificates above the leaf, want Pebble's 2 intermediates", len(res.ChainPEM))
	}
	top := parseCert(t, res.ChainPEM[1])
	if top.Issuer.CommonName != roots[1].Subject.CommonName {
		t.Fatalf("preferring %q gave a chain topped by a certificate issued by %q", roots[1].Subject.CommonName, top.Issuer.CommonName)
	}

	req, _ = request(t, testNames(t, 1), nil, map[string]any{OptionPreferredChain: top.Subject.CommonName})
	res, _, _ = issue(t, ctx, iss, req)
	if err := verifiesTo(parseCert(t, res.CertPEM), res.ChainPEM, roots[0]); err != nil {
		t.Fatalf("preferring the intermediate %q: %v; want the CA's default chain (root 0)", top.Subject.CommonName, err)
	}
}

func TestBadNonceIsRetried(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{nonceReject: 50})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("nonces"), NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 2), nil, nil)
	issue(t, ctx, iss, req)
	if p.wire.badNonces() == 0 {
		t.Fatal("Pebble rejected no nonce; the retry was not exercised")
	}
	t.Logf("issued despite %d badNonce answers", p.wire.badNonces())
}

func TestValidAuthorizationsNeedNoChallenge(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{authzReuse: 100})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("reuse"), NewMemoryAccountStore())
	names := testNames(t, 2)
	req, _ := request(t, names, nil, nil)
	issue(t, ctx, iss, req)
	updates, answers := dnsServer.UpdateCount("_acme-challenge."+names[0]), p.wire.postsTo("/chalZ/")

	// Pebble hands out the same valid authorizations (as a CA with pre-validated domains does):
	// no DNS record, no challenge.
	req2, _ := request(t, names, nil, nil)
	issue(t, ctx, iss, req2)
	if dnsServer.UpdateCount("_acme-challenge."+names[0]) != updates || p.wire.postsTo("/chalZ/") != answers {
		t.Fatal("valid authorizations were answered again")
	}
}

func TestIPIdentifierNeedsDNS01(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("ip"), NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), []string{"192.0.2.10"}, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	_, err = iss.Collect(ctx, ref)
	if err == nil {
		t.Fatal("an IP identifier needing HTTP-01 was not refused")
	}
	for _, want := range []string{"192.0.2.10", "http-01", "out of scope", "dns.provider"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
	}
	if issuer.IsRetryable(err) || p.wire.postsTo("/chalZ/") != 0 {
		t.Fatal("refusal must be final and answer no challenge")
	}
}

func TestNoDNSProviderConfigured(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	cfg := p.config("no-dns")
	cfg.DNS = DNSConfig{}
	iss := newIssuer(t, cfg, NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Collect(ctx, ref)
	if err == nil || !strings.Contains(err.Error(), "dns.provider") || issuer.IsRetryable(err) {
		t.Fatalf("Collect without a DNS provider: %v", err)
	}
}

func TestFailedValidationFailsTheOrder(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	cfg := p.config("fail")
	cfg.DNS.PropagationCheck = PropagationNone
	iss := newIssuer(t, cfg, NewMemoryAccountStore())
	names := testNames(t, 1)
	dnsServer.DropUpdatesFor("_acme-challenge." + names[0])
	req, _ := request(t, names, nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := iss.Collect(ctx, ref)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if res.State != issuer.Failed || !strings.Contains(res.Message, names[0]) || !strings.Contains(res.Message, "TXT") {
		t.Fatalf("%s: %q", res.State, res.Message)
	}
	// A failed order stays failed.
	if res, err = iss.Collect(ctx, ref); err != nil || res.State != issuer.Failed {
		t.Fatalf("second Collect: %s %v", res.State, err)
	}
	if p.wire.postsTo("/finalize-order/") != 0 {
		t.Fatal("an order with a failed authorization was finalized")
	}
}

func TestPropagationChecks(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	_, port, _ := net.SplitHostPort(dnsServer.addr)

	t.Run("authoritative", func(t *testing.T) {
		cfg := p.config("authoritative")
		cfg.DNS.PropagationCheck = PropagationAuthoritative
		iss := newIssuer(t, cfg, NewMemoryAccountStore())
		iss.dns.authPort = port // ns1.example.test is 127.0.0.1, on the test server's port
		req, _ := request(t, testNames(t, 1), nil, nil)
		issue(t, testContext(t), iss, req)
	})
	t.Run("record never visible", func(t *testing.T) {
		cfg := p.config("invisible")
		cfg.DNS.PropagationTimeout = 300 * time.Millisecond
		cfg.DNS.PollingInterval = 50 * time.Millisecond
		iss := newIssuer(t, cfg, NewMemoryAccountStore())
		names := testNames(t, 1)
		dnsServer.DropUpdatesFor("_acme-challenge." + names[0])
		req, _ := request(t, names, nil, nil)
		ctx := testContext(t)
		ref, err := iss.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		answers := p.wire.postsTo("/chalZ/")
		_, err = iss.Collect(ctx, ref)
		if err == nil || !issuer.IsRetryable(err) || !strings.Contains(err.Error(), "not visible") {
			t.Fatalf("Collect: %v", err)
		}
		if p.wire.postsTo("/chalZ/") != answers {
			t.Fatal("a challenge was answered before its record was visible")
		}
	})
}

func TestProfileOption(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("profiles"), NewMemoryAccountStore())
	req, _ := request(t, testNames(t, 1), nil, map[string]any{OptionProfile: "shortlived"})
	_, _, cert := issue(t, ctx, iss, req)
	if life := cert.NotAfter.Sub(cert.NotBefore); life > 7*24*time.Hour {
		t.Fatalf("shortlived certificate valid for %s", life)
	}
	req, _ = request(t, testNames(t, 1), nil, map[string]any{OptionProfile: "no-such-profile"})
	if _, err := iss.Submit(ctx, req); err == nil || issuer.IsRetryable(err) || !strings.Contains(err.Error(), "invalidProfile") {
		t.Fatalf("unknown profile: %v", err)
	}
}

func TestAccountUnknownToCAIsRegisteredAgain(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	// A stored account the CA has never heard of (its database was reset).
	iss := newIssuer(t, p.config("forgotten"), store)
	stale, err := sealAccountKey(iss.secret, "forgotten", mustKeyPEM(t), testKDF)
	if err != nil {
		t.Fatal(err)
	}
	bogus := strings.TrimSuffix(p.dirURL, "/dir") + "/my-account/0123456789"
	if err := store.SaveAccount(ctx, "forgotten", AccountRecord{DirectoryURL: p.dirURL, AccountURL: bogus, SealedKey: stale}); err != nil {
		t.Fatal(err)
	}
	url, err := iss.Register(ctx)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	rec, _, _ := store.LoadAccount(ctx, "forgotten")
	if url == bogus || rec.AccountURL != url || p.wire.createdAt("/sign-me-up") != 1 {
		t.Fatalf("not registered again: %s (stored %s)", url, rec.AccountURL)
	}
	req, _ := request(t, testNames(t, 1), nil, nil)
	issue(t, ctx, iss, req)
}

func TestAnotherDirectoryGetsANewAccount(t *testing.T) {
	t.Parallel()
	a, b := startPebble(t, pebbleOptions{}), startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	urlA, err := newIssuer(t, a.config("moved"), store).Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := b.config("moved")
	urlB, err := newIssuer(t, cfgB, store).Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, _ := store.LoadAccount(ctx, "moved")
	if urlA == urlB || rec.DirectoryURL != b.dirURL || rec.AccountURL != urlB || b.wire.createdAt("/sign-me-up") != 1 {
		t.Fatalf("moving to another directory: %s → %s, stored %+v", urlA, urlB, rec)
	}
}

func TestWrongPassphraseIsReported(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	cfg := p.config("passphrase")
	cfg.AccountKeyPassphrase = "first passphrase"
	if _, err := newIssuer(t, cfg, store).Register(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.AccountKeyPassphrase = "second passphrase"
	_, err := newIssuer(t, cfg, store).Register(ctx)
	if err == nil || issuer.IsRetryable(err) || !strings.Contains(err.Error(), "account_key_passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if strings.Contains(err.Error(), "first passphrase") || strings.Contains(err.Error(), "second passphrase") {
		t.Fatal("a passphrase appears in the error")
	}
	if p.wire.createdAt("/sign-me-up") != 1 {
		t.Fatal("a second account was registered instead of reporting the wrong passphrase")
	}
}

func TestAddingAPassphraseReencryptsTheKey(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	cfg := p.config("add-passphrase")
	url, err := newIssuer(t, cfg, store).Register(ctx) // sealed under the EAB HMAC key
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccountKeyPassphrase = "a passphrase added later"
	url2, err := newIssuer(t, cfg, store).Register(ctx)
	if err != nil || url2 != url {
		t.Fatalf("after adding a passphrase: %s %v (was %s)", url2, err, url)
	}
	rec, _, _ := store.LoadAccount(ctx, "add-passphrase")
	if _, err := openAccountKey([]byte(cfg.AccountKeyPassphrase), "add-passphrase", rec.SealedKey); err != nil {
		t.Fatalf("the stored key is not under the passphrase: %v", err)
	}
	if p.wire.createdAt("/sign-me-up") != 1 {
		t.Fatal("a second account was registered")
	}
}

func TestCATLSCertificateIsVerified(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	cfg := p.config("untrusted")
	cfg.TLS = TLSConfig{}
	_, err := newIssuer(t, cfg, NewMemoryAccountStore()).Register(testContext(t))
	if err == nil || issuer.IsRetryable(err) || !strings.Contains(err.Error(), "tls.ca_bundle") {
		t.Fatalf("untrusted CA certificate: %v", err)
	}
}

func TestSubmitRejectsRequestsACMECannotServe(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	iss := newIssuer(t, p.config("reject"), NewMemoryAccountStore())
	names := testNames(t, 2)
	csr, _ := newCSR(t, names[0], names, nil)
	otherCSR, _ := newCSR(t, names[0], names[:1], nil)
	for name, req := range map[string]issuer.Request{
		"email SAN":       {CSRPEM: csr, CommonName: names[0], DNSNames: names, EmailAddresses: []string{"pki@example.test"}},
		"CN not a SAN":    {CSRPEM: csr, CommonName: "other.example.test", DNSNames: names},
		"CSR names":       {CSRPEM: otherCSR, CommonName: names[0], DNSNames: names},
		"not a CSR":       {CSRPEM: "garbage", DNSNames: names},
		"unknown option":  {CSRPEM: csr, DNSNames: names, Options: map[string]any{"colour": "blue"}},
		"bad replaces ID": {CSRPEM: csr, DNSNames: names, Options: map[string]any{OptionReplaces: 42}},
	} {
		if _, err := iss.Submit(ctx, req); err == nil || issuer.IsRetryable(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if p.wire.postsTo("/order-plz") != 0 {
		t.Fatal("an order was placed for a request that cannot be served")
	}
}

func mustKeyPEM(t *testing.T) []byte {
	t.Helper()
	_, key := newCSR(t, "x", []string{"x.example.test"}, nil)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// A provider that adds records (lego's httpreq, against a DNS hosting API) is given all of an
// order's challenges at once, here a wildcard and its base name sharing one TXT name.
func TestDNSThroughHTTPAPIWithWildcard(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	var (
		mu        sync.Mutex
		maxValues int
	)
	hosting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "certfleet" || pw != "api-password" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var msg struct{ FQDN, Value string }
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.FQDN == "" || msg.Value == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/present", "/cleanup":
			n := dnsServer.SetTXT(msg.FQDN, msg.Value, r.URL.Path == "/cleanup")
			mu.Lock()
			maxValues = max(maxValues, n)
			mu.Unlock()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(hosting.Close)

	cfg := p.config("hosting-api")
	cfg.DNS.Provider = "httpreq"
	cfg.DNS.Settings = map[string]string{"endpoint": hosting.URL, "username": "certfleet", "password": "api-password",
		"propagation_timeout": "10", "polling_interval": "0"}
	iss := newIssuer(t, cfg, NewMemoryAccountStore())
	if iss.dns.sequential() {
		t.Fatal("httpreq should not be sequential")
	}
	base := testNames(t, 1)[0]
	req, _ := request(t, []string{base, "*." + base}, nil, nil)
	_, _, cert := issue(t, ctx, iss, req)
	if !slices.Contains(cert.DNSNames, "*."+base) || !slices.Contains(cert.DNSNames, base) {
		t.Fatalf("names %v", cert.DNSNames)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxValues != 2 {
		t.Fatalf("_acme-challenge.%s held at most %d values, want both challenges at once", base, maxValues)
	}
	if left := dnsServer.Records("_acme-challenge." + base); len(left) != 0 {
		t.Fatalf("records left: %v", left)
	}
}

// TestRateLimitedAnswerKeepsRetryAfter: a rateLimited refusal carries the CA's Retry-After
// (seconds or an HTTP date, HTTP 429 or another status) so that the engine holds the next
// attempt until then; nothing is retried inside the call and no order is created.
func TestRateLimitedAnswerKeepsRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func() rateLimitAnswer
		want   time.Duration
	}{
		{"429 seconds", func() rateLimitAnswer { return rateLimitAnswer{http.StatusTooManyRequests, "5400"} }, 90 * time.Minute},
		{"429 date", func() rateLimitAnswer {
			return rateLimitAnswer{http.StatusTooManyRequests, time.Now().Add(3 * time.Hour).UTC().Format(http.TimeFormat)}
		}, 3 * time.Hour},
		{"403 seconds (UNCONFIRMED status)", func() rateLimitAnswer { return rateLimitAnswer{http.StatusForbidden, "7200"} }, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startPebble(t, pebbleOptions{})
			ctx := testContext(t)
			iss := newIssuer(t, p.config("limited"), NewMemoryAccountStore())
			if _, err := iss.Register(ctx); err != nil {
				t.Fatal(err)
			}
			p.wire.rateLimit("/order-plz", tc.answer())
			req, _ := request(t, testNames(t, 1), nil, nil)
			_, err := iss.Submit(ctx, req)
			if err == nil || !issuer.IsRetryable(err) || errors.Is(err, issuer.ErrOutcomeUnknown) {
				t.Fatalf("Submit: %v; want a retryable refusal", err)
			}
			if got := issuer.RetryAfterOf(err); got < tc.want-time.Minute || got > tc.want {
				t.Fatalf("Retry-After %s, want about %s (%v)", got, tc.want, err)
			}
			if p.wire.postsTo("/order-plz") != 1 || p.wire.createdAt("/order-plz") != 0 {
				t.Fatalf("%d newOrder POSTs, %d orders created; want 1 and 0", p.wire.postsTo("/order-plz"), p.wire.createdAt("/order-plz"))
			}
		})
	}

	// A rate limit on finalize: Collect reports the wait, the order is not finalized, and the
	// next Collect after the limit lifts issues it.
	t.Run("finalize", func(t *testing.T) {
		t.Parallel()
		p := startPebble(t, pebbleOptions{})
		ctx := testContext(t)
		iss := newIssuer(t, p.config("limited-finalize"), NewMemoryAccountStore())
		p.wire.rateLimit("/finalize-order/", rateLimitAnswer{http.StatusForbidden, "600"})
		req, _ := request(t, testNames(t, 1), nil, nil)
		ref, err := iss.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = iss.Collect(ctx, ref)
		if got := issuer.RetryAfterOf(err); got != 10*time.Minute || !issuer.IsRetryable(err) {
			t.Fatalf("Collect: %v (Retry-After %s); want a retryable refusal asking for 10m", err, got)
		}
		p.wire.mu.Lock()
		delete(p.wire.rateLimits, "/finalize-order/")
		p.wire.mu.Unlock()
		if res := collectUntilDone(t, ctx, iss, ref); res.State != issuer.Issued {
			t.Fatalf("Collect after the limit lifted: %s %s", res.State, res.Message)
		}
	})
}
