package scm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/certfleet/certfleet/core/issuer"
)

// The REST Enrollment API of an SSL enrollment endpoint, as Sectigo's OpenAPI document "REST
// Enrollment API 25.11" describes it (ENR, itential/assets Sectigo/OpenAPIs/
// sectigo_certificate_manager-25.11.json) and scm-rest-enrollment.readme.io (ENRDOC):
//
//	POST   /api/v1/certificates          {csr, subjAltNames[], customFields{}, comments, externalRequester} → {certId}
//	GET    /api/v1/certificates/{certId} → 200 PEM; 404 with code -103/-109 while pending
//	GET    /api/v1/certificates/{certId}/status → {status, dcvInfo}
//	DELETE /api/v1/certificates/{certId} {message, reasonCode} → 200 (revoke)
//
// The REST account fixes organization, profile and term. Every call goes through the same request
// path as the Admin API (do): token cache, retries of idempotent calls only, ErrOutcomeUnknown for
// an enroll that may have been written.

// lookupPrefix marks an order reference found through the Admin API lookup account (an SSL id,
// not a certId): it is collected and revoked there.
const lookupPrefix = "admin-ssl-id:"

// enrollmentOptionsError refuses the options a REST account fixes itself.
func enrollmentOptionsError(o options) error {
	var errs []error
	for name, set := range map[string]bool{"cert_type": o.certTypeID != 0 || o.certTypeName != "", "term": o.term != 0, "org_id": o.orgID != 0} {
		if set {
			errs = append(errs, fmt.Errorf("issuer option %s does not apply to an SCM REST Enrollment account, which fixes organization, profile and term: remove it (or choose them in SCM under Enrollment → REST)", name))
		}
	}
	sort.Slice(errs, func(a, b int) bool { return errs[a].Error() < errs[b].Error() })
	return errors.Join(errs...)
}

// singleLineCSR turns a PEM CSR into ENR's "single line Base64 PKCS#10" (no BEGIN/END lines).
func singleLineCSR(csrPEM string) (string, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return "", errors.New("the CSR is not a PEM certificate request")
	}
	return base64.StdEncoding.EncodeToString(block.Bytes), nil
}

type restEnrollBody struct {
	CSR               string            `json:"csr"`
	SubjAltNames      []string          `json:"subjAltNames,omitempty"`
	CustomFields      map[string]string `json:"customFields,omitempty"`
	Comments          string            `json:"comments,omitempty"`
	ExternalRequester string            `json:"externalRequester,omitempty"`
}

func (i *Issuer) submitEnrollment(ctx context.Context, req issuer.Request) (issuer.OrderRef, error) {
	o, err := parseOptions(req.Options)
	if err == nil {
		err = enrollmentOptionsError(o)
	}
	if err != nil {
		return "", issuer.NotPlaced(fmt.Errorf("SCM issuer %s: certificate %s: %w", i.cfg.Name, req.CertificateName, err))
	}
	csr, err := singleLineCSR(req.CSRPEM)
	if err != nil {
		return "", issuer.NotPlaced(fmt.Errorf("SCM issuer %s: certificate %s: %w", i.cfg.Name, req.CertificateName, err))
	}
	body := restEnrollBody{CSR: csr, SubjAltNames: extraNames(req), CustomFields: o.customFields, Comments: comments(o, req),
		ExternalRequester: o.externalRequester}
	resp, err := i.do(ctx, call{op: "enroll " + req.CertificateName, method: http.MethodPost, path: "api/v1/certificates", body: body})
	if err != nil {
		return "", err
	}
	var out struct {
		CertID json.RawMessage `json:"certId"`
	}
	var id string
	if json.Unmarshal(resp.body, &out) == nil {
		// ENR types certId as a string; a number is taken as well.
		if json.Unmarshal(out.CertID, &id) != nil {
			var n json.Number
			if json.Unmarshal(out.CertID, &n) == nil {
				id = n.String()
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("SCM enroll %s: unreadable answer: %w", req.CertificateName, issuer.ErrOutcomeUnknown)
	}
	i.log.Info("SCM order placed", "issuer", i.cfg.Name, "certificate", req.CertificateName, "cert_id", id)
	ref := issuer.OrderRef(id)
	i.placed(ref)
	return ref, nil
}

// certPath is an order's path; the id is escaped, it is an opaque string.
func certPath(ref issuer.OrderRef, suffix string) (string, error) {
	if ref == "" {
		return "", errors.New("SCM order reference is empty")
	}
	return "api/v1/certificates/" + url.PathEscape(string(ref)) + suffix, nil
}

func (i *Issuer) collectEnrollment(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	path, err := certPath(ref, "")
	if err != nil {
		return issuer.Result{}, err
	}
	resp, err := i.do(ctx, call{op: "download " + string(ref), method: http.MethodGet, path: path, idempotent: true,
		accept: "application/x-pem-file"})
	return i.collected(ref, string(ref), resp, err, func() (string, error) { return i.enrollmentStatus(ctx, ref) })
}

// enrollmentStatus reads GET /api/v1/certificates/{certId}/status.
func (i *Issuer) enrollmentStatus(ctx context.Context, ref issuer.OrderRef) (string, error) {
	path, err := certPath(ref, "/status")
	if err != nil {
		return "", err
	}
	var out struct {
		Status string `json:"status"`
	}
	err = i.getJSON(ctx, "status of "+string(ref), path, nil, &out)
	return out.Status, err
}

func (i *Issuer) revokeEnrollment(ctx context.Context, ref issuer.OrderRef, reason issuer.RevokeReason) error {
	path, err := certPath(ref, "")
	if err != nil {
		return err
	}
	text, err := reasonText(reason)
	if err != nil {
		return err
	}
	_, err = i.do(ctx, call{op: "revoke " + string(ref), method: http.MethodDelete, path: path, idempotent: true,
		body: map[string]any{"message": "certfleet: " + text, "reasonCode": int(reason)}})
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.HasCode && apiErr.Code == -159 {
		return nil // already revoked
	}
	return err
}

// findEnrollment: the REST Enrollment API has no operation that lists or searches orders (ENR has
// seven: enroll, download, status, dcv-recheck, renew, replace, revoke), so an order whose answer
// was lost can only be found through the Admin API of the same tenant, where every order shows
// with its comments (DOC25 "List SSL certificates", "SSL certificate details"). Without a lookup
// account certfleet cannot tell whether the order exists, and it never places a second one blindly.
func (i *Issuer) findEnrollment(ctx context.Context, req issuer.Request) (issuer.OrderRef, bool, error) {
	if i.lookup == nil {
		return "", false, fmt.Errorf("SCM issuer %s: the answer to the order for %s was lost and the REST Enrollment API cannot list orders: "+
			"add scm.lookup with Admin API credentials so certfleet can find it (it looks for the comment %s%s)",
			i.cfg.Name, req.CommonName, requestMarker, req.RequestID)
	}
	ref, found, err := i.lookup.Find(ctx, req)
	if err != nil || !found {
		return "", found, err
	}
	return issuer.OrderRef(lookupPrefix + string(ref)), true, nil
}
