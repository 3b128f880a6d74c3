package scm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet/core/issuer"
)

// listPageSize is the most certificates one GET /ssl/v1 returns: the Admin OpenAPI (ADMIN,
// "get-ssl-certificates-list_1") declares size with maximum 200; fgouteroux/sectigo-client pages
// with 200 too.
const listPageSize = 200

var _ issuer.RevocationLister = (*Issuer)(nil)

// RevokedAmong tells which of refs SCM revoked by listing the tenant's revoked certificates,
// GET /ssl/v1?status=Revoked&size=200&position=N (DOC25 "List SSL certificates": the status filter
// takes Revoked; the answer is an array of {sslId, commonName, subjectAlternativeNames,
// serialNumber} with the X-Total-Count header), instead of one collect per certificate. That is
// ceil(revoked/200) calls, whatever the number of refs; when it would be more calls than refs,
// or the list changed while it was paged through (X-Total-Count moved), every ref is left
// unanswered for Collect. The REST Enrollment API has no list call (ENR's seven operations):
// its refs are unanswered too, except those found through the Admin lookup account.
func (i *Issuer) RevokedAmong(ctx context.Context, refs []issuer.OrderRef) (map[issuer.OrderRef]string, []issuer.OrderRef, error) {
	revoked := map[issuer.OrderRef]string{}
	var unanswered []issuer.OrderRef
	byLister := map[*Issuer][]issuer.OrderRef{} // Admin API refs, by the account that lists them
	for _, ref := range refs {
		id, viaLookup := strings.CutPrefix(string(ref), lookupPrefix)
		lister := i
		if viaLookup {
			lister = i.lookup
		} else if i.cfg.API == APIEnrollment {
			lister = nil
		}
		if _, err := strconv.Atoi(id); err != nil || lister == nil {
			unanswered = append(unanswered, ref)
			continue
		}
		byLister[lister] = append(byLister[lister], ref)
	}
	for lister, listed := range byLister {
		ids, complete, err := lister.revokedSSLIDs(ctx, len(listed))
		if err != nil {
			return nil, nil, err
		}
		if !complete {
			unanswered = append(unanswered, listed...)
			continue
		}
		for _, ref := range listed {
			id, _ := strconv.Atoi(strings.TrimPrefix(string(ref), lookupPrefix))
			if ids[id] {
				revoked[ref] = fmt.Sprintf("SCM lists certificate %d as revoked", id)
			}
		}
	}
	return revoked, unanswered, nil
}

// revokedSSLIDs pages through the revoked certificates of the tenant. complete is false when the
// listing needs more than budget calls or changed while being read.
func (i *Issuer) revokedSSLIDs(ctx context.Context, budget int) (ids map[int]bool, complete bool, err error) {
	ids = map[int]bool{}
	total := -1
	for position, calls := 0, 0; ; calls++ {
		if calls >= budget {
			i.log.Debug("SCM's list of revoked certificates is longer than asking about each", "issuer", i.cfg.Name, "revoked", total)
			return nil, false, nil
		}
		q := url.Values{"status": {"Revoked"}, "size": {strconv.Itoa(listPageSize)}, "position": {strconv.Itoa(position)}}
		resp, err := i.do(ctx, call{op: "list revoked certificates", method: http.MethodGet, path: "ssl/v1", query: q, idempotent: true})
		if err != nil {
			return nil, false, err
		}
		var page []struct {
			SSLID int `json:"sslId"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return nil, false, &Error{Op: "list revoked certificates", HTTPStatus: resp.status, Description: "unexpected answer: " + err.Error()}
		}
		count, err := strconv.Atoi(resp.header.Get("X-Total-Count"))
		switch {
		case err != nil:
			count = -1 // not given: page until a short page
		case calls == 0:
			total = count
			if pages := (count + listPageSize - 1) / listPageSize; pages > budget {
				i.log.Debug("SCM's list of revoked certificates is longer than asking about each", "issuer", i.cfg.Name, "revoked", count)
				return nil, false, nil
			}
		case count != total:
			// A certificate was revoked (or purged) while the pages were read: positions moved,
			// and one may have been skipped.
			return nil, false, nil
		}
		for _, c := range page {
			ids[c.SSLID] = true
		}
		position += len(page)
		if len(page) < listPageSize || (total >= 0 && position >= total) {
			return ids, true, nil
		}
	}
}
