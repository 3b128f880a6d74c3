package scmsim

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

type apiError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, format string, args ...any) {
	writeJSON(w, status, apiError{Code: code, Description: fmt.Sprintf(format, args...)})
}

// Handler is the Admin API host's handler (token endpoint included).
func (s *Server) Handler() http.Handler { return s.handler(adminAPI) }

// handler serves one host. Each host knows only its own paths: the Admin and legacy hosts serve
// /api/ssl/v1/* (DOC25, ADMIN), the enrollment host /api/v1/certificates* (ENR paths); anything
// else is a 404, as a host that does not serve an API answers.
func (s *Server) handler(sf surface) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.calls[pattern]++
			s.mu.Unlock()
			h(w, r)
		})
	}
	switch sf {
	case adminAPI, legacyAPI:
		if sf == adminAPI {
			route("POST /auth/realms/apiclients/protocol/openid-connect/token", s.token)
		}
		auth := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(sf, h) }
		route("GET /api/ssl/v1/types", auth(s.types))
		route("GET /api/ssl/v1/customFields", auth(s.customFields))
		route("POST /api/ssl/v1/enroll", auth(s.enroll))
		route("GET /api/ssl/v1/collect/{id}", auth(s.collect))
		route("GET /api/ssl/v1/collect/{id}/{format}", auth(s.collect))
		route("GET /api/ssl/v1/{id}", auth(s.details))
		route("GET /api/ssl/v1", auth(s.list))
		route("POST /api/ssl/v1/revoke/{id}", auth(s.revoke))
		route("POST /api/ssl/v1/renewById/{id}", auth(s.renewByID))
		route("POST /api/ssl/v1/replace/{id}", auth(s.replace))
	case enrollAPI:
		auth := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(sf, h) }
		route("POST /api/v1/certificates", auth(s.restEnroll))
		route("GET /api/v1/certificates/{certId}", auth(s.restDownload))
		route("GET /api/v1/certificates/{certId}/status", auth(s.restStatus))
		route("DELETE /api/v1/certificates/{certId}", auth(s.restRevoke))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		latency := s.latency
		failing := s.failNext > 0
		status, retryAfter := s.failStatus, s.retryAfter
		if failing {
			s.failNext--
		}
		proxyPage, proxyStatus := s.proxyPages > 0, s.proxyStatus
		if proxyPage {
			s.proxyPages--
		}
		s.mu.Unlock()
		if proxyPage {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(proxyStatus)
			_, _ = fmt.Fprintf(w, "<html><head><title>%d</title></head><body><h1>%s</h1></body></html>", proxyStatus, http.StatusText(proxyStatus))
			return
		}
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if failing {
			if retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			}
			fail(w, status, -2, "simulated failure")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// token is the Keycloak client-credentials grant (ENRDOC "Authentication": form fields client_id,
// client_secret, grant_type=client_credentials; answer access_token and expires_in). Admin API
// clients and REST Enrollment accounts use the same token server; a token says whose it is.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	var enroll bool
	if want, ok := s.cfg.Clients[id]; ok && want == secret {
		enroll = false
	} else if acct, ok := s.cfg.EnrollAccounts[id]; ok && acct.Secret == secret {
		enroll = true
	} else {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
		return
	}
	tok := randomID(24)
	s.mu.Lock()
	s.tokens[tok] = token{expires: time.Now().Add(s.cfg.TokenLifetime), enroll: enroll, client: id}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.cfg.TokenLifetime.Seconds()), "scope": "profile"})
}

// enrollAccount returns the REST account whose token the request carries.
func (s *Server) enrollAccount(r *http.Request) EnrollAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.EnrollAccounts[s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")].client]
}

// auth lets in what the host accepts: the Admin host a live Admin client's bearer token (and
// header login only when AdminAcceptsHeaderLogin), the legacy host only header login, the
// enrollment host only a REST account's bearer token. Refusals are 401 {"code":-16,"description":
// "Unknown user"} (DOC25 "Errors"); a bearer refusal names the token server in WWW-Authenticate
// authorization_uri (ENRDOC "Authentication"; the header's exact syntax is UNCONFIRMED).
func (s *Server) auth(sf surface, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") && sf != legacyAPI {
			s.mu.Lock()
			tok, ok := s.tokens[strings.TrimPrefix(h, "Bearer ")]
			s.mu.Unlock()
			if !ok || time.Now().After(tok.expires) || tok.enroll != (sf == enrollAPI) {
				uri := s.cfg.AuthorizationURI
				if uri == "" {
					uri = s.TokenURL()
				}
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s"`, uri))
				fail(w, http.StatusUnauthorized, -16, "Unknown user")
				return
			}
			next(w, r)
			return
		}
		if sf == legacyAPI || (sf == adminAPI && s.cfg.AdminAcceptsHeaderLogin) {
			login, password, customer := r.Header.Get("login"), r.Header.Get("password"), r.Header.Get("customerUri")
			for _, u := range s.cfg.Users {
				if u.Login == login && u.Password == password && u.CustomerURI == customer {
					next(w, r)
					return
				}
			}
		}
		if sf != legacyAPI {
			uri := s.cfg.AuthorizationURI
			if uri == "" {
				uri = s.TokenURL()
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s"`, uri))
		}
		fail(w, http.StatusUnauthorized, -16, "Unknown user")
	}
}

// types lists the profiles, of one organization when organizationId is given (DOC25 "List SSL
// types": GET /ssl/v1/types?organizationId=N).
func (s *Server) types(w http.ResponseWriter, r *http.Request) {
	out := []Profile{}
	org := r.URL.Query().Get("organizationId")
	for _, p := range s.cfg.Profiles {
		if org == "" || len(p.OrgIDs) == 0 || slices.Contains(p.OrgIDs, atoi(org)) {
			out = append(out, p)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func atoi(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

func (s *Server) customFields(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.CustomFields)
}

type enrollRequest struct {
	OrgID             int    `json:"orgId"`
	CSR               string `json:"csr"`
	SubjAltNames      string `json:"subjAltNames"`
	CertType          int    `json:"certType"`
	Term              int    `json:"term"`
	Comments          string `json:"comments"`
	ExternalRequester string `json:"externalRequester"`
	CustomFields      []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"customFields"`
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return csr, csr.CheckSignature()
}

func keyTypeOf(csr *x509.CertificateRequest) (string, string) {
	switch k := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA", strconv.Itoa(k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC", k.Curve.Params().Name
	}
	return "", ""
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req enrollRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, -1, "Malformed request: %v", err)
		return
	}
	if !slices.Contains(s.cfg.OrgIDs, req.OrgID) {
		fail(w, http.StatusBadRequest, -639, "Organization id is invalid")
		return
	}
	if req.CSR == "" {
		fail(w, http.StatusBadRequest, -7, "CSR is required but missing")
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil {
		fail(w, http.StatusBadRequest, -9, "CSR is not Base-64 encoded")
		return
	}
	csr, err := parseCSR(block.Bytes)
	if err != nil {
		fail(w, http.StatusBadRequest, -138, "Invalid CSR")
		return
	}
	// Length limits: comments ≤1024, externalRequester ≤512 (DOC25 "Request SSL certificate",
	// ADMIN EnrollRequest); the code SCM gives for a too long field is UNCONFIRMED.
	if len(req.Comments) > 1024 || len(req.ExternalRequester) > 512 {
		fail(w, http.StatusBadRequest, -1, "comments must be at most 1024 and externalRequester at most 512 characters")
		return
	}
	idx := slices.IndexFunc(s.cfg.Profiles, func(p Profile) bool {
		return p.ID == req.CertType && (len(p.OrgIDs) == 0 || slices.Contains(p.OrgIDs, req.OrgID))
	})
	if idx < 0 {
		fail(w, http.StatusBadRequest, -39, "Invalid certificate type id")
		return
	}
	profile := s.cfg.Profiles[idx]
	if req.Term == 0 {
		// No term: SCM uses the profile's longest (reference §11 "Terms").
		req.Term = slices.Max(profile.Terms)
	}
	if !slices.Contains(profile.Terms, req.Term) {
		fail(w, http.StatusBadRequest, -36, "Invalid term specified")
		return
	}
	alg, size := keyTypeOf(csr)
	if !slices.Contains(profile.KeyTypes[alg], size) {
		fail(w, http.StatusBadRequest, -13, "Unsupported key algorithm or size: %s %s", alg, size)
		return
	}
	fields := map[string]string{}
	for _, f := range req.CustomFields {
		fields[f.Name] = f.Value
	}
	for _, f := range s.cfg.CustomFields {
		if f.Mandatory && fields[f.Name] == "" {
			fail(w, http.StatusBadRequest, -62, "Missing mandatory custom field!")
			return
		}
	}
	var sans []string
	for _, n := range strings.Split(req.SubjAltNames, ",") {
		if n = strings.TrimSpace(n); n != "" {
			sans = append(sans, n)
		}
	}
	s.mu.Lock()
	o := s.addOrderLocked(&Order{OrgID: req.OrgID, CertType: req.CertType, Term: req.Term,
		CommonName: csr.Subject.CommonName, SANs: sans, Comments: req.Comments, ExternalRequester: req.ExternalRequester,
		CustomFields: fields, CSR: csr})
	lose := s.loseEnroll > 0
	if lose {
		s.loseEnroll--
	}
	s.mu.Unlock()
	if lose {
		cutConnection(w)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sslId": o.ID, "renewId": o.RenewID})
}

// cutConnection drops the connection without an answer: the order exists, but the client never
// hears of it.
func cutConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			panic(http.ErrAbortHandler)
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) order(w http.ResponseWriter, r *http.Request) (*Order, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err == nil {
		if o, ok := s.orders[id]; ok {
			return o, true
		}
	}
	fail(w, http.StatusBadRequest, -124, "Wrong SSL certificate id")
	return nil, false
}

// issue makes the order's certificate from its CSR.
func (s *Server) issue(o *Order) error {
	validity := time.Duration(o.Term) * 24 * time.Hour
	if s.cfg.Validity > 0 {
		validity = s.cfg.Validity
	}
	var dns []string
	for _, n := range o.SANs {
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	for _, n := range o.CSR.DNSNames {
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	cert, err := s.ca.Sign(o.CSR.PublicKey, pkix.Name{CommonName: o.CSR.Subject.CommonName, Organization: o.CSR.Subject.Organization,
		Country: o.CSR.Subject.Country}, dns, o.CSR, validity)
	if err != nil {
		return err
	}
	o.Cert, o.Status = cert, "Issued"
	return nil
}

func (s *Server) collect(w http.ResponseWriter, r *http.Request) {
	format := r.PathValue("format")
	if format == "" {
		format = r.URL.Query().Get("format")
	}
	if format == "" {
		format = "base64"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.order(w, r)
	if !ok {
		return
	}
	status := s.cfg.PendingHTTPStatus
	if status == 0 {
		status = http.StatusBadRequest
	}
	if !s.collectable(w, o, status, s.cfg.PendingCode) {
		return
	}
	leaf, inter, root := sdkPEM(o.Cert), sdkPEM(s.ca.Intermediate), sdkPEM(s.ca.Root)
	var body string
	switch format {
	case "base64", "bin":
		// PKCS#7: base64 (the documented default) as PEM, bin as DER (DOC25 "Collect SSL
		// certificate" formats; reference §11).
		der, err := pkcs7.DegenerateCertificate(slices.Concat(s.ca.Root.Raw, s.ca.Intermediate.Raw, o.Cert.Raw))
		if err != nil {
			fail(w, http.StatusInternalServerError, -2, "Internal error: %v", err)
			return
		}
		body = string(pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: der}))
		if format == "bin" {
			body = string(der)
		}
	case "x509", "pemia":
		body = leaf + inter + root
	case "pem", "x509R":
		// Root first, as one client reports Sectigo does (UNCONFIRMED): clients must reorder.
		body = root + inter + leaf
	case "x509CO", "pemco":
		body = leaf
	case "x509IO":
		body = root + inter
	case "x509IOR":
		body = inter + root
	default:
		fail(w, http.StatusBadRequest, -1450, "Unsupported certificate format specified")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream;charset=UTF-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%d.pem"`, o.ID))
	_, _ = w.Write([]byte(body))
}

// pendingDescriptions are the texts of the codes sources report for an order not yet collectable
// (reference §3.6: osg-pki-tools/hm-edu code 0, python cert_manager -183, DOC25 table -1400,
// -103, -109).
var pendingDescriptions = map[int]string{0: "Being processed by Sectigo", -183: "Certificate is not collectable.",
	-1400: "The request is being processed by Sectigo.", -103: "Certificate has not been collected yet.",
	-109: "Certificate is not available now, please try again later."}

func (s *Server) detailsOf(o *Order) map[string]any {
	d := map[string]any{
		"id": o.ID, "sslId": o.ID, "commonName": o.CommonName, "orgId": o.OrgID, "status": o.Status,
		"certType": map[string]any{"id": o.CertType}, "term": o.Term, "comments": o.Comments,
		"externalRequester": o.ExternalRequester, "subjectAlternativeNames": o.SANs,
		"requested": o.Requested.Format("01/02/2006"), "requestedVia": o.RequestedVia,
	}
	if o.Cert != nil {
		d["expires"] = o.Cert.NotAfter.Format("01/02/2006")
		d["serialNumber"] = serialText(o.Cert)
	}
	return d
}

// serialText is a serial number as SCM writes it: colon-separated hex (reference §3.4).
func serialText(c *x509.Certificate) string {
	serial := strings.ToUpper(c.SerialNumber.Text(16))
	var parts []string
	for i := 0; i < len(serial); i += 2 {
		parts = append(parts, serial[i:min(i+2, len(serial))])
	}
	return strings.Join(parts, ":")
}

func (s *Server) details(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.order(w, r); ok {
		writeJSON(w, http.StatusOK, s.detailsOf(o))
	}
}

// list is GET /ssl/v1 (DOC25 "List SSL certificates"; ADMIN get-ssl-certificates-list_1): the
// orders matching the filters, from position, at most size of them, each as {sslId, commonName,
// subjectAlternativeNames, serialNumber} (DOC25 "Response fields"; ADMIN SSLIdentity), with
// X-Total-Count, the number matching the filters (DOC25 "Response headers"). The order of the
// entries is not documented (UNCONFIRMED): oldest first here.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// size and position are integers of minimum 0, size of maximum 200 (ADMIN). What SCM does
	// with a size over 200 is UNCONFIRMED: refused with 400 (the OpenAPI bound enforced), or
	// answered with 200 entries when ListClampsSize is set. Without size: 200 here (UNCONFIRMED;
	// fgouteroux/sectigo-client always sends 200).
	size, position := listMaxSize, 0
	for _, p := range []struct {
		name string
		dst  *int
	}{{"size", &size}, {"position", &position}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				fail(w, http.StatusBadRequest, -1, "%s must be a whole number, 0 or more", p.name)
				return
			}
			*p.dst = n
		}
	}
	if size > listMaxSize {
		if !s.cfg.ListClampsSize {
			fail(w, http.StatusBadRequest, -1, "size must be at most %d", listMaxSize)
			return
		}
		size = listMaxSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []map[string]any
	for id := 1000; id < s.nextID; id++ {
		o := s.orders[id]
		// Filters of GET /ssl/v1 (DOC25 "List SSL certificates"; reference §3.5).
		if cn := q.Get("commonName"); cn != "" && !strings.EqualFold(cn, o.CommonName) {
			continue
		}
		if v := q.Get("status"); v != "" && !strings.EqualFold(v, o.Status) {
			continue
		}
		if v := q.Get("sslTypeId"); v != "" && atoi(v) != o.CertType {
			continue
		}
		if v := q.Get("orgId"); v != "" && atoi(v) != o.OrgID {
			continue
		}
		if v := q.Get("externalRequester"); v != "" && !strings.EqualFold(v, o.ExternalRequester) {
			continue
		}
		if v := q.Get("requestedVia"); v != "" && !strings.EqualFold(v, o.RequestedVia) {
			continue
		}
		entry := map[string]any{"sslId": o.ID, "commonName": o.CommonName, "subjectAlternativeNames": o.SANs}
		if o.Cert != nil {
			entry["serialNumber"] = serialText(o.Cert)
		}
		all = append(all, entry)
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(all)))
	page := []map[string]any{}
	if position < len(all) {
		page = all[position:min(position+size, len(all))]
	}
	writeJSON(w, http.StatusOK, page)
}

// listMaxSize is the largest size GET /ssl/v1 takes (ADMIN: maximum 200).
const listMaxSize = 200

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ReasonCode json.RawMessage `json:"reasonCode"`
		Reason     string          `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Reason == "" {
		fail(w, http.StatusBadRequest, -7, "reason is required but missing")
		return
	}
	if len(req.Reason) > 512 { // reason 1..512 (DOC25 "Revoke SSL certificate"); the code is UNCONFIRMED
		fail(w, http.StatusBadRequest, -1, "reason must be at most 512 characters")
		return
	}
	// reasonCode is a number in one document and a string in another: accept both.
	code, err := strconv.Atoi(strings.Trim(string(req.ReasonCode), `"`))
	if len(req.ReasonCode) > 0 && (err != nil || !slices.Contains([]int{0, 1, 3, 4, 5}, code)) {
		fail(w, http.StatusBadRequest, -7, "reasonCode is invalid")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.order(w, r)
	if !ok {
		return
	}
	s.revokeOrder(w, o, code, "", http.StatusNoContent)
}

// revokeOrder answers a revocation of o the same way in both APIs but for the success status: an
// order already revoked -159, one not issued -102. Must hold s.mu.
func (s *Server) revokeOrder(w http.ResponseWriter, o *Order, code int, message string, okStatus int) {
	switch o.Status {
	case "Revoked":
		fail(w, http.StatusBadRequest, -159, "Your certificate already revoked")
	case "Issued":
		o.Status, o.RevokeReason, o.RevokeMessage = "Revoked", code, message
		w.WriteHeader(okStatus)
	default:
		fail(w, http.StatusBadRequest, -102, "Only issued certificates could be revoked.")
	}
}

func (s *Server) renewByID(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.order(w, r)
	if !ok {
		return
	}
	if o.Status != "Issued" {
		fail(w, http.StatusBadRequest, -130, "SSL state is not 'ISSUED'")
		return
	}
	n := *o
	n.ID, n.RenewID, n.Status, n.Cert, n.Collects, n.Requested = s.nextID, randomID(10), "Requested", nil, 0, time.Now()
	s.orders[n.ID] = &n
	s.nextID++
	writeJSON(w, http.StatusOK, map[string]any{"sslId": n.ID})
}

func (s *Server) replace(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CSR    string `json:"csr"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.CSR == "" || req.Reason == "" {
		fail(w, http.StatusBadRequest, -7, "csr and reason are required")
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil {
		fail(w, http.StatusBadRequest, -9, "CSR is not Base-64 encoded")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		fail(w, http.StatusBadRequest, -138, "Invalid CSR")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.order(w, r)
	if !ok {
		return
	}
	o.CSR, o.Cert, o.Status, o.Collects = csr, nil, "Requested", 0
	w.WriteHeader(http.StatusNoContent)
}

// collectable answers a download of an order that cannot be downloaded (revoked -110, declined
// -183, pending with the API's own HTTP status and code) and reports whether it can be. A
// pending order is issued once its configured pending collects are used up. Must hold s.mu.
func (s *Server) collectable(w http.ResponseWriter, o *Order, pendingStatus, pendingCode int) bool {
	switch o.Status {
	case "Revoked":
		fail(w, http.StatusBadRequest, -110, "Certificate has been revoked and cannot be downloaded.")
		return false
	case "Declined":
		fail(w, http.StatusBadRequest, -183, "Certificate is not collectable.")
		return false
	case "Requested":
		o.Collects++
		if s.pendingForever || o.Collects <= s.cfg.PendingCollects {
			fail(w, pendingStatus, pendingCode, "%s", pendingDescriptions[pendingCode])
			return false
		}
		if err := s.issue(o); err != nil {
			fail(w, http.StatusInternalServerError, -2, "Internal error: %v", err)
			return false
		}
	}
	return true
}
