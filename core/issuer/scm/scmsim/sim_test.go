package scmsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
)

// api is a legacy-login client of the simulator (the tests check the simulator's own rules).
type api struct {
	t    *testing.T
	s    *Server
	http *http.Client
}

func newAPI(t *testing.T) *api { return newAPIWith(t, nil) }

// newAPIWith is newAPI with the simulator's configuration changed by mod.
func newAPIWith(t *testing.T, mod func(*Config)) *api {
	t.Helper()
	cfg := DefaultConfig()
	cfg.PendingCollects = 0
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.TLSCACertPEM()))
	return &api{t: t, s: s, http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (a *api) call(method, path, body string) (int, []byte) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.s.LegacyURL()+path, strings.NewReader(body))
	u := a.s.cfg.Users[0]
	req.Header.Set("login", u.Login)
	req.Header.Set("password", u.Password)
	req.Header.Set("customerUri", u.CustomerURI)
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func csrPEM(t *testing.T, cn string) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func (a *api) enroll(cn, extra string) (int, []byte) {
	body, _ := json.Marshal(map[string]any{"orgId": 1234, "csr": csrPEM(a.t, cn), "certType": 101})
	return a.call(http.MethodPost, "ssl/v1/enroll", strings.TrimSuffix(string(body), "}")+extra+"}")
}

func TestCollectFormats(t *testing.T) {
	a := newAPI(t)
	if status, body := a.enroll("a.example.com", ""); status != 200 {
		t.Fatalf("enroll: %d %s", status, body)
	}
	for _, tc := range []struct{ path, kind string }{
		{"ssl/v1/collect/1000", "base64"}, {"ssl/v1/collect/1000?format=base64", "base64"}, {"ssl/v1/collect/1000/bin", "bin"},
	} {
		status, body := a.call(http.MethodGet, tc.path, "")
		der := body
		if tc.kind == "base64" {
			block, _ := pem.Decode(body)
			if block == nil || block.Type != "PKCS7" {
				t.Fatalf("%s: not a PKCS#7 PEM: %.60q", tc.path, body)
			}
			der = block.Bytes
		}
		p7, err := pkcs7.Parse(der)
		if status != 200 || err != nil || len(p7.Certificates) != 3 {
			t.Fatalf("%s: %d %v", tc.path, status, err)
		}
	}
	if status, body := a.call(http.MethodGet, "ssl/v1/collect/1000?format=zip", ""); status != 400 || !strings.Contains(string(body), "-1450") {
		t.Fatalf("unknown format: %d %s", status, body)
	}
}

func TestLengthLimitsAndListFilters(t *testing.T) {
	a := newAPI(t)
	if status, _ := a.enroll("a.example.com", `,"comments":"`+strings.Repeat("x", 1025)+`"`); status != 400 {
		t.Errorf("comments of 1025: %d", status)
	}
	if status, _ := a.enroll("a.example.com", `,"externalRequester":"`+strings.Repeat("x", 513)+`"`); status != 400 {
		t.Errorf("externalRequester of 513: %d", status)
	}
	if status, _ := a.enroll("a.example.com", `,"comments":"`+strings.Repeat("x", 1024)+`","externalRequester":"ops@example.com"`); status != 200 {
		t.Errorf("at the limits: %d", status)
	}
	if status, _ := a.enroll("b.example.com", ""); status != 200 {
		t.Fatal("enroll b")
	}
	a.call(http.MethodGet, "ssl/v1/collect/1001/x509", "")
	if status, _ := a.call(http.MethodPost, "ssl/v1/revoke/1001", `{"reasonCode":4,"reason":"`+strings.Repeat("r", 513)+`"}`); status != 400 {
		t.Errorf("revoke reason of 513: %d", status)
	}
	for query, want := range map[string]int{
		"status=Issued": 1, "status=Requested": 1, "externalRequester=ops@example.com": 1, "sslTypeId=101": 2, "sslTypeId=102": 0,
		"orgId=1234": 2, "orgId=5678": 0, "commonName=b.example.com": 1, "requestedVia=" + url.QueryEscape("REST API"): 2,
	} {
		status, body := a.call(http.MethodGet, "ssl/v1?"+query, "")
		var list []map[string]any
		if status != 200 || json.Unmarshal(body, &list) != nil || len(list) != want {
			t.Errorf("%s: %d, %d orders, want %d", query, status, len(list), want)
		}
	}
}

func TestProfilesPerOrganization(t *testing.T) {
	a := newAPI(t)
	for query, want := range map[string]int{"": 3, "?organizationId=1234": 2, "?organizationId=5678": 1} {
		_, body := a.call(http.MethodGet, "ssl/v1/types"+query, "")
		var list []Profile
		if json.Unmarshal(body, &list) != nil || len(list) != want {
			t.Errorf("types%s: %d profiles, want %d", query, len(list), want)
		}
	}
	// A profile of another organization cannot be ordered.
	body, _ := json.Marshal(map[string]any{"orgId": 1234, "csr": csrPEM(t, "a.example.com"), "certType": 201})
	if status, resp := a.call(http.MethodPost, "ssl/v1/enroll", string(body)); status != 400 || !strings.Contains(string(resp), "-39") {
		t.Errorf("profile 201 for organization 1234: %d %s", status, resp)
	}
}

func (a *api) restEnroll(body string) (int, []byte) {
	a.t.Helper()
	acct := a.s.cfg.EnrollAccounts["certfleet-sim-rest"]
	resp, err := a.http.PostForm(a.s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {"certfleet-sim-rest"}, "client_secret": {acct.Secret}})
	if err != nil {
		a.t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, a.s.EnrollURL()+"/api/v1/certificates", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func TestRESTEnrollmentRequestShape(t *testing.T) {
	a := newAPI(t)
	p := csrPEM(t, "a.example.com")
	block, _ := pem.Decode([]byte(p))
	single := strings.TrimSpace(string(pem.EncodeToMemory(block)))
	single = strings.Join(strings.Split(single, "\n")[1:len(strings.Split(single, "\n"))-1], "")
	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"single line":              {`{"csr":"` + single + `","subjAltNames":["b.example.com"],"customFields":{"cost-center":"0123"}}`, 200},
		"PEM with BEGIN/END":       {`{"csr":` + strconvQuote(p) + `}`, 400},
		"subjAltNames as a string": {`{"csr":"` + single + `","subjAltNames":"b.example.com"}`, 400},
		"customFields as a list":   {`{"csr":"` + single + `","customFields":[{"name":"cost-center","value":"1"}]}`, 400},
		"comments too long":        {`{"csr":"` + single + `","comments":"` + strings.Repeat("c", 1025) + `"}`, 400},
	} {
		if status, body := a.restEnroll(tc.body); status != tc.status {
			t.Errorf("%s: %d %s, want %d", name, status, body, tc.status)
		}
	}
	if o := a.s.Orders(); len(o) != 1 || o[0].CertID == "" || o[0].Term != PublicTermLimit(a.s.cfg.Now()) || o[0].CustomFields["cost-center"] != "0123" {
		t.Fatalf("orders %+v", o)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestListPagesAsDocumented: GET /ssl/v1 pages with size (at most 200, ADMIN) and position,
// says how many match in X-Total-Count (DOC25), and gives each entry's serial number once the
// certificate is issued (DOC25 "Response fields", ADMIN SSLIdentity).
func TestListPagesAsDocumented(t *testing.T) {
	a := newAPI(t)
	for _, cn := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		if status, body := a.enroll(cn, ""); status != 200 {
			t.Fatalf("enroll %s: %d %s", cn, status, body)
		}
	}
	a.call(http.MethodGet, "ssl/v1/collect/1001/x509", "")
	req, _ := http.NewRequest(http.MethodGet, a.s.LegacyURL()+"ssl/v1?size=2&position=1", nil)
	u := a.s.cfg.Users[0]
	req.Header.Set("login", u.Login)
	req.Header.Set("password", u.Password)
	req.Header.Set("customerUri", u.CustomerURI)
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page []struct {
		SSLID        int    `json:"sslId"`
		CommonName   string `json:"commonName"`
		SerialNumber string `json:"serialNumber"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "3" || len(page) != 2 || page[0].SSLID != 1001 || page[1].SSLID != 1002 {
		t.Fatalf("page: %d, X-Total-Count %q, %+v (%v)", resp.StatusCode, resp.Header.Get("X-Total-Count"), page, err)
	}
	if page[0].SerialNumber == "" || !strings.Contains(page[0].SerialNumber, ":") || page[1].SerialNumber != "" {
		t.Errorf("serial numbers %q (issued) and %q (not issued yet)", page[0].SerialNumber, page[1].SerialNumber)
	}
	for query, want := range map[string]int{"size=200": 200, "size=201": 400, "size=-1": 400, "position=-1": 400, "size=x": 400} {
		if status, body := a.call(http.MethodGet, "ssl/v1?"+query, ""); status != want {
			t.Errorf("%s: %d %s, want %d", query, status, body, want)
		}
	}
	// UNCONFIRMED: SCM may answer a larger size with 200 entries.
	clamps := newAPIWith(t, func(c *Config) { c.ListClampsSize = true })
	if status, _ := clamps.call(http.MethodGet, "ssl/v1?size=500", ""); status != 200 {
		t.Errorf("size=500 with ListClampsSize: %d", status)
	}
}
