package cemsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

const base = "/xenmobile/api/v1"

// maxUpload bounds a multipart upload; a keystore is a few KiB.
const maxUpload = 1 << 20

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+base+"/authentication/login", s.login)
	mux.HandleFunc("POST "+base+"/authentication/login/cloud", s.loginCloud)
	mux.HandleFunc("POST "+base+"/authentication/logout", s.authed(s.logout))
	mux.HandleFunc("GET "+base+"/environment", s.authed(s.environment))
	mux.HandleFunc("GET "+base+"/certificates", s.authed(s.list))
	mux.HandleFunc("POST "+base+"/certificates/export", s.authed(s.export))
	mux.HandleFunc("POST "+base+"/certificates/import/keystore/{role}", s.authed(s.importKeystore))
	if s.cfg.LegacyDeletePath {
		mux.HandleFunc("DELETE "+base+"/publicapi/certificates", s.authed(s.delete))
	} else {
		mux.HandleFunc("DELETE "+base+"/certificates", s.authed(s.delete))
	}
	mux.HandleFunc("POST /sim/restart", func(w http.ResponseWriter, _ *http.Request) { s.Restart() })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := r.Method + " " + strings.TrimPrefix(r.URL.Path, base)
		s.mu.Lock()
		s.requests[call]++
		latency := s.latency
		var fault int
		if q := s.faults[call]; len(q) > 0 {
			fault, s.faults[call] = q[0], q[1:]
		}
		if fault == http.StatusUnauthorized {
			// A 401 is a session the server ended: the token is gone for good.
			delete(s.sessions, r.Header.Get("auth_token"))
		}
		s.mu.Unlock()
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if fault != 0 {
			reply(w, fault, -1, "simulated failure")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// reply writes the envelope every answer carries (ref §0: "status" 0 and "message" "Success" on
// success).
func reply(w http.ResponseWriter, httpStatus, status int, message string, fields ...any) {
	body := map[string]any{"status": status, "message": message}
	for i := 0; i+1 < len(fields); i += 2 {
		body[fields[i].(string)] = fields[i+1]
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(body)
}

func ok(w http.ResponseWriter, fields ...any) { reply(w, http.StatusOK, 0, "Success", fields...) }

// failed answers a refused action. The documents show status -1 for failed device actions and
// numeric codes elsewhere (ref §0); for certificate actions the code is UNCONFIRMED.
func failed(w http.ResponseWriter, message string) { reply(w, http.StatusOK, -1, message) }

// authed checks the auth_token header (ref §1: every later call sends it; header names are
// case-insensitive, and Go's Header.Get canonicalises them). An unknown or expired token: 401 with
// the envelope; the code of an expired session is UNCONFIRMED (ref §0).
func (s *Sim) authed(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("auth_token")
		s.mu.Lock()
		user, ok := s.sessions[token]
		s.mu.Unlock()
		if token == "" || !ok {
			reply(w, http.StatusUnauthorized, 1, "invalid or expired auth_token")
			return
		}
		h(w, r, user)
	}
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		reply(w, http.StatusUnsupportedMediaType, 1, "Content-Type must be application/json")
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxUpload)).Decode(v); err != nil {
		reply(w, http.StatusBadRequest, 1, "malformed JSON: "+err.Error())
		return false
	}
	return true
}

// login: POST /authentication/login {"login","password"} → {"auth_token"} (ref §1, confirmed by
// WEB-10.3, PDF-10.4, PDF-2021 and every client). A bad login answers 401 (pain's client sees 401 or
// 400; single-source).
func (s *Sim) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Login    string `json:"login"`
		Password string `json:"password"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Login != s.cfg.Username || req.Password != s.cfg.Password {
		reply(w, http.StatusUnauthorized, 1, "Invalid credentials")
		return
	}
	s.startSession(w, req.Login)
}

// loginCloud: POST /authentication/login/cloud {"bearerToken"} (PDF-2021 §3.3.2); only a cloud
// tenant has it.
func (s *Sim) loginCloud(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Cloud {
		reply(w, http.StatusNotFound, 1, "not found")
		return
	}
	var req struct {
		BearerToken string `json:"bearerToken"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.BearerToken == "" || req.BearerToken != s.cfg.CloudBearer {
		reply(w, http.StatusUnauthorized, 1, "Invalid bearer token")
		return
	}
	s.startSession(w, "cloud-admin")
}

func (s *Sim) startSession(w http.ResponseWriter, user string) {
	token := newToken()
	s.mu.Lock()
	s.sessions[token] = user
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	// The login reply is {"auth_token": ...} alone in every sample (ref §1).
	_ = json.NewEncoder(w).Encode(map[string]string{"auth_token": token})
}

// logout answers {"Status": "user <user> logged out successfully."}, capital S (ref §1).
func (s *Sim) logout(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		Login string `json:"login"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	delete(s.sessions, r.Header.Get("auth_token"))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"Status": fmt.Sprintf("user %s logged out successfully.", req.Login)})
}

// environment: cloud tenants only (PDF-2021 §3.24). An on-premises server's answer is UNCONFIRMED;
// the simulator answers 404.
func (s *Sim) environment(w http.ResponseWriter, _ *http.Request, _ string) {
	if !s.cfg.Cloud {
		reply(w, http.StatusNotFound, 1, "not found")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"isMultitenant": false, "customerEnvironment": "commercial"})
}

type nameJSON struct {
	CertString   string `json:"certString"`
	CommonName   string `json:"commonName"`
	EmailAddress any    `json:"emailAddress"`
	OrgUnit      any    `json:"orgUnit"`
	Org          any    `json:"org"`
	Locality     any    `json:"locality"`
	State        any    `json:"state"`
	Country      any    `json:"country"`
	Description  any    `json:"description"`
}

func nameOf(n interface{ String() string }, cn string) nameJSON {
	return nameJSON{CertString: n.String(), CommonName: cn}
}

// list: GET /certificates, shaped as PDF-2021 §3.4.1 prints it: the array key is the singular
// "certificate", privateKey is the string "true"/"false", id a number, serialNum decimal, dates
// without time, remainingDays (ref §2, "List"). No PEM, SANs, key type or role.
func (s *Sim) list(w http.ResponseWriter, _ *http.Request, _ string) {
	s.mu.Lock()
	rows := make([]map[string]any, 0, len(s.entries))
	for _, e := range s.sortedLocked() {
		typ := "entity"
		if e.cert.IsCA {
			typ = "chain"
		}
		rows = append(rows, map[string]any{
			"name": e.cert.Subject.CommonName, "description": e.description,
			"remainingDays": int(time.Until(e.cert.NotAfter).Hours() / 24),
			"validFrom":     e.cert.NotBefore.UTC().Format("2006-01-02"), "validTo": e.cert.NotAfter.UTC().Format("2006-01-02"),
			"type": typ, "isActive": e.active, "privateKey": strconv.FormatBool(e.key != nil), "ca": nil, "id": e.id,
			"certDetails": map[string]any{
				"signatureAlgo": e.cert.SignatureAlgorithm.String(), "version": nil,
				"serialNum":   e.cert.SerialNumber.Text(10),
				"issuerName":  nameOf(e.cert.Issuer, e.cert.Issuer.CommonName),
				"subjectName": nameOf(e.cert.Subject, e.cert.Subject.CommonName),
			},
		})
	}
	s.mu.Unlock()
	ok(w, "csrId", 0, "csrRequest", nil, "apnsCheck", nil, "certificate", rows,
		"apnsCheckObj", map[string]bool{"topicNameMismatch": false, "certExpired": false, "certNotYetValid": false, "malformed": false})
}

// export: POST /certificates/export {"id":"300","password":"1111","exportPrivateKey":true}; only
// id is mandatory; the reply's "certificate" holds the key first, legacy-encrypted (DES-EDE3-CBC)
// under the password, then the certificate (ref §2, "Export", PDF-2021). Exporting the key with
// no password is refused: UNCONFIRMED.
func (s *Sim) export(w http.ResponseWriter, r *http.Request, _ string) {
	var req struct {
		ID               json.RawMessage `json:"id"`
		Password         string          `json:"password"`
		ExportPrivateKey bool            `json:"exportPrivateKey"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	id, err := looseID(req.ID)
	if err != nil {
		failed(w, "id: "+err.Error())
		return
	}
	s.mu.Lock()
	e, found := s.entries[id]
	s.mu.Unlock()
	if !found {
		failed(w, fmt.Sprintf("Certificate %d not found", id))
		return
	}
	var out []byte
	if req.ExportPrivateKey {
		if e.key == nil {
			failed(w, "the certificate has no private key")
			return
		}
		if req.Password == "" {
			failed(w, "a password is required to export the private key")
			return
		}
		block, err := encryptKey(e.key, req.Password)
		if err != nil {
			failed(w, err.Error())
			return
		}
		out = append(out, s.pemText(block)...)
	}
	out = append(out, s.pemText(&pem.Block{Type: "CERTIFICATE", Bytes: e.cert.Raw})...)
	ok(w, "certificate", string(out))
}

// pemText prints a block as PDF-2021's sample does, with no line breaks, unless PrettyExport.
func (s *Sim) pemText(b *pem.Block) []byte {
	text := pem.EncodeToMemory(b)
	if s.cfg.PrettyExport {
		return text
	}
	// "-----BEGIN RSA PRIVATE KEY-----Proc-Type: 4,ENCRYPTED DEK-Info: DES-EDE3-CBC,...": header
	// lines apart by a space, the base64 run together.
	return []byte(strings.NewReplacer("\n\n", " ", "ENCRYPTED\n", "ENCRYPTED ", "\n", "").Replace(string(text)))
}

// encryptKey encrypts a key the way the sample shows it: "RSA PRIVATE KEY" with Proc-Type and
// DEK-Info DES-EDE3-CBC (ref §2, "Export").
func encryptKey(key crypto.Signer, password string) (*pem.Block, error) {
	var typ string
	var der []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		typ, der = "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)
	case *ecdsa.PrivateKey:
		var err error
		typ = "EC PRIVATE KEY"
		if der, err = x509.MarshalECPrivateKey(k); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported key %T", key)
	}
	//lint:ignore SA1019 the device's documented export format is legacy PEM encryption
	return x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(password), x509.PEMCipher3DES) //nolint:staticcheck
}

func looseID(raw json.RawMessage) (int64, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("not an id: %s", raw)
	}
	return n, nil
}

// importKeystore: POST /certificates/import/keystore/{server|saml|listener|apns}, multipart with
// a certImportData JSON part and an uploadFile part (ref §2, "Import keystore", PDF-10.4 and
// PDF-2021). The server makes one entry per certificate of the chain, only where each is the
// issuer of the one before, reusing CA entries it has, and puts the description on the first only
// (SEED). The reply carries no id ("certificate": null).
func (s *Sim) importKeystore(w http.ResponseWriter, r *http.Request, _ string) {
	role := r.PathValue("role")
	useAs := map[string]string{"server": "none", "saml": "saml", "listener": "listener", "apns": "apns"}[role]
	if useAs == "" {
		reply(w, http.StatusNotFound, 1, "not found")
		return
	}
	if err := r.ParseMultipartForm(maxUpload); err != nil {
		reply(w, http.StatusBadRequest, 1, "expected multipart/form-data: "+err.Error())
		return
	}
	var meta struct {
		Password     string `json:"password"`
		Alias        string `json:"alias"`
		UseAs        string `json:"useAs"`
		UploadType   string `json:"uploadType"`
		KeystoreType string `json:"keystoreType"`
		Description  string `json:"description"`
	}
	if err := json.Unmarshal([]byte(r.FormValue("certImportData")), &meta); err != nil {
		failed(w, "certImportData: "+err.Error())
		return
	}
	// useAs follows the path (ref §2: none for server, saml, listener; confirmed).
	if meta.UseAs != useAs || meta.UploadType != "keystore" || !strings.EqualFold(meta.KeystoreType, "PKCS12") {
		failed(w, fmt.Sprintf("certImportData: useAs %q, uploadType %q, keystoreType %q do not fit %s", meta.UseAs, meta.UploadType, meta.KeystoreType, r.URL.Path))
		return
	}
	files := r.MultipartForm.File["uploadFile"]
	if len(files) != 1 {
		failed(w, "expected one uploadFile part")
		return
	}
	f, err := files[0].Open()
	if err != nil {
		failed(w, err.Error())
		return
	}
	p12, err := io.ReadAll(io.LimitReader(f, maxUpload))
	f.Close()
	if err != nil {
		failed(w, err.Error())
		return
	}
	key, leaf, cas, err := pkcs12.DecodeChain(p12, meta.Password)
	if err != nil {
		failed(w, "Cannot read the keystore: wrong password or not a PKCS#12 file")
		return
	}
	signer, isSigner := key.(crypto.Signer)
	if !isSigner || !publicKeysEqual(signer.Public(), leaf.PublicKey) {
		failed(w, "the keystore's private key does not match its certificate")
		return
	}
	if s.cfg.Cloud && role == "listener" {
		// SEED: on Citrix Endpoint Management, Citrix manages the SSL listener certificate.
		failed(w, "The SSL listener certificate is managed by Citrix")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var dupes []*entry
	for _, e := range s.entries {
		if publicKeysEqual(e.cert.PublicKey, leaf.PublicKey) {
			dupes = append(dupes, e)
		}
	}
	if len(dupes) > 0 {
		if s.cfg.DuplicateKey == DuplicateRefuse {
			failed(w, "Only one certificate per public key is allowed: a certificate with this public key already exists")
			return
		}
		for _, d := range dupes {
			if s.served == d {
				s.served = nil
			}
			delete(s.entries, d.id)
		}
	}
	e := s.addLocked(leaf, signer, useAs, meta.Description)
	if role == "listener" || role == "saml" {
		s.activateLocked(e)
	}
	prev := leaf
	for _, ca := range cas {
		if prev.CheckSignatureFrom(ca) != nil {
			break // SEED: only a chain where each is the issuer of the one before
		}
		if !s.hasCertLocked(ca) {
			s.addLocked(ca, nil, "none", "")
		}
		prev = ca
	}
	ok(w, "certificate", nil)
}

func (s *Sim) hasCertLocked(c *x509.Certificate) bool {
	for _, e := range s.entries {
		if e.cert.Equal(c) {
			return true
		}
	}
	return false
}

// delete: DELETE {"certificateIds":["751"]} (ref §2, "Delete"; the body is confirmed, the path is
// a switch). Unknown ids are refused.
func (s *Sim) delete(w http.ResponseWriter, r *http.Request, _ string) {
	var req struct {
		IDs []json.RawMessage `json:"certificateIds"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for _, raw := range req.IDs {
		id, err := looseID(raw)
		if err != nil {
			failed(w, err.Error())
			return
		}
		e, found := s.entries[id]
		if !found {
			failed(w, fmt.Sprintf("Certificate %d not found", id))
			return
		}
		if s.cfg.RefuseDeleteActive && e.active {
			failed(w, fmt.Sprintf("Certificate %d is in use and cannot be deleted", id))
			return
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if s.served == s.entries[id] {
			s.served = nil
		}
		delete(s.entries, id)
	}
	ok(w)
}

func publicKeysEqual(a, b any) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
