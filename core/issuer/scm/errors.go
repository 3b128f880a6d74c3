package scm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an answer of SCM's API that is not a success: the HTTP status and SCM's own code and
// description, with a message a user can act on.
type Error struct {
	HTTPStatus int
	Code       int
	// HasCode is true when the answer was SCM's error JSON with a code (a proxy's HTML page or a
	// body without code is not).
	HasCode     bool
	Description string
	// Op is what was being done ("enroll", "collect 1234").
	Op string
	// Hint is what to do about it, when known.
	Hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SCM %s: ", e.Op)
	if e.Code != 0 || e.Description != "" {
		fmt.Fprintf(&b, "error %d: %s", e.Code, e.Description)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	}
	if e.HTTPStatus != 0 && (e.Code != 0 || e.Description != "") {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Retryable: rate limits and server errors may pass; SCM's business errors will not.
func (e *Error) Retryable() bool {
	return e.HTTPStatus == http.StatusTooManyRequests || (e.HTTPStatus >= 500 && e.HTTPStatus != http.StatusNotImplemented) ||
		e.Code == -140 || e.Code == -195 // CSR decoding temporarily unavailable, CA unavailable
}

// hints for SCM codes a configuration can fix.
var hints = map[int]string{
	-16:   "check the issuer's login, password and customer_uri (or client_id and client_secret)",
	-970:  "check the issuer's login and password",
	-3:    "the API account lacks the permission; ask the SCM administrator",
	-25:   "the API account lacks the permission; ask the SCM administrator",
	-9:    "the device returned a CSR that is not PEM",
	-10:   "the CSR could not be decoded",
	-138:  "SCM rejected the CSR; check the key type and names",
	-13:   "the profile does not allow this key type or size; change the certificate's key or issuer_options.cert_type",
	-170:  "the profile does not allow ECC keys; use an RSA key or another cert_type",
	-39:   "issuer_options.cert_type is not a profile of this account; list them with GET /ssl/v1/types",
	-111:  "issuer_options.cert_type is not a profile of this account",
	-62:   "a mandatory custom field is missing; set it under issuer_options.custom_fields",
	-639:  "org_id is not an organization of this account",
	-1023: "org_id is not an organization of this account",
	-737:  "the domains are not validated in SCM; complete domain control validation",
	-1137: "the domains are not validated in SCM; complete domain control validation",
	-107:  "domain control validation is incomplete or expired in SCM",
}

// pendingCodes are the answers collect gives while an order is still being processed (reference
// §3.6 and §11: code 0 "Being processed by Sectigo" from osg-pki-tools and hm-edu, -183 from the
// python cert_manager client, -1400/-103/-109 from DOC25's table, -103/-109 from ENR).
var pendingCodes = map[int]bool{0: true, -183: true, -1400: true, -103: true, -109: true}

// isPending reports whether an error answer really says "not issued yet": SCM's error JSON with a
// pending code (code 0 only with "being processed" in its text, as 0 is also what a body without
// a code would read as), HTTP 400 or 404.
func isPending(e *Error) bool {
	if !e.HasCode || !pendingCodes[e.Code] || (e.HTTPStatus != http.StatusBadRequest && e.HTTPStatus != http.StatusNotFound) {
		return false
	}
	return e.Code != 0 || strings.Contains(strings.ToLower(e.Description), "being processed")
}

// errNotJSON marks an error body SCM did not format as its error JSON.
var errNotJSON = errors.New("not an SCM error document")
