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

	"github.com/certfleet/certfleet/core/issuer"
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
	return o, errors.Join(errs...)
}

// ValidateOptions checks a certificate's issuer options offline.
func (i *Issuer) ValidateOptions(opts map[string]any) error { return ValidateOptions(opts) }

// ValidateOptions checks issuer options for an SCM issuer without an issuer or a network: names,
// types, and that cert_type and term are there.
func ValidateOptions(opts map[string]any) error {
	o, err := parseOptions(opts)
	if err == nil && o.certTypeID == 0 && o.certTypeName == "" {
		err = errors.New("issuer option cert_type is missing: give the SCM profile's id or name (defaults.issuer_options.cert_type for all)")
	}
	if err == nil && o.term == 0 {
		err = errors.New("issuer option term is missing: the certificate's term in days, one the profile allows (e.g. 365)")
	}
	return err
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

// catalog loads the account's profiles and custom fields once.
func (i *Issuer) catalog(ctx context.Context) ([]profile, []customField, error) {
	i.profilesMu.Lock()
	defer i.profilesMu.Unlock()
	if i.profiles != nil {
		return i.profiles, i.fields, nil
	}
	var profiles []profile
	if err := i.getJSON(ctx, "list profiles", "ssl/v1/types", nil, &profiles); err != nil {
		return nil, nil, err
	}
	var fields []customField
	if err := i.getJSON(ctx, "list custom fields", "ssl/v1/customFields", nil, &fields); err != nil {
		return nil, nil, err
	}
	i.profiles, i.fields = profiles, fields
	return profiles, fields, nil
}

// resolve checks options against the account: the profile exists, the term is one of its terms,
// every mandatory custom field is set.
func (i *Issuer) resolve(ctx context.Context, o *options) (profile, error) {
	profiles, fields, err := i.catalog(ctx)
	if err != nil {
		return profile{}, err
	}
	idx := slices.IndexFunc(profiles, func(p profile) bool {
		return (o.certTypeID != 0 && p.ID == o.certTypeID) || (o.certTypeName != "" && strings.EqualFold(p.Name, o.certTypeName))
	})
	if idx < 0 {
		names := make([]string, 0, len(profiles))
		for _, p := range profiles {
			names = append(names, fmt.Sprintf("%d %q", p.ID, p.Name))
		}
		want := strconv.Itoa(o.certTypeID)
		if o.certTypeName != "" {
			want = strconv.Quote(o.certTypeName)
		}
		return profile{}, fmt.Errorf("SCM issuer %s: cert_type %s is not a profile of this account (profiles: %s)", i.cfg.Name, want, strings.Join(names, ", "))
	}
	p := profiles[idx]
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
	Term              int           `json:"term"`
	Comments          string        `json:"comments,omitempty"`
	ExternalRequester string        `json:"externalRequester,omitempty"`
	CustomFields      []customValue `json:"customFields,omitempty"`
}

type customValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Submit enrolls the CSR. A request that may have reached SCM without an answer returns an error
// wrapping issuer.ErrOutcomeUnknown and is never sent again here.
func (i *Issuer) Submit(ctx context.Context, req issuer.Request) (issuer.OrderRef, error) {
	o, err := parseOptions(req.Options)
	if err != nil {
		return "", fmt.Errorf("SCM issuer %s: certificate %s: %w", i.cfg.Name, req.CertificateName, err)
	}
	p, err := i.resolve(ctx, &o)
	if err != nil {
		return "", err
	}
	body := enrollBody{OrgID: i.cfg.OrgID, CSR: req.CSRPEM, CertType: p.ID, Term: o.term, ExternalRequester: o.externalRequester}
	if o.orgID != 0 {
		body.OrgID = o.orgID
	}
	var sans []string
	for _, n := range append(append(append([]string{}, req.DNSNames...), req.IPAddresses...), req.EmailAddresses...) {
		if n != req.CommonName {
			sans = append(sans, n)
		}
	}
	body.SubjAltNames = strings.Join(sans, ",")
	body.Comments = strings.TrimSpace(o.comments + " " + requestMarker + req.RequestID)
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
	return issuer.OrderRef(out.SSLID.String()), nil
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

// Collect downloads the certificate and chain, or reports the order pending, failed or revoked.
func (i *Issuer) Collect(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	id, err := sslID(ref)
	if err != nil {
		return issuer.Result{}, err
	}
	resp, err := i.do(ctx, call{op: "collect " + id, method: http.MethodGet, path: "ssl/v1/collect/" + id,
		query: url.Values{"format": {"x509"}}, idempotent: true})
	var apiErr *Error
	switch {
	case err == nil:
		if len(bytes.TrimSpace(resp.body)) == 0 {
			// Some tenants answer 200 with nothing while processing.
			return issuer.Result{State: issuer.Pending, RetryAfter: retryAfter(resp.header.Get("Retry-After"), i.now())}, nil
		}
		return parseChain(resp.body)
	case errors.As(err, &apiErr) && apiErr.Code == -110:
		return issuer.Result{State: issuer.Revoked, Message: apiErr.Description}, nil
	case errors.As(err, &apiErr) && pendingCodes[apiErr.Code] && apiErr.HTTPStatus == http.StatusBadRequest:
		// "Not collectable" also covers declined orders: the status tells them apart.
		d, derr := i.Details(ctx, ref)
		if derr != nil {
			return issuer.Result{}, derr
		}
		switch strings.ToLower(d.Status) {
		case "declined", "rejected", "invalid":
			return issuer.Result{State: issuer.Failed, Message: fmt.Sprintf("SCM order %s is %s", id, d.Status)}, nil
		case "revoked":
			return issuer.Result{State: issuer.Revoked, Message: fmt.Sprintf("SCM order %s is revoked", id)}, nil
		}
		return issuer.Result{State: issuer.Pending, Message: apiErr.Description}, nil
	}
	return issuer.Result{}, err
}

// parseChain reads a PEM bundle in any order and returns the leaf and its chain, leaf first.
func parseChain(body []byte) (issuer.Result, error) {
	var certs []*x509.Certificate
	rest := body
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return issuer.Result{}, fmt.Errorf("SCM collect: certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return issuer.Result{}, errors.New("SCM collect: the answer holds no PEM certificate")
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

// Revoke revokes the order's certificate.
func (i *Issuer) Revoke(ctx context.Context, ref issuer.OrderRef, _ *x509.Certificate, reason issuer.RevokeReason) error {
	id, err := sslID(ref)
	if err != nil {
		return err
	}
	text := map[issuer.RevokeReason]string{issuer.ReasonUnspecified: "unspecified", issuer.ReasonKeyCompromise: "key compromise",
		issuer.ReasonAffiliationChanged: "affiliation changed", issuer.ReasonSuperseded: "superseded",
		issuer.ReasonCessationOfOperation: "cessation of operation"}[reason]
	if text == "" {
		return fmt.Errorf("SCM revoke: reason %d is not one SCM accepts (0, 1, 3, 4, 5)", reason)
	}
	_, err = i.do(ctx, call{op: "revoke " + id, method: http.MethodPost, path: "ssl/v1/revoke/" + id, idempotent: true,
		body: map[string]any{"reasonCode": int(reason), "reason": "certfleet: " + text}})
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Code == -159 {
		return nil // already revoked
	}
	return err
}
