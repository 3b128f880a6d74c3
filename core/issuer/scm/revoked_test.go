package scm

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

const listRoute = "GET /api/ssl/v1"

// placeOrders places n Admin API orders in sim directly and returns their references.
func placeOrders(t *testing.T, sim *scmsim.Server, n int) []issuer.OrderRef {
	t.Helper()
	csrPEM, _ := csrFor(t, "fleet.example.com")
	block, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var refs []issuer.OrderRef
	for _, id := range sim.PlaceOrders(n, 1234, sim.Config().Profiles[0], csr) {
		refs = append(refs, issuer.OrderRef(strconv.Itoa(id)))
	}
	return refs
}

func revokeOutOfBand(t *testing.T, sim *scmsim.Server, refs ...issuer.OrderRef) {
	t.Helper()
	for _, ref := range refs {
		id, _ := strconv.Atoi(string(ref))
		if err := sim.RevokeOutOfBand(id); err != nil {
			t.Fatal(err)
		}
	}
}

func revokedRefs(revoked map[issuer.OrderRef]string) []issuer.OrderRef {
	var out []issuer.OrderRef
	for ref := range revoked {
		out = append(out, ref)
	}
	slices.Sort(out)
	return out
}

// TestRevokedAmongPagesThroughTheRevokedList: 430 revoked certificates among 450 are read in
// three pages of at most 200 (the Admin OpenAPI's bound), whatever the simulator does with a
// larger size (UNCONFIRMED: refuse or clamp), and no certificate is asked about on its own.
func TestRevokedAmongPagesThroughTheRevokedList(t *testing.T) {
	for _, clamps := range []bool{false, true} {
		t.Run(fmt.Sprintf("clamps size %v", clamps), func(t *testing.T) {
			sim := startSim(t, func(c *scmsim.Config) { c.ListClampsSize = clamps })
			i, _ := newClient(t, sim, "oauth2")
			refs := placeOrders(t, sim, 450)
			revokeOutOfBand(t, sim, refs[:430]...)
			revoked, unanswered, err := i.RevokedAmong(context.Background(), refs)
			if err != nil {
				t.Fatal(err)
			}
			if got := revokedRefs(revoked); !slices.Equal(got, refs[:430]) || len(unanswered) != 0 {
				t.Fatalf("revoked %d (%v…), unanswered %v; want the first 430, none unanswered", len(got), got[:min(3, len(got))], unanswered)
			}
			if n := sim.Calls(listRoute); n != 3 {
				t.Errorf("%d list calls, want 3 pages", n)
			}
			if n := sim.Calls("GET /api/ssl/v1/collect/{id}") + sim.Calls("GET /api/ssl/v1/{id}"); n != 0 {
				t.Errorf("%d calls about single certificates", n)
			}
		})
	}
}

// TestRevokedAmongLeavesToCollectWhatItCannotAnswerCheaply: a listing longer than asking about
// each certificate is abandoned after its first page (X-Total-Count says how long it is), and
// every ref is left to Collect.
func TestRevokedAmongLeavesToCollectWhatItCannotAnswerCheaply(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	refs := placeOrders(t, sim, 450)
	revokeOutOfBand(t, sim, refs[:430]...)
	mine := []issuer.OrderRef{refs[0], refs[449]}
	revoked, unanswered, err := i.RevokedAmong(context.Background(), mine)
	if err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 0 || !slices.Equal(unanswered, mine) {
		t.Fatalf("revoked %v, unanswered %v; want all of %v unanswered", revoked, unanswered, mine)
	}
	if n := sim.Calls(listRoute); n != 1 {
		t.Errorf("%d list calls, want 1", n)
	}
}

// revokeAfterFirstPage revokes one more order when the first page of the revoked list has been
// answered: the list moves while a client pages through it.
type revokeAfterFirstPage struct {
	next http.RoundTripper
	once sync.Once
	do   func()
}

func (r *revokeAfterFirstPage) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && req.URL.Path == "/api/ssl/v1" && req.URL.Query().Get("position") == "0" {
		r.once.Do(r.do)
	}
	return resp, err
}

// TestRevokedAmongDoesNotTrustAListThatMoved: when a certificate is revoked between two pages,
// entries may have shifted past the client; it says nothing rather than miss one.
func TestRevokedAmongDoesNotTrustAListThatMoved(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	refs := placeOrders(t, sim, 450)
	revokeOutOfBand(t, sim, refs[:430]...)
	transport := i.http.Transport
	i.http = &http.Client{Timeout: time.Minute, Transport: &revokeAfterFirstPage{next: transport, do: func() { revokeOutOfBand(t, sim, refs[440]) }}}
	revoked, unanswered, err := i.RevokedAmong(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 0 || len(unanswered) != len(refs) {
		t.Fatalf("%d revoked, %d unanswered; want every ref unanswered", len(revoked), len(unanswered))
	}
}

// TestRevokedAmongOnTheEnrollmentAPI: the REST Enrollment API lists nothing, so its orders are
// left to Collect; orders found through the Admin lookup account are listed there.
func TestRevokedAmongOnTheEnrollmentAPI(t *testing.T) {
	sim := startSim(t, nil)
	cfg := enrollConfig(sim)
	cfg.Lookup = adminLookup(sim)
	i, err := New(cfg, WithRetry(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	admin := placeOrders(t, sim, 2)
	revokeOutOfBand(t, sim, admin[1])
	viaLookup := []issuer.OrderRef{lookupPrefix + admin[0], lookupPrefix + admin[1]}
	refs := append([]issuer.OrderRef{"0f3c9a1b2d4e"}, viaLookup...)
	revoked, unanswered, err := i.RevokedAmong(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	if got := revokedRefs(revoked); !slices.Equal(got, viaLookup[1:]) || !slices.Equal(unanswered, refs[:1]) {
		t.Fatalf("revoked %v, unanswered %v; want %v revoked and the enrollment certId unanswered", got, unanswered, viaLookup[1:])
	}
	if n := sim.Calls(listRoute); n != 1 {
		t.Errorf("%d list calls, want 1", n)
	}
}
