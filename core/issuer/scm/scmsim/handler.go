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

// Handler is the simulator's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /auth/realms/apiclients/protocol/openid-connect/token", s.token)
	mux.HandleFunc("GET /api/ssl/v1/types", s.auth(s.types))
	mux.HandleFunc("GET /api/ssl/v1/customFields", s.auth(s.customFields))
	mux.HandleFunc("POST /api/ssl/v1/enroll", s.auth(s.enroll))
	mux.HandleFunc("GET /api/ssl/v1/collect/{id}", s.auth(s.collect))
	mux.HandleFunc("GET /api/ssl/v1/collect/{id}/{format}", s.auth(s.collect))
	mux.HandleFunc("GET /api/ssl/v1/{id}", s.auth(s.details))
	mux.HandleFunc("GET /api/ssl/v1", s.auth(s.list))
	mux.HandleFunc("POST /api/ssl/v1/revoke/{id}", s.auth(s.revoke))
	mux.HandleFunc("POST /api/ssl/v1/renewById/{id}", s.auth(s.renewByID))
	mux.HandleFunc("POST /api/ssl/v1/replace/{id}", s.auth(s.replace))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		latency := s.latency
		failing := s.failNext > 0
		status, retryAfter := s.failStatus, s.retryAfter
		if failing {
			s.failNext--
		}
		s.mu.Unlock()
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

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	if want, ok := s.cfg.Clients[id]; !ok || want != secret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
		return
	}
	tok := randomID(24)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.cfg.TokenLifetime)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.cfg.TokenLifetime.Seconds()), "scope": "profile"})
}

// auth accepts a live bearer token or the legacy login headers.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			s.mu.Lock()
			exp, ok := s.tokens[strings.TrimPrefix(h, "Bearer ")]
			s.mu.Unlock()
			if !ok || time.Now().After(exp) {
				// The header's syntax is assumed (UNCONFIRMED in the reference).
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s"`, s.TokenURL()))
				fail(w, http.StatusUnauthorized, -16, "Unknown user")
				return
			}
			next(w, r)
			return
		}
		login, password, customer := r.Header.Get("login"), r.Header.Get("password"), r.Header.Get("customerUri")
		for _, u := range s.cfg.Users {
			if u.Login == login && u.Password == password && u.CustomerURI == customer {
				next(w, r)
				return
			}
		}
		fail(w, http.StatusUnauthorized, -16, "Unknown user")
	}
}

func (s *Server) types(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Profiles)
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
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		fail(w, http.StatusBadRequest, -138, "Invalid CSR")
		return
	}
	idx := slices.IndexFunc(s.cfg.Profiles, func(p Profile) bool { return p.ID == req.CertType })
	if idx < 0 {
		fail(w, http.StatusBadRequest, -39, "Invalid certificate type id")
		return
	}
	profile := s.cfg.Profiles[idx]
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
	o := &Order{ID: s.nextID, RenewID: randomID(10), OrgID: req.OrgID, CertType: req.CertType, Term: req.Term,
		CommonName: csr.Subject.CommonName, SANs: sans, Comments: req.Comments, ExternalRequester: req.ExternalRequester,
		CustomFields: fields, Status: "Requested", Requested: time.Now(), CSR: csr}
	s.orders[o.ID] = o
	s.nextID++
	lose := s.loseEnroll > 0
	if lose {
		s.loseEnroll--
	}
	s.mu.Unlock()
	if lose {
		// The order exists, but its answer never reaches the client.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sslId": o.ID, "renewId": o.RenewID})
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
	switch o.Status {
	case "Revoked":
		fail(w, http.StatusBadRequest, -110, "Certificate has been revoked and cannot be downloaded.")
		return
	case "Declined":
		fail(w, http.StatusBadRequest, -183, "Certificate is not collectable.")
		return
	case "Requested":
		o.Collects++
		if s.pendingForever || o.Collects <= s.cfg.PendingCollects {
			desc := map[int]string{0: "Being processed by Sectigo", -183: "Certificate is not collectable.", -1400: "The request is being processed by Sectigo."}[s.cfg.PendingCode]
			fail(w, http.StatusBadRequest, s.cfg.PendingCode, "%s", desc)
			return
		}
		if err := s.issue(o); err != nil {
			fail(w, http.StatusInternalServerError, -2, "Internal error: %v", err)
			return
		}
	}
	leaf, inter, root := sdkPEM(o.Cert), sdkPEM(s.ca.Intermediate), sdkPEM(s.ca.Root)
	var body string
	switch format {
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

func (s *Server) detailsOf(o *Order) map[string]any {
	d := map[string]any{
		"id": o.ID, "sslId": o.ID, "commonName": o.CommonName, "orgId": o.OrgID, "status": o.Status,
		"certType": map[string]any{"id": o.CertType}, "term": o.Term, "comments": o.Comments,
		"externalRequester": o.ExternalRequester, "subjectAlternativeNames": o.SANs,
		"requested": o.Requested.Format("01/02/2006"), "requestedVia": "REST API",
	}
	if o.Cert != nil {
		d["expires"] = o.Cert.NotAfter.Format("01/02/2006")
		serial := strings.ToUpper(o.Cert.SerialNumber.Text(16))
		var parts []string
		for i := 0; i < len(serial); i += 2 {
			parts = append(parts, serial[i:min(i+2, len(serial))])
		}
		d["serialNumber"] = strings.Join(parts, ":")
	}
	return d
}

func (s *Server) details(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.order(w, r); ok {
		writeJSON(w, http.StatusOK, s.detailsOf(o))
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, position := 200, 0
	if v, err := strconv.Atoi(q.Get("size")); err == nil && v > 0 {
		size = v
	}
	if v, err := strconv.Atoi(q.Get("position")); err == nil && v >= 0 {
		position = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []map[string]any
	for id := 1000; id < s.nextID; id++ {
		o := s.orders[id]
		if cn := q.Get("commonName"); cn != "" && !strings.EqualFold(cn, o.CommonName) {
			continue
		}
		all = append(all, map[string]any{"sslId": o.ID, "commonName": o.CommonName, "subjectAlternativeNames": o.SANs})
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(all)))
	page := []map[string]any{}
	if position < len(all) {
		page = all[position:min(position+size, len(all))]
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ReasonCode json.RawMessage `json:"reasonCode"`
		Reason     string          `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Reason == "" {
		fail(w, http.StatusBadRequest, -7, "reason is required but missing")
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
	switch o.Status {
	case "Revoked":
		fail(w, http.StatusBadRequest, -159, "Your certificate already revoked")
	case "Issued":
		o.Status, o.RevokeReason = "Revoked", code
		w.WriteHeader(http.StatusNoContent)
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
