package acme

import (
	"context"
	"errors"
	"testing"

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
