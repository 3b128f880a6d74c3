package acme

import (
	"context"
	"errors"
	"testing"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
)

// TestOffersRenewalInfoFollowsTheDirectory: renewal information is offered exactly when the
// directory names a renewalInfo resource (RFC 9773 §3); without it, RenewalWindow says so
// without a request.
func TestOffersRenewalInfoFollowsTheDirectory(t *testing.T) {
	for _, offered := range []bool{true, false} {
		pebble, err := pebblesim.Start(pebblesim.Config{NoRenewalInfo: !offered})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pebble.Close)
		kid, hmac := pebble.EAB()
		iss, err := New(Config{Name: "ca", DirectoryURL: pebble.DirectoryURL(), EAB: EAB{KeyID: kid, HMACKey: hmac},
			TLS: TLSConfig{CABundlePEM: pebble.TLSCACertPEM()}}, NewMemoryAccountStore())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		got, err := iss.OffersRenewalInfo(ctx)
		if err != nil || got != offered {
			t.Fatalf("directory with renewalInfo %v: OffersRenewalInfo %v, %v", offered, got, err)
		}
		if offered {
			continue
		}
		req, _ := request(t, testNames(t, 1), nil, nil)
		_, _, cert := issue(t, ctx, iss, req)
		requests := pebble.Requests()
		if _, err := iss.RenewalWindow(ctx, cert); !errors.Is(err, ErrNoRenewalInfo) || pebble.Requests() != requests {
			t.Fatalf("RenewalWindow without renewalInfo: %v after %d requests; want ErrNoRenewalInfo and none", err, pebble.Requests()-requests)
		}
	}
}

// TestCollectLeavesSlowValidationPending: while the CA takes longer than Collect's short wait to
// validate, Collect answers Pending (the engine collects again, holding no slot) with the record
// still published; a later Collect issues and removes the record.
func TestCollectLeavesSlowValidationPending(t *testing.T) {
	t.Parallel()
	pebble, err := pebblesim.Start(pebblesim.Config{Challenges: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pebble.Close)
	// Longer than Collect waits, shorter than the 2 s read timeout of Pebble's DNS client
	// (miekg/dns's default).
	pebble.DNS().DelayTXTAnswers(authzWaitInCollect * 3 / 2)
	kid, hmac := pebble.EAB()
	key, secret := pebble.DNS().TSIG()
	iss := newIssuer(t, Config{Name: "slow-va", DirectoryURL: pebble.DirectoryURL(), EAB: EAB{KeyID: kid, HMACKey: hmac},
		TLS: TLSConfig{CABundlePEM: pebble.TLSCACertPEM()},
		DNS: DNSConfig{Provider: "rfc2136", PropagationCheck: PropagationNone, Settings: map[string]string{
			"nameserver": pebble.DNS().Addr(), "tsig_algorithm": pebblesim.TSIGAlgorithm, "tsig_key": key, "tsig_secret": secret}},
	}, NewMemoryAccountStore())
	ctx := testContext(t)
	names := testNames(t, 1)
	req, _ := request(t, names, nil, nil)
	ref, err := iss.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := iss.Collect(ctx, ref)
	if err != nil || res.State != issuer.Pending {
		t.Fatalf("first Collect: %s %v; want pending while the CA validates", res.State, err)
	}
	record := "_acme-challenge." + names[0]
	if got := pebble.DNS().Records(record); len(got) != 1 {
		t.Fatalf("records while the CA validates: %v; want the one answer", got)
	}
	if res := collectUntilDone(t, ctx, iss, ref); res.State != issuer.Issued {
		t.Fatalf("%s: %s", res.State, res.Message)
	}
	if got := pebble.DNS().Records(record); len(got) != 0 {
		t.Fatalf("records left after issuance: %v", got)
	}
}
