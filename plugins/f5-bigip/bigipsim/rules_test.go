package bigipsim_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
)

// rest is a raw iControl session as the built-in admin (basic auth), for checking the sim's
// answers byte for byte rather than through the plugin's client.
type rest struct {
	t   *testing.T
	sim *bigipsim.Sim
	c   *http.Client
}

func newRest(t *testing.T, cfg bigipsim.Config) *rest {
	t.Helper()
	sim, err := bigipsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &rest{t: t, sim: sim, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// call sends a request and returns the status and decoded body.
func (r *rest) call(method, path string, body any, header map[string]string) (int, map[string]any) {
	r.t.Helper()
	var in io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, r.sim.URL()+path, in)
	if err != nil {
		r.t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin-sim-password")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := r.c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func message(m map[string]any) string { s, _ := m["message"].(string); return s }

// TestQueuedCommandIsACommandObject: a request queued in a transaction is answered with the
// command object (evalOrder, ...), not with its body, and the queue is listed under commands.
func TestQueuedCommandIsACommandObject(t *testing.T) {
	r := newRest(t, bigipsim.DefaultConfig())
	status, txn := r.call(http.MethodPost, "/mgmt/tm/transaction", map[string]any{}, nil)
	if status != http.StatusOK {
		t.Fatalf("begin: %d %v", status, txn)
	}
	id := strconv.FormatInt(int64(txn["transId"].(float64)), 10)
	hdr := map[string]string{"X-F5-REST-Coordination-Id": id}
	status, cmd := r.call(http.MethodPatch, "/mgmt/tm/ltm/virtual/~Common~vs_api", map[string]any{"profiles": []any{map[string]any{"name": "/Common/tcp"}}}, hdr)
	if status != http.StatusOK || cmd["evalOrder"] != float64(1) || cmd["method"] != "PATCH" || cmd["profiles"] != nil {
		t.Fatalf("queued command answered %d %v; want the command object (evalOrder 1), not the body", status, cmd)
	}
	status, list := r.call(http.MethodGet, "/mgmt/tm/transaction/"+id+"/commands", nil, nil)
	items, _ := list["items"].([]any)
	if status != http.StatusOK || len(items) != 1 {
		t.Fatalf("GET commands: %d %v", status, list)
	}
}

// TestProfileRules: a certKeyChain whose certificate is not for its key is refused with the
// device's 01070317; a child profile lists its parent's settings as its own; a parent change is
// refused when Config.ParentImmutable says so.
func TestProfileRules(t *testing.T) {
	for _, immutable := range []bool{false, true} {
		cfg := bigipsim.DefaultConfig()
		cfg.ParentImmutable = immutable
		r := newRest(t, cfg)
		if err := r.sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "a.key", Cert: "a.crt", CommonName: "a.example.test"}); err != nil {
			t.Fatal(err)
		}
		if err := r.sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "b.key", Cert: "b.crt", CommonName: "b.example.test", Passphrase: "b-passphrase-0123456789"}); err != nil {
			t.Fatal(err)
		}
		status, out := r.call(http.MethodPost, "/mgmt/tm/ltm/profile/client-ssl", map[string]any{"name": "mix", "partition": "Common",
			"certKeyChain": []any{map[string]any{"name": "default", "cert": "/Common/a.crt", "key": "/Common/b.key", "passphrase": "b-passphrase-0123456789"}}}, nil)
		if status != http.StatusBadRequest || message(out) != "01070317:3: profile /Common/mix's key and certificate do not match" {
			t.Errorf("mismatched pair: %d %q", status, message(out))
		}
		status, out = r.call(http.MethodPost, "/mgmt/tm/ltm/profile/client-ssl", map[string]any{"name": "prot", "partition": "Common",
			"certKeyChain": []any{map[string]any{"name": "default", "cert": "/Common/b.crt", "key": "/Common/b.key", "passphrase": "wrong"}}}, nil)
		if status != http.StatusBadRequest || !strings.HasPrefix(message(out), "01070313:3: ") {
			t.Errorf("protected key with a wrong passphrase: %d %q", status, message(out))
		}
		status, out = r.call(http.MethodPost, "/mgmt/tm/ltm/profile/client-ssl", map[string]any{"name": "parent", "partition": "Common", "ciphers": "ECDHE+AES-GCM", "peerCertMode": "require"}, nil)
		if status != http.StatusOK {
			t.Fatalf("create parent: %d %v", status, out)
		}
		status, out = r.call(http.MethodPost, "/mgmt/tm/ltm/profile/client-ssl", map[string]any{"name": "child", "partition": "Common", "defaultsFrom": "/Common/parent"}, nil)
		if status != http.StatusOK || out["ciphers"] != "ECDHE+AES-GCM" || out["peerCertMode"] != "require" || out["renegotiation"] != "enabled" {
			t.Fatalf("child of parent: %d %v; want the parent's ciphers and peerCertMode, and clientssl's renegotiation", status, out)
		}
		status, out = r.call(http.MethodPatch, "/mgmt/tm/ltm/profile/client-ssl/~Common~child", map[string]any{"defaultsFrom": "/Common/clientssl"}, nil)
		if immutable != (status != http.StatusOK) {
			t.Errorf("ParentImmutable %v: change of defaultsFrom answered %d %q", immutable, status, message(out))
		}
		if !immutable && out["ciphers"] != "DEFAULT" {
			t.Errorf("after the parent changed to clientssl, ciphers are %v", out["ciphers"])
		}
	}
}

// TestCertificateFromKey: "create sys crypto cert" from a protected key makes a self-signed
// certificate for it; with CertFromKeyNeedsPassphrase only when the right passphrase is given.
func TestCertificateFromKey(t *testing.T) {
	for _, needs := range []bool{false, true} {
		cfg := bigipsim.DefaultConfig()
		cfg.CertFromKeyNeedsPassphrase = needs
		r := newRest(t, cfg)
		if err := r.sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "p.key", Cert: "p.crt", CommonName: "p.example.test", Passphrase: "p-passphrase-0123456789"}); err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"name": "self.crt", "partition": "Common", "key": "/Common/p.key", "commonName": "self.example.test", "lifetime": 30}
		status, out := r.call(http.MethodPost, "/mgmt/tm/sys/crypto/cert", body, nil)
		if needs != (status != http.StatusOK) || (needs && !strings.HasPrefix(message(out), "01070313:3: ")) {
			t.Errorf("needs passphrase %v: without it answered %d %q", needs, status, message(out))
		}
		body["name"], body["passphrase"] = "self2.crt", "p-passphrase-0123456789"
		if status, out := r.call(http.MethodPost, "/mgmt/tm/sys/crypto/cert", body, nil); status != http.StatusOK {
			t.Errorf("with the passphrase: %d %q", status, message(out))
		}
		status, out = r.call(http.MethodGet, "/mgmt/tm/sys/file/ssl-cert/~Common~self2.crt", nil, nil)
		if status != http.StatusOK || !strings.Contains(out["subject"].(string), "CN=self.example.test") {
			t.Errorf("made certificate: %d %v", status, out)
		}
	}
}

// TestInstallOverServedCertificate: installing over a certificate a profile uses a certificate
// for another key is refused (01070317); one for the same key is accepted.
func TestInstallOverServedCertificate(t *testing.T) {
	r := newRest(t, bigipsim.DefaultConfig())
	if err := r.sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "s.key", Cert: "s.crt", CommonName: "s.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "o.key", Cert: "o.crt", CommonName: "o.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "s_clientssl", Entries: []bigipsim.ProfileEntry{{Name: "default", Cert: "/Common/s.crt", Key: "/Common/s.key"}}}); err != nil {
		t.Fatal(err)
	}
	// The certificate of o.key, as a file to install over s.crt.
	status, out := r.call(http.MethodPost, "/mgmt/tm/sys/crypto/cert", map[string]any{"name": "o2.crt", "partition": "Common", "key": "/Common/o.key", "commonName": "o.example.test"}, nil)
	if status != http.StatusOK {
		t.Fatalf("make o2.crt: %d %v", status, out)
	}
	pemOf := r.sim.CertPEM("/Common/o2.crt")
	req, _ := http.NewRequest(http.MethodPost, r.sim.URL()+"/mgmt/shared/file-transfer/uploads/o2.pem", strings.NewReader(pemOf))
	req.SetBasicAuth("admin", "admin-sim-password")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", "0-"+itoa(len(pemOf)-1)+"/"+itoa(len(pemOf)))
	resp, err := r.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	status, out = r.call(http.MethodPost, "/mgmt/tm/sys/crypto/cert", map[string]any{"command": "install", "name": "s.crt", "partition": "Common", "from-local-file": "/var/config/rest/downloads/o2.pem"}, nil)
	if status != http.StatusBadRequest || message(out) != "01070317:3: profile /Common/s_clientssl's key and certificate do not match" {
		t.Errorf("install of another key's certificate over a served one: %d %q", status, message(out))
	}
	status, out = r.call(http.MethodPost, "/mgmt/tm/sys/crypto/cert", map[string]any{"command": "install", "name": "o.crt", "partition": "Common", "from-local-file": "/var/config/rest/downloads/o2.pem"}, nil)
	if status != http.StatusOK {
		t.Errorf("install over a certificate no profile uses: %d %q", status, message(out))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestProfileInUseCannotBeDeleted: deleting a client-ssl profile a virtual server carries is
// refused with the device's 01070265.
func TestProfileInUseCannotBeDeleted(t *testing.T) {
	r := newRest(t, bigipsim.DefaultConfig())
	if err := r.sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_used", Profiles: []string{"/Common/tcp", "/Common/api_clientssl"}}); err != nil {
		t.Fatal(err)
	}
	status, out := r.call(http.MethodDelete, "/mgmt/tm/ltm/profile/client-ssl/~Common~api_clientssl", nil, nil)
	want := "01070265:3: The ClientSSL Profile (/Common/api_clientssl) cannot be deleted because it is in use by a virtual server profile (/Common/vs_used /Common/api_clientssl)."
	if status != http.StatusBadRequest || message(out) != want {
		t.Errorf("delete of a profile in use: %d %q, want %q", status, message(out), want)
	}
}
