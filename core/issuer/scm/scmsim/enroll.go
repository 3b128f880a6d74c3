package scmsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The REST Enrollment API of an SSL enrollment endpoint, from the vendor's OpenAPI document
// "REST Enrollment API 25.11" (ENR: itential/assets Sectigo/OpenAPIs/sectigo_certificate_manager-25.11.json)
// and scm-rest-enrollment.readme.io (ENRDOC). Renew, replace and dcv-recheck are not simulated:
// certfleet does not use them (see docs/reference-notes/scm.md).

// restEnrollRequest is ENR SslEnrollRequest: csr required; subjAltNames an array; customFields an
// object of name → value; comments ≤1024; externalRequester ≤512.
type restEnrollRequest struct {
	CSR               string            `json:"csr"`
	SubjAltNames      []string          `json:"subjAltNames"`
	CustomFields      map[string]string `json:"customFields"`
	Comments          string            `json:"comments"`
	ExternalRequester string            `json:"externalRequester"`
}

func (s *Server) restEnroll(w http.ResponseWriter, r *http.Request) {
	acct := s.enrollAccount(r)
	var req restEnrollRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		// A string where ENR has an array (subjAltNames) or an object (customFields) lands here.
		fail(w, http.StatusBadRequest, -1, "Malformed request: %v", err)
		return
	}
	if req.CSR == "" {
		fail(w, http.StatusBadRequest, -7, "csr is required but missing")
		return
	}
	if len(req.Comments) > 1024 || len(req.ExternalRequester) > 512 {
		// ENR maxLength; the code SCM gives is UNCONFIRMED.
		fail(w, http.StatusBadRequest, -1, "comments must be at most 1024 and externalRequester at most 512 characters")
		return
	}
	text := req.CSR
	if strings.Contains(text, "-----BEGIN") {
		// ENR: "single line Base64 PKCS#10"; ENRDOC: no BEGIN/END lines. UNCONFIRMED refusal.
		if !s.cfg.EnrollAcceptsPEMCSR {
			fail(w, http.StatusBadRequest, -9, "CSR is not Base-64 encoded")
			return
		}
		text = strings.NewReplacer("-----BEGIN CERTIFICATE REQUEST-----", "", "-----END CERTIFICATE REQUEST-----", "", "\n", "", "\r", "").Replace(text)
	}
	der, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		fail(w, http.StatusBadRequest, -9, "CSR is not Base-64 encoded")
		return
	}
	csr, err := parseCSR(der)
	if err != nil {
		fail(w, http.StatusBadRequest, -138, "Invalid CSR")
		return
	}
	idx := slices.IndexFunc(s.cfg.Profiles, func(p Profile) bool { return p.ID == acct.ProfileID })
	if idx < 0 {
		fail(w, http.StatusBadRequest, -111, "No SSL profile found by id %d", acct.ProfileID)
		return
	}
	profile := s.cfg.Profiles[idx]
	term := acct.Term
	if term == 0 {
		term = slices.Max(profile.Terms)
	}
	alg, size := keyTypeOf(csr)
	if !slices.Contains(profile.KeyTypes[alg], size) {
		fail(w, http.StatusBadRequest, -13, "Unsupported key algorithm or size: %s %s", alg, size)
		return
	}
	for _, f := range s.cfg.CustomFields {
		if f.Mandatory && req.CustomFields[f.Name] == "" {
			fail(w, http.StatusBadRequest, -62, "Missing mandatory custom field!")
			return
		}
	}
	s.mu.Lock()
	o := &Order{ID: s.nextID, CertID: randomID(12), OrgID: acct.OrgID, CertType: profile.ID, Term: term,
		CommonName: csr.Subject.CommonName, SANs: req.SubjAltNames, Comments: req.Comments, ExternalRequester: req.ExternalRequester,
		CustomFields: req.CustomFields, Status: "Requested", Requested: time.Now(), RequestedVia: "REST API", CSR: csr}
	s.orders[o.ID] = o
	s.nextID++
	lose := s.loseEnroll > 0
	if lose {
		s.loseEnroll--
	}
	s.mu.Unlock()
	if lose {
		cutConnection(w)
	}
	// ENR CertIDResponse: {"certId": string}.
	writeJSON(w, http.StatusOK, map[string]string{"certId": o.CertID})
}

// restOrder finds the order by certId; an unknown id is ENR's "404 Certificate Not Found" (the
// code, -5101 "Certificate not found" in DOC25's table, is UNCONFIRMED for this API).
func (s *Server) restOrder(w http.ResponseWriter, r *http.Request) (*Order, bool) {
	id := r.PathValue("certId")
	for _, o := range s.orders {
		if o.CertID != "" && o.CertID == id {
			return o, true
		}
	}
	fail(w, http.StatusNotFound, -5101, "Certificate not found")
	return nil, false
}

// restDownload: ENR "Download certificate": 200 application/x-pem-file; "a 404 response is
// possible when issuance is pending. The response's 'code' field will contain -103 or -109".
func (s *Server) restDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.restOrder(w, r)
	if !ok {
		return
	}
	code := s.cfg.EnrollPendingCode
	if code == 0 {
		code = -103
	}
	// What a declined order's download answers is UNCONFIRMED here; /status tells it apart.
	if !s.collectable(w, o, http.StatusNotFound, code) {
		return
	}
	// The order of the PEM bundle is not documented (UNCONFIRMED): root first, so clients reorder.
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = fmt.Fprint(w, sdkPEM(s.ca.Root)+sdkPEM(s.ca.Intermediate)+sdkPEM(o.Cert))
}

// restStatus: ENR "Check certificate status": {"status": string, "dcvInfo": object}. The status
// words are not listed in ENR; SCM's SSL statuses (DOC25) are used (UNCONFIRMED).
func (s *Server) restStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.restOrder(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"status": o.Status, "dcvInfo": map[string]any{}})
	}
}

// restRevoke: ENR "Revoke certificate": DELETE with {"message" (1..512, required), "reasonCode"
// (0, 1, 3, 4, 5)} → 200. Already revoked → -159, not issued → -102 (DOC25 code table).
func (s *Server) restRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message    string `json:"message"`
		ReasonCode *int   `json:"reasonCode"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Message == "" || len(req.Message) > 512 {
		fail(w, http.StatusBadRequest, -7, "message is required (1 to 512 characters)")
		return
	}
	code := 0
	if req.ReasonCode != nil {
		code = *req.ReasonCode
	}
	if !slices.Contains([]int{0, 1, 3, 4, 5}, code) {
		fail(w, http.StatusBadRequest, -7, "reasonCode is invalid")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.restOrder(w, r)
	if !ok {
		return
	}
	s.revokeOrder(w, o, code, req.Message, http.StatusOK)
}
