package nitro_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
)

func startSim(t *testing.T, cfg nitrosim.Config) *nitrosim.Sim {
	t.Helper()
	sim, err := nitrosim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func httpClient(sim *nitrosim.Sim) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// client logs in to sim and logs out at the end of the test.
func client(t *testing.T, sim *nitrosim.Sim, o nitro.Options) *nitro.Client {
	t.Helper()
	cfg := nitrosim.DefaultConfig()
	if o.Username == "" {
		o.Username, o.Password = cfg.Username, cfg.Password
	}
	o.HTTPClient = httpClient(sim)
	c := nitro.New(sim.URL(), o)
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	return c
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if !nitro.IsCode(err, code) {
		t.Fatalf("%s: got %v, want errorcode %d", what, err, code)
	}
}

func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// TestDeviceErrors drives the simulator into each NITRO error the plugin must tell apart.
func TestDeviceErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t, startSim(t, nitrosim.DefaultConfig()), nitro.Options{})

	wantCode(t, "bind to an unknown vserver", c.Bind(ctx, "vs_nope", "x", false), nitro.CodeVServerMissing)
	_, err := c.Bindings(ctx, "vs_plain_80")
	wantCode(t, "bindings of an HTTP vserver", err, nitro.CodeNotSSLVServer)
	wantCode(t, "delete a missing certkey", c.DeleteCertKey(ctx, "nope"), nitro.CodeCertKeyMissing)
	if !nitro.IsMissing(c.DeleteCertKey(ctx, "nope")) {
		t.Error("IsMissing does not recognise 1540")
	}

	if err := c.CreateECDSAKey(ctx, "/nsconfig/ssl/k1.key", "P_256"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "key onto an existing file", c.CreateECDSAKey(ctx, "/nsconfig/ssl/k1.key", "P_256"), nitro.CodeFileExists)
	if err := c.Upload(ctx, nitro.SSLDir, "f.txt", []byte("a")); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "upload over a file", c.Upload(ctx, nitro.SSLDir, "f.txt", []byte("b")), nitro.CodeFileExists)
	req := nitro.CertReq{ReqFile: "/nsconfig/ssl/k1.csr", KeyFile: "/nsconfig/ssl/k1.key", CountryName: "GB", StateName: "Yorkshire",
		OrganizationName: "Ex", CommonName: "a.example", SubjectAltName: "DNS:a.example IP:192.0.2.1", DigestMethod: "SHA256"}
	if err := c.CreateCertReq(ctx, req); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "CSR onto an existing file", c.CreateCertReq(ctx, req), nitro.CodeFileExists)
	if err := c.CreateCertReq(ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/k3.csr", KeyFile: "/nsconfig/ssl/k1.key", CountryName: "GB"}); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("CSR without statename/organizationname: %v, want a refusal", err)
	}
	if err := c.CreateRSAKey(ctx, "/nsconfig/ssl/k4.key", 8192); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("RSA 8192: %v, want a refusal (NITRO allows 512-4096)", err)
	}
	if err := c.CreateECDSAKey(ctx, "/nsconfig/ssl/k5.key", "P_521"); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("P_521: %v, want a refusal (only P_256 and P_384)", err)
	}
	data, found, err := c.Download(ctx, "/nsconfig/ssl/k1.csr")
	if err != nil || !found || !strings.Contains(string(data), "CERTIFICATE REQUEST") {
		t.Fatalf("download the CSR: found=%v err=%v", found, err)
	}
	if _, found, err := c.Download(ctx, "/nsconfig/ssl/none.csr"); err != nil || found {
		t.Fatalf("download of a missing file: found=%v err=%v, want absent without error", found, err)
	}
	if existed, err := c.DeleteFile(ctx, "/nsconfig/ssl/f.txt"); err != nil || !existed {
		t.Fatalf("delete a file: existed=%v err=%v", existed, err)
	}
	if existed, err := c.DeleteFile(ctx, "/nsconfig/ssl/f.txt"); err != nil || existed {
		t.Fatalf("delete a missing file: existed=%v err=%v", existed, err)
	}
}

// TestSeverityErrorOnSuccessStatus: a body with severity ERROR fails even under HTTP 200.
func TestSeverityErrorOnSuccessStatus(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nitrosim.DefaultConfig())
	c := client(t, sim, nitro.Options{})
	sim.FailNext("GET nsversion", 1, http.StatusOK, 1234)
	_, err := c.Version(context.Background())
	wantCode(t, "severity ERROR under 200", err, 1234)
}

func TestSessionExpiryReLogsInOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := startSim(t, nitrosim.DefaultConfig())
	c := client(t, sim, nitro.Options{})
	sim.Calls()
	sim.ExpireSessions()
	// Many requests see the expired session at once: one login serves them all.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.CertKeys(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request across the expired session: %v", err)
		}
	}
	if n := count(sim.Calls(), "POST /nitro/v1/config/login"); n != 1 {
		t.Errorf("%d logins after the session expired under 8 concurrent requests, want 1", n)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.Sessions(); n != 0 {
		t.Errorf("%d sessions open after logout", n)
	}
	// 1027 (authentication timeout) is handled the same way.
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	sim.FailNext("GET sslcertkey", 1, http.StatusUnauthorized, nitro.CodeAuthTimeout)
	if _, err := c.CertKeys(ctx); err != nil {
		t.Fatalf("a request after 1027: %v", err)
	}
	// When logging in again fails, the call fails with the login's error.
	sim.FailNext("GET sslcertkey", 1, http.StatusUnauthorized, nitro.CodeSessionExpired)
	sim.FailNext("POST login", 1, http.StatusUnauthorized, nitro.CodeBadLogin)
	_, err := c.CertKeys(ctx)
	wantCode(t, "a request whose second login fails", err, nitro.CodeBadLogin)
	if n := sim.Sessions(); n != 0 {
		t.Errorf("%d sessions open; an expired session is gone", n)
	}
}

func TestHeaderAuthOpensNoSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := startSim(t, nitrosim.DefaultConfig())
	h := client(t, sim, nitro.Options{Mode: nitro.AuthHeaders})
	if _, err := h.CertKeys(ctx); err != nil {
		t.Fatalf("header auth: %v", err)
	}
	if n := count(sim.Calls(), "POST /nitro/v1/config/login"); n != 0 || sim.Sessions() != 0 {
		t.Errorf("header auth logged in %d times, %d sessions", n, sim.Sessions())
	}
	bad := nitro.New(sim.URL(), nitro.Options{Mode: nitro.AuthHeaders, HTTPClient: httpClient(sim), Username: "nsroot", Password: "wrong"})
	wantCode(t, "bad header credentials", bad.Login(ctx), nitro.CodeBadLogin)
	if err := nitro.New(sim.URL(), nitro.Options{Mode: nitro.AuthHeaders, Partition: "p_tenant1", HTTPClient: httpClient(sim)}).Login(ctx); err == nil {
		t.Error("a partition with header auth was accepted; switching is per session")
	}
}

func TestBadLogin(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nitrosim.DefaultConfig())
	bad := nitro.New(sim.URL(), nitro.Options{HTTPClient: httpClient(sim), Username: "nsroot", Password: "wrong"})
	err := bad.Login(context.Background())
	wantCode(t, "bad login", err, nitro.CodeBadLogin)
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestPartitionSwitch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := startSim(t, nitrosim.DefaultConfig())
	c := client(t, sim, nitro.Options{Partition: "p_tenant1"})
	vs, err := c.VServers(ctx, "lbvserver")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Name != "vs_t1_443" {
		t.Errorf("partition p_tenant1 lists %v, want only vs_t1_443", vs)
	}
	bad := nitro.New(sim.URL(), nitro.Options{HTTPClient: httpClient(sim), Username: "nsroot", Password: "nsroot-sim", Partition: "p_none"})
	if err := bad.Login(ctx); err == nil {
		t.Error("switch to an unknown partition succeeded")
	}
	_ = bad.Logout(ctx)
	if n := sim.Sessions(); n != 1 {
		t.Errorf("%d sessions, want only the test client's", n)
	}
}

// TestTraceShowsNoSecrets: the trace hook sees method, path, status and errorcode only.
func TestTraceShowsNoSecrets(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nitrosim.DefaultConfig())
	var lines []string
	var mu sync.Mutex
	c := client(t, sim, nitro.Options{Trace: func(method, path string, status, code int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal([]any{method, path, status, code})
		lines = append(lines, string(b))
	}})
	if _, _, err := c.Download(context.Background(), "/nsconfig/ssl/none.key"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, `["POST","/nitro/v1/config/login",201,0]`) || !strings.Contains(all, `"/nitro/v1/config/systemfile"`) {
		t.Errorf("the trace misses requests:\n%s", all)
	}
	if strings.Contains(all, "nsroot-sim") || strings.Contains(all, "filelocation") {
		t.Errorf("the trace shows a secret or a query:\n%s", all)
	}
}

func TestFlexDecoding(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{`12`: 12, `"12"`: 12, `-3`: -3, `"0"`: 0} {
		var ck nitro.CertKey
		if err := json.Unmarshal([]byte(`{"daystoexpiration":`+in+`}`), &ck); err != nil || !ck.DaysToExpiration.Set || ck.DaysToExpiration.Value != want {
			t.Errorf("%s: %+v %v, want %d", in, ck.DaysToExpiration, err, want)
		}
	}
	for _, in := range []string{`null`, `""`} {
		var ck nitro.CertKey
		if err := json.Unmarshal([]byte(`{"daystoexpiration":`+in+`}`), &ck); err != nil || ck.DaysToExpiration.Set {
			t.Errorf("%s: %+v %v, want unset", in, ck.DaysToExpiration, err)
		}
	}
	var ck nitro.CertKey
	if err := json.Unmarshal([]byte(`{"daystoexpiration":"soon"}`), &ck); err == nil {
		t.Error(`"soon" decoded as a number`)
	}
	var b nitro.VServerBinding
	if err := json.Unmarshal([]byte(`{"snicert":"TRUE","ca":false}`), &b); err != nil || !bool(b.SNICert) || bool(b.CA) {
		t.Errorf("FlexBool: %+v %v", b, err)
	}
}
