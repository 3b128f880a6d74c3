package scm

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
)

type profile struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Terms []int  `json:"terms"`
}

type customField struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Mandatory bool   `json:"mandatory"`
}

// requestMarker goes into an order's comments so Find can recognise it.
const requestMarker = "certfleet-request:"

// options are a certificate's issuer options.
type options struct {
	certTypeID        int
	certTypeName      string
	term              int
	comments          string
	externalRequester string
	customFields      map[string]string
	orgID             int
}

var optionNames = []string{"cert_type", "term", "comments", "external_requester", "custom_fields", "org_id"}

func intOption(name string, v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case float64:
		if n == float64(int(n)) {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("issuer option %s must be a whole number, not %v", name, v)
}

func parseOptions(opts map[string]any) (options, error) {
	var o options
	var errs []error
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		var err error
		switch k {
		case "cert_type":
			if s, ok := v.(string); ok {
				o.certTypeName = s
			} else {
				o.certTypeID, err = intOption(k, v)
			}
		case "term":
			o.term, err = intOption(k, v)
			if err == nil && o.term < 1 {
				err = fmt.Errorf("issuer option term must be a number of days, 1 or more")
			}
		case "org_id":
			o.orgID, err = intOption(k, v)
		case "comments", "external_requester":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("issuer option %s must be a string", k)
			} else if k == "comments" {
				o.comments = s
			} else {
				o.externalRequester = s
			}
		case "custom_fields":
			m, ok := v.(map[string]any)
			if !ok {
				err = fmt.Errorf("issuer option custom_fields must be a mapping of field name to value")
				break
			}
			o.customFields = map[string]string{}
			for name, val := range m {
				// The configuration keeps scalars as written (2025-01-31, 0123); a value that
				// still arrives as a date is sent in SCM's DATE format yyyy-MM-dd (DOC25).
				if t, ok := val.(time.Time); ok {
					val = t.Format(time.DateOnly)
				}
				o.customFields[name] = fmt.Sprint(val)
			}
		default:
			err = fmt.Errorf("unknown SCM issuer option %q (known: %s)", k, strings.Join(optionNames, ", "))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(o.comments) > 900 {
		errs = append(errs, errors.New("issuer option comments is longer than 900 characters (SCM allows 1024, certfleet adds its marker)"))
	}
	if len(o.externalRequester) > 512 {
		errs = append(errs, errors.New("issuer option external_requester is longer than 512 characters, the most SCM accepts"))
	}
	return o, errors.Join(errs...)
}

// ValidateOptions checks a certificate's issuer options offline. The term is optional: SCM then
// uses the profile's longest.
func (i *Issuer) ValidateOptions(opts map[string]any) error { return ValidateOptions(i.cfg.API, opts) }

// ValidateOptions checks issuer options for an SCM issuer of the given API flavour (admin, the
// default, or enrollment) without an issuer or a network: names, types, and what the flavour
// requires.
func ValidateOptions(api string, opts map[string]any) error {
	o, err := parseOptions(opts)
	if err != nil {
		return err
	}
	if api == APIEnrollment {
		return enrollmentOptionsError(o)
	}
	if o.certTypeID == 0 && o.certTypeName == "" {
		return errors.New("issuer option cert_type is missing: give the SCM profile's id or name, or DV/OV/EV (defaults.issuer_options.cert_type for all)")
	}
	return nil
}

func (i *Issuer) getJSON(ctx context.Context, op, path string, query url.Values, out any) error {
	resp, err := i.do(ctx, call{op: op, method: http.MethodGet, path: path, query: query, idempotent: true})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return &Error{Op: op, HTTPStatus: resp.status, Description: "unexpected answer: " + err.Error()}
	}
	return nil
}

// catalog loads the profiles of an organization and the custom fields once. Profiles are listed
// with organizationId (DOC25 "List SSL types"): another organization may hold a profile of the
// same name that this one cannot order.
func (i *Issuer) catalog(ctx context.Context, org int) ([]profile, []customField, error) {
	i.profilesMu.Lock()
	defer i.profilesMu.Unlock()
	if i.profiles == nil {
		i.profiles = map[int][]profile{}
	}
	if p, ok := i.profiles[org]; ok && i.fields != nil {
		return p, i.fields, nil
	}
	var profiles []profile
	if err := i.getJSON(ctx, "list profiles", "ssl/v1/types", url.Values{"organizationId": {strconv.Itoa(org)}}, &profiles); err != nil {
		return nil, nil, err
	}
	if i.fields == nil {
		var fields []customField
		if err := i.getJSON(ctx, "list custom fields", "ssl/v1/customFields", nil, &fields); err != nil {
			return nil, nil, err
		}
		i.fields = fields
	}
	i.profiles[org] = profiles
	return profiles, i.fields, nil
}

// validationLevels are the cert types the seed agents let a user name (sectigo_ssl_cert_type:
// DV, OV or EV).
var validationLevels = []string{"DV", "OV", "EV"}

// findProfile picks the profile by id, by exact name, or by validation level when exactly one
// profile's name carries it as a word ("OV" → "OV SSL").
func findProfile(profiles []profile, o options) (profile, error) {
	idx := slices.IndexFunc(profiles, func(p profile) bool {
		return (o.certTypeID != 0 && p.ID == o.certTypeID) || (o.certTypeName != "" && strings.EqualFold(p.Name, o.certTypeName))
	})
	if idx >= 0 {
		return profiles[idx], nil
	}
	if level := strings.ToUpper(o.certTypeName); slices.Contains(validationLevels, level) {
		var matches []profile
		for _, p := range profiles {
			words := strings.FieldsFunc(strings.ToUpper(p.Name), func(r rune) bool { return r == ' ' || r == '-' || r == '_' || r == '/' })
			if slices.Contains(words, level) {
				matches = append(matches, p)
			}
		}
		if len(matches) == 1 {
			return matches[0], nil
		}
		if len(matches) > 1 {
			return profile{}, fmt.Errorf("cert_type %s matches several profiles (%s): give the profile's name or id", level, profileNames(matches))
		}
	}
	want := strconv.Itoa(o.certTypeID)
	if o.certTypeName != "" {
		want = strconv.Quote(o.certTypeName)
	}
	return profile{}, fmt.Errorf("cert_type %s is not a profile of this account (profiles: %s)", want, profileNames(profiles))
}

func profileNames(profiles []profile) string {
	names := make([]string, 0, len(profiles))
	for _, p := range profiles {
		names = append(names, fmt.Sprintf("%d %q", p.ID, p.Name))
	}
	return strings.Join(names, ", ")
}

// resolve checks options against the account: the profile exists, the term is one of its terms,
// every mandatory custom field is set.
func (i *Issuer) resolve(ctx context.Context, o *options) (profile, error) {
	if o.orgID == 0 {
		o.orgID = i.cfg.OrgID
	}
	profiles, fields, err := i.catalog(ctx, o.orgID)
	if err != nil {
		return profile{}, err
	}
	p, err := findProfile(profiles, *o)
	if err != nil {
		return profile{}, fmt.Errorf("SCM issuer %s: organization %d: %w", i.cfg.Name, o.orgID, err)
	}
	if o.term == 0 && len(p.Terms) > 0 {
		// No term given: the profile's longest, as SCM itself picks (reference §11 "Terms"); public
		// profiles allow at most 199 days since SCM 26.1, and fewer from 2027 and 2029.
		o.term = slices.Max(p.Terms)
	}
	if len(p.Terms) > 0 && !slices.Contains(p.Terms, o.term) {
		return profile{}, fmt.Errorf("SCM issuer %s: term %d is not allowed by profile %q (allowed: %v days)", i.cfg.Name, o.term, p.Name, p.Terms)
	}
	for _, f := range fields {
		if f.Mandatory && o.customFields[f.Name] == "" {
			return profile{}, fmt.Errorf("SCM issuer %s: custom field %q is mandatory: set issuer_options.custom_fields.%s", i.cfg.Name, f.Name, f.Name)
		}
	}
	return p, nil
}

type enrollBody struct {
	OrgID             int           `json:"orgId"`
	CSR               string        `json:"csr"`
	SubjAltNames      string        `json:"subjAltNames,omitempty"`
	CertType          int           `json:"certType"`
	Term              int           `json:"term,omitempty"`
	Comments          string        `json:"comments,omitempty"`
	ExternalRequester string        `json:"externalRequester,omitempty"`
	CustomFields      []customValue `json:"customFields,omitempty"`
}

type customValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// extraNames are the request's names other than the common name, for subjAltNames.
func extraNames(req issuer.Request) []string {
	var sans []string
	for _, n := range slices.Concat(req.DNSNames, req.IPAddresses, req.EmailAddresses) {
		if n != req.CommonName {
			sans = append(sans, n)
		}
	}
	return sans
}

// comments are the user's comments and the marker Find looks for.
func comments(o options, req issuer.Request) string {
	return strings.TrimSpace(o.comments + " " + requestMarker + req.RequestID)
}

// Submit enrolls the CSR. A request that may have reached SCM without an answer returns an error
// wrapping issuer.ErrOutcomeUnknown and is never sent again here.
func (i *Issuer) Submit(ctx context.Context, req issuer.Request) (issuer.OrderRef, error) {
	if i.cfg.API == APIEnrollment {
		return i.submitEnrollment(ctx, req)
	}
	o, err := parseOptions(req.Options)
	if err != nil {
		return "", issuer.NotPlaced(fmt.Errorf("SCM issuer %s: certificate %s: %w", i.cfg.Name, req.CertificateName, err))
	}
	p, err := i.resolve(ctx, &o)
	if err != nil {
		return "", issuer.NotPlaced(err) // only the account's catalogue was read
	}
	body := enrollBody{OrgID: o.orgID, CSR: req.CSRPEM, CertType: p.ID, Term: o.term, ExternalRequester: o.externalRequester}
	body.SubjAltNames = strings.Join(extraNames(req), ",")
	body.Comments = comments(o, req)
	names := make([]string, 0, len(o.customFields))
	for n := range o.customFields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		body.CustomFields = append(body.CustomFields, customValue{Name: n, Value: o.customFields[n]})
	}
	resp, err := i.do(ctx, call{op: "enroll " + req.CertificateName, method: http.MethodPost, path: "ssl/v1/enroll", body: body})
	if err != nil {
		return "", err
	}
	var out struct {
		SSLID json.Number `json:"sslId"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.SSLID == "" {
		// SCM took the order but its answer is unreadable: treat it as unknown, look it up.
		return "", fmt.Errorf("SCM enroll %s: unreadable answer: %w", req.CertificateName, issuer.ErrOutcomeUnknown)
	}
	i.log.Info("SCM order placed", "issuer", i.cfg.Name, "certificate", req.CertificateName, "ssl_id", out.SSLID.String())
	ref := issuer.OrderRef(out.SSLID.String())
	i.placed(ref)
	return ref, nil
}

func sslID(ref issuer.OrderRef) (string, error) {
	if _, err := strconv.Atoi(string(ref)); err != nil {
		return "", fmt.Errorf("SCM order reference %q is not an SSL id", ref)
	}
	return string(ref), nil
}

// Details is what SCM says of an order.
type Details struct {
	ID                int      `json:"id"`
	CommonName        string   `json:"commonName"`
	Status            string   `json:"status"`
	Comments          string   `json:"comments"`
	SerialNumber      string   `json:"serialNumber"`
	Expires           string   `json:"expires"`
	Requested         string   `json:"requested"`
	SubjectAltNames   []string `json:"subjectAlternativeNames"`
	ExternalRequester string   `json:"externalRequester"`
}

// Details returns an order's details.
func (i *Issuer) Details(ctx context.Context, ref issuer.OrderRef) (Details, error) {
	id, err := sslID(ref)
	if err != nil {
		return Details{}, err
	}
	var d Details
	err = i.getJSON(ctx, "details of "+id, "ssl/v1/"+id, nil, &d)
	return d, err
}

// Find looks for the order a Submit of req placed: by common name, then the request marker in
// the order's comments; the newest match wins.
func (i *Issuer) Find(ctx context.Context, req issuer.Request) (issuer.OrderRef, bool, error) {
	if i.cfg.API == APIEnrollment {
		return i.findEnrollment(ctx, req)
	}
	marker := requestMarker + req.RequestID
	const page = 50
	var best int
	for position := 0; ; position += page {
		var list []struct {
			SSLID int `json:"sslId"`
		}
		q := url.Values{"commonName": {req.CommonName}, "size": {strconv.Itoa(page)}, "position": {strconv.Itoa(position)}}
		if err := i.getJSON(ctx, "list orders for "+req.CommonName, "ssl/v1", q, &list); err != nil {
			return "", false, err
		}
		for _, o := range list {
			if o.SSLID <= best {
				continue
			}
			d, err := i.Details(ctx, issuer.OrderRef(strconv.Itoa(o.SSLID)))
			if err != nil {
				return "", false, err
			}
			if strings.Contains(d.Comments, marker) {
				best = o.SSLID
			}
		}
		if len(list) < page {
			break
		}
	}
	if best == 0 {
		return "", false, nil
	}
	return issuer.OrderRef(strconv.Itoa(best)), true, nil
}

// detailsEvery is how many pending polls pass between two looks at an order's status: a declined
// order is seen at the first pending poll and then every few, without a second call on each poll.
const detailsEvery = 5

// placed notes when an order was placed, for the initial delay.
func (i *Issuer) placed(ref issuer.OrderRef) {
	i.pollsMu.Lock()
	defer i.pollsMu.Unlock()
	i.polls[ref] = &pollState{placed: i.now()}
}

// pendingPoll counts a pending answer and reports whether this poll should also ask for the
// order's status.
func (i *Issuer) pendingPoll(ref issuer.OrderRef) bool {
	i.pollsMu.Lock()
	defer i.pollsMu.Unlock()
	p := i.polls[ref]
	if p == nil {
		p = &pollState{}
		i.polls[ref] = p
	}
	p.pending++
	return p.pending%detailsEvery == 1
}

// forget drops an order's polling state once it reached an end.
func (i *Issuer) forget(ref issuer.OrderRef) {
	i.pollsMu.Lock()
	defer i.pollsMu.Unlock()
	delete(i.polls, ref)
}

// initialWait is what is left of the initial delay for an order placed by this process.
func (i *Issuer) initialWait(ref issuer.OrderRef) time.Duration {
	if i.cfg.InitialDelay <= 0 {
		return 0
	}
	i.pollsMu.Lock()
	defer i.pollsMu.Unlock()
	p := i.polls[ref]
	if p == nil || p.placed.IsZero() {
		return 0
	}
	return max(0, p.placed.Add(i.cfg.InitialDelay).Sub(i.now()))
}

// Collect downloads the certificate and chain, or reports the order pending, failed or revoked.
// Within the initial delay after placing it, it answers pending without asking SCM, so the
// engine waits without holding the issuer's concurrency slot.
func (i *Issuer) Collect(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	if id, ok := strings.CutPrefix(string(ref), lookupPrefix); ok {
		if i.lookup == nil {
			return issuer.Result{}, fmt.Errorf("SCM issuer %s: order %s was found through the Admin API: configure scm.lookup to collect it", i.cfg.Name, ref)
		}
		return i.lookup.Collect(ctx, issuer.OrderRef(id))
	}
	if wait := i.initialWait(ref); wait > 0 {
		return issuer.Result{State: issuer.Pending, RetryAfter: wait, Message: "waiting the initial delay before the first collect"}, nil
	}
	var res issuer.Result
	var err error
	if i.cfg.API == APIEnrollment {
		res, err = i.collectEnrollment(ctx, ref)
	} else {
		res, err = i.collectAdmin(ctx, ref)
	}
	if err == nil && res.State != issuer.Pending {
		i.forget(ref)
	}
	return res, err
}

func (i *Issuer) collectAdmin(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	id, err := sslID(ref)
	if err != nil {
		return issuer.Result{}, err
	}
	resp, err := i.do(ctx, call{op: "collect " + id, method: http.MethodGet, path: "ssl/v1/collect/" + id,
		query: url.Values{"format": {"x509"}}, idempotent: true})
	// "Not collectable" also covers declined orders: the status tells them apart.
	return i.collected(ref, id, resp, err, func() (string, error) {
		d, err := i.Details(ctx, ref)
		return d.Status, err
	})
}

// collected reads a download's answer, the same in both APIs: the chain; an empty 200, which
// some tenants send while processing (sguidia/sectigo-issuer), is pending; -110 is revoked; a
// pending code is pending unless the order's status, read by status now and then, says it ended.
func (i *Issuer) collected(ref issuer.OrderRef, id string, resp *response, err error, status func() (string, error)) (issuer.Result, error) {
	var apiErr *Error
	switch {
	case err == nil:
		if len(bytes.TrimSpace(resp.body)) == 0 {
			return issuer.Result{State: issuer.Pending, RetryAfter: retryAfter(resp.header.Get("Retry-After"), i.now())}, nil
		}
		return parseChain(resp.body)
	case errors.As(err, &apiErr) && apiErr.HasCode && apiErr.Code == -110:
		return issuer.Result{State: issuer.Revoked, Message: apiErr.Description}, nil
	case errors.As(err, &apiErr) && isPending(apiErr):
		if !i.pendingPoll(ref) {
			return issuer.Result{State: issuer.Pending, Message: apiErr.Description}, nil
		}
		st, serr := status()
		if serr != nil {
			return issuer.Result{}, serr
		}
		if res, done := endState(id, st); done {
			return res, nil
		}
		return issuer.Result{State: issuer.Pending, Message: apiErr.Description}, nil
	}
	return issuer.Result{}, err
}

// endState maps an SCM status that ends an order to its result (Keyfactor's plugin treats
// Invalid/Declined/Rejected as failed; reference §3.4).
func endState(id, status string) (issuer.Result, bool) {
	switch strings.ToLower(status) {
	case "declined", "rejected", "invalid":
		return issuer.Result{State: issuer.Failed, Message: fmt.Sprintf("SCM order %s is %s", id, status)}, true
	case "revoked":
		return issuer.Result{State: issuer.Revoked, Message: fmt.Sprintf("SCM order %s is revoked", id)}, true
	}
	return issuer.Result{}, false
}

// parseChain reads a PEM bundle in any order and returns the leaf and its chain, leaf first.
func parseChain(body []byte) (issuer.Result, error) {
	certs, err := sdk.ParseCertificatesPEM(string(body))
	if err != nil {
		return issuer.Result{}, fmt.Errorf("SCM collect: %w", err)
	}
	leaf, chain, err := orderChain(certs)
	if err != nil {
		return issuer.Result{}, err
	}
	res := issuer.Result{State: issuer.Issued, CertPEM: encodePEM(leaf)}
	for _, c := range chain {
		res.ChainPEM = append(res.ChainPEM, encodePEM(c))
	}
	return res, nil
}

// orderChain finds the leaf (the certificate that issued none of the others) and follows issuers
// up from it; the order SCM returns is not documented.
func orderChain(certs []*x509.Certificate) (*x509.Certificate, []*x509.Certificate, error) {
	var leaf *x509.Certificate
	for _, c := range certs {
		issuesAnother := false
		for _, o := range certs {
			if o != c && bytes.Equal(o.RawIssuer, c.RawSubject) && o.CheckSignatureFrom(c) == nil {
				issuesAnother = true
				break
			}
		}
		if !issuesAnother && !c.IsCA {
			if leaf != nil {
				return nil, nil, errors.New("SCM collect: the answer holds more than one end-entity certificate")
			}
			leaf = c
		}
	}
	if leaf == nil {
		return nil, nil, errors.New("SCM collect: the answer holds no end-entity certificate")
	}
	var chain []*x509.Certificate
	cur := leaf
	for len(chain) < len(certs) {
		var next *x509.Certificate
		for _, c := range certs {
			if c != cur && !slices.Contains(chain, c) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		if bytes.Equal(next.RawIssuer, next.RawSubject) {
			break
		}
		cur = next
	}
	return leaf, chain, nil
}

func encodePEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// reasonText is a revocation reason in words; SCM accepts 0, 1, 3, 4 and 5 (DOC25, ENR).
func reasonText(reason issuer.RevokeReason) (string, error) {
	text := map[issuer.RevokeReason]string{issuer.ReasonUnspecified: "unspecified", issuer.ReasonKeyCompromise: "key compromise",
		issuer.ReasonAffiliationChanged: "affiliation changed", issuer.ReasonSuperseded: "superseded",
		issuer.ReasonCessationOfOperation: "cessation of operation"}[reason]
	if text == "" {
		return "", fmt.Errorf("SCM revoke: reason %d is not one SCM accepts (0, 1, 3, 4, 5)", reason)
	}
	return text, nil
}

// Revoke revokes the order's certificate.
func (i *Issuer) Revoke(ctx context.Context, ref issuer.OrderRef, cert *x509.Certificate, reason issuer.RevokeReason) error {
	if id, ok := strings.CutPrefix(string(ref), lookupPrefix); ok && i.lookup != nil {
		return i.lookup.Revoke(ctx, issuer.OrderRef(id), cert, reason)
	}
	if i.cfg.API == APIEnrollment {
		return i.revokeEnrollment(ctx, ref, reason)
	}
	id, err := sslID(ref)
	if err != nil {
		return err
	}
	text, err := reasonText(reason)
	if err != nil {
		return err
	}
	_, err = i.do(ctx, call{op: "revoke " + id, method: http.MethodPost, path: "ssl/v1/revoke/" + id, idempotent: true,
		body: map[string]any{"reasonCode": int(reason), "reason": "certfleet: " + text}})
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.HasCode && apiErr.Code == -159 {
		return nil // already revoked
	}
	return err
}
