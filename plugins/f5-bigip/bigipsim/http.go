package bigipsim

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const maxRequestBody = 8 << 20

type token struct {
	value   string
	user    string
	timeout int
	start   time.Time
	expires time.Time
}

// apiErr is an iControl error answer.
type apiErr struct {
	status  int
	message string
}

func (e *apiErr) Error() string { return e.message }

func errf(status int, format string, args ...any) *apiErr {
	return &apiErr{status: status, message: fmt.Sprintf(format, args...)}
}

func notFound(kind, path string) *apiErr {
	return errf(http.StatusNotFound, "01020036:3: The requested %s (%s) was not found.", kind, path)
}

// missingRef is a reference (in a body) to an object that does not exist: 400, not 404.
func missingRef(kind, path string) *apiErr {
	return errf(http.StatusBadRequest, "01020036:3: The requested %s (%s) was not found.", kind, path)
}

func exists(kind, path string) *apiErr {
	p, _ := splitPath(path)
	return errf(http.StatusConflict, "01020066:3: The requested %s (%s) already exists in partition %s.", kind, path, p)
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// ServeHTTP is the management API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	latency := s.latency
	s.mu.RUnlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return
	}
	if len(body) > maxRequestBody {
		s.writeErr(w, r, nil, errf(http.StatusRequestEntityTooLarge, "request body too large"))
		return
	}
	s.notePassphrases(body)
	if s.injectFault(w, r, body) {
		return
	}
	path := r.URL.Path
	if path == "/mgmt/shared/authn/login" && r.Method == http.MethodPost {
		s.login(w, r, body)
		return
	}
	u, aerr := s.authenticate(r)
	if aerr != nil {
		if aerr.status == http.StatusUnauthorized && r.Header.Get("Authorization") != "" {
			// Basic auth failures come from Apache, as a page, not JSON.
			w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
			w.Header().Set("WWW-Authenticate", `Basic realm="Enterprise Manager"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "<html><head><title>401 Unauthorized</title></head><body><h1>Unauthorized</h1><p>F5 Authorization Required</p></body></html>\n")
			return
		}
		s.writeErr(w, r, body, aerr)
		return
	}
	switch {
	case strings.HasPrefix(path, "/mgmt/shared/authz/tokens/"):
		s.tokenCall(w, r, u, strings.TrimPrefix(path, "/mgmt/shared/authz/tokens/"), body)
	case strings.HasPrefix(path, "/mgmt/shared/file-transfer/uploads/") && r.Method == http.MethodPost:
		s.upload(w, r, strings.TrimPrefix(path, "/mgmt/shared/file-transfer/uploads/"), body)
	case strings.HasPrefix(path, "/mgmt/shared/file-transfer/bulk/") && r.Method == http.MethodGet:
		s.bulkDownload(w, r, strings.TrimPrefix(path, "/mgmt/shared/file-transfer/bulk/"))
	case strings.HasPrefix(path, "/mgmt/tm/"):
		s.tm(w, r, u, body)
	default:
		s.writeErr(w, r, body, errf(http.StatusNotFound, "Public URI path not registered: %s", path))
	}
}

func (s *Sim) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr answers in the iControl shape. /mgmt/shared errors come from the REST framework and
// carry the original request body [UNCONFIRMED for every endpoint]; clients must not repeat it.
func (s *Sim) writeErr(w http.ResponseWriter, r *http.Request, body []byte, e *apiErr) {
	out := map[string]any{"code": e.status, "message": e.message, "errorStack": []string{}, "apiError": 3}
	if strings.HasPrefix(r.URL.Path, "/mgmt/shared/") {
		s.mu.Lock()
		id := s.nextOpID()
		s.mu.Unlock()
		out = map[string]any{"code": e.status, "message": e.message, "referer": "127.0.0.1", "restOperationId": id,
			"errorStack": []string{}, "kind": ":resterrorresponse"}
		if len(body) > 0 && json.Valid(body) {
			out["originalRequestBody"] = string(body)
		}
	}
	s.writeJSON(w, e.status, out)
}

func newTokenValue() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.TrimRight(base32.StdEncoding.EncodeToString(b[:]), "=")
}

func (s *Sim) login(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Username          string `json:"username"`
		Password          string `json:"password"`
		LoginProviderName string `json:"loginProviderName"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		s.writeErr(w, r, body, errf(http.StatusBadRequest, "Invalid JSON: %v", err))
		return
	}
	provider := in.LoginProviderName
	if provider == "" {
		provider = "tmos"
	}
	known := provider == "tmos"
	for _, u := range s.cfg.Users {
		known = known || u.Provider == provider
	}
	if !known {
		s.writeErr(w, r, body, errf(http.StatusUnauthorized, "loginProviderName is invalid."))
		return
	}
	u, ok := s.user(in.Username)
	if !ok || !passwordsEqual(u.Password, in.Password) || u.Provider != provider {
		s.writeErr(w, r, body, errf(http.StatusUnauthorized, "Authentication failed."))
		return
	}
	s.mu.Lock()
	now := time.Now()
	active := 0
	for v, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, v)
			continue
		}
		if t.user == u.Name {
			active++
		}
	}
	// The built-in admin is exempt from the limit (DevCentral, token management).
	if u.Name != "admin" && active >= s.cfg.TokenLimit {
		s.mu.Unlock()
		s.writeErr(w, r, body, errf(http.StatusBadRequest, "user %s has reached maximum active login tokens", u.Name))
		return
	}
	t := &token{value: newTokenValue(), user: u.Name, timeout: int(s.cfg.TokenTimeout / time.Second), start: now, expires: now.Add(s.cfg.TokenTimeout)}
	s.tokens[t.value] = t
	s.tokensIssued = append(s.tokensIssued, t.value)
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, map[string]any{
		"username":          u.Name,
		"loginReference":    map[string]string{"link": "https://localhost/mgmt/cm/system/authn/providers/" + provider + "/login"},
		"loginProviderName": provider,
		"token":             tokenJSON(t),
		"generation":        0,
		"lastUpdateMicros":  0,
	})
}

func tokenJSON(t *token) map[string]any {
	return map[string]any{
		"token": t.value, "name": t.value, "userName": t.user, "authProviderName": "tmos",
		"user":            map[string]string{"link": "https://localhost/mgmt/shared/authz/users/" + t.user},
		"groupReferences": []any{}, "timeout": t.timeout, "startTime": t.start.Format(time.RFC3339Nano),
		"address": "127.0.0.1", "partition": "[All]", "generation": 1,
		"lastUpdateMicros": t.start.UnixMicro(), "expirationMicros": t.expires.UnixMicro(),
		"kind": "shared:authz:tokens:authtokenitemstate", "selfLink": "https://localhost/mgmt/shared/authz/tokens/" + t.value,
	}
}

// authenticate finds the user of a request: X-F5-Auth-Token, else basic auth for local users.
func (s *Sim) authenticate(r *http.Request) (User, *apiErr) {
	if v := r.Header.Get("X-F5-Auth-Token"); v != "" {
		s.mu.Lock()
		t, ok := s.tokens[v]
		if ok && !time.Now().Before(t.expires) {
			delete(s.tokens, v)
			s.mu.Unlock()
			return User{}, errf(http.StatusUnauthorized, "X-F5-Auth-Token has expired.")
		}
		s.mu.Unlock()
		if !ok {
			return User{}, errf(http.StatusUnauthorized, "X-F5-Auth-Token does not exist.")
		}
		u, _ := s.user(t.user)
		return u, nil
	}
	if name, pass, ok := r.BasicAuth(); ok {
		u, found := s.user(name)
		if !found || u.Provider != "tmos" || !passwordsEqual(u.Password, pass) {
			return User{}, errf(http.StatusUnauthorized, "F5 Authorization Required")
		}
		return u, nil
	}
	return User{}, errf(http.StatusUnauthorized, "Authorization failed: no user authentication header or token detected. Uri:http://localhost:8100%s Referrer:127.0.0.1 Sender:127.0.0.1", r.URL.Path)
}

// authorize applies the user's role to one call.
func authorize(u User, method, path string) *apiErr {
	deny := func() *apiErr {
		return errf(http.StatusUnauthorized, "Authorization failed: user=https://localhost/mgmt/shared/authz/users/%s resource=%s verb=%s uri:http://localhost:8100%s referrer:127.0.0.1 sender:127.0.0.1",
			u.Name, path, method, path)
	}
	switch u.Role {
	case "admin":
		return nil
	case "resource-admin":
		if path == "/mgmt/tm/util/bash" {
			return deny()
		}
		return nil
	default:
		if method != http.MethodGet && !strings.HasPrefix(path, "/mgmt/shared/authz/tokens/") {
			return deny()
		}
		return nil
	}
}

func (s *Sim) tokenCall(w http.ResponseWriter, r *http.Request, u User, value string, body []byte) {
	s.mu.Lock()
	t, ok := s.tokens[value]
	if !ok || (t.user != u.Name && u.Role != "admin") {
		s.mu.Unlock()
		s.writeErr(w, r, body, errf(http.StatusNotFound, "Object with id %s not found", value))
		return
	}
	switch r.Method {
	case http.MethodGet:
		out := tokenJSON(t)
		s.mu.Unlock()
		s.writeJSON(w, http.StatusOK, out)
	case http.MethodDelete:
		delete(s.tokens, value)
		out := tokenJSON(t)
		s.mu.Unlock()
		s.writeJSON(w, http.StatusOK, out)
	case http.MethodPatch:
		var in struct {
			Timeout int `json:"timeout"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Timeout <= 0 {
			s.mu.Unlock()
			s.writeErr(w, r, body, errf(http.StatusBadRequest, "timeout must be a positive number of seconds"))
			return
		}
		if in.Timeout > 36000 {
			s.mu.Unlock()
			s.writeErr(w, r, body, errf(http.StatusNotAcceptable, "Auth-token absolute timeout (36000 seconds) exceeded"))
			return
		}
		t.timeout = in.Timeout
		t.expires = t.start.Add(time.Duration(in.Timeout) * time.Second)
		out := tokenJSON(t)
		s.mu.Unlock()
		s.writeJSON(w, http.StatusOK, out)
	default:
		s.mu.Unlock()
		s.writeErr(w, r, body, errf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
	}
}

// ExpireTokens makes every current token expire now (the next call with one gets 401).
func (s *Sim) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, t := range s.tokens {
		t.expires = past
	}
}

func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}
