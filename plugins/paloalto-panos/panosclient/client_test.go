package panosclient_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

const (
	user     = "certfleet"
	password = "certfleet-sim-password"
)

func startSim(t *testing.T, mutate func(*panossim.Config)) *panossim.Sim {
	t.Helper()
	cfg := panossim.DefaultConfig()
	cfg.CommitDuration = 100 * time.Millisecond
	cfg.RSAPoolSize = -1
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := panossim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func httpClient(t *testing.T, sim *panossim.Sim) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(sim.CACertPEM())) {
		t.Fatal("bad CA")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func newClient(t *testing.T, sim *panossim.Sim, cfg panosclient.Config) *panosclient.Client {
	t.Helper()
	cfg.BaseURL = sim.URL()
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = httpClient(t, sim)
	}
	c, err := panosclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func asAPIError(t *testing.T, err error) *panosclient.APIError {
	t.Helper()
	var ae *panosclient.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an APIError", err, err)
	}
	return ae
}

func showInfo(ctx context.Context, c *panosclient.Client) error {
	_, err := c.Op(ctx, "<show><system><info></info></system></show>")
	return err
}

func TestKeygenOnceThenAgainAfterExpiry(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	for i := 0; i < 3; i++ {
		if err := showInfo(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := sim.Keygens(); n != 1 {
		t.Fatalf("%d keygens for three calls, want 1 (the key is cached)", n)
	}
	sim.ExpireKeys()
	if err := showInfo(ctx, c); err != nil {
		t.Fatalf("call after the key expired: %v", err)
	}
	if n := sim.Keygens(); n != 2 {
		t.Fatalf("%d keygens, want 2 (keygen again on 403)", n)
	}
}

func TestKeyLifetimeExpiry(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.KeyLifetime = time.Second })
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	if err := showInfo(ctx, c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := showInfo(ctx, c); err != nil {
		t.Fatalf("call after the key lifetime ran out: %v", err)
	}
	if n := sim.Keygens(); n != 2 {
		t.Fatalf("%d keygens, want 2", n)
	}
}

// Keygen may revoke the user's earlier keys: concurrent calls for one device share one key, and
// one keygen after the key expires.
func TestConcurrentCallsShareOneKeyWhenKeygenRevokes(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.KeygenRevokesPrevious = true })
	cache := panosclient.NewKeyCache()
	hc := httpClient(t, sim)
	ctx := ctxT(t)
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			c := newClient(t, sim, panosclient.Config{Username: user, Password: password, Keys: cache, HTTPClient: hc})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 3; j++ {
					if err := showInfo(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	run()
	if n := sim.Keygens(); n != 1 {
		t.Errorf("%d keygens for 48 concurrent calls, want 1", n)
	}
	sim.ExpireKeys()
	run()
	if n := sim.Keygens(); n != 2 {
		t.Errorf("%d keygens after expiry, want 2", n)
	}
}

func TestBadCredentialsAndBadKey(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	ctx := ctxT(t)
	secret := "wr0ng&pass=word"
	err := showInfo(ctx, newClient(t, sim, panosclient.Config{Username: user, Password: secret}))
	if ae := asAPIError(t, err); !ae.Forbidden() {
		t.Errorf("bad password: %v, want 403", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error reveals the password: %v", err)
	}
	err = showInfo(ctx, newClient(t, sim, panosclient.Config{APIKey: "LUFRPTnot-a-key"}))
	if ae := asAPIError(t, err); !ae.Forbidden() {
		t.Errorf("bad key: %v, want 403", err)
	}
	if n := sim.Keygens(); n != 0 {
		t.Errorf("%d keygens; a static API key must not trigger keygen", n)
	}
}

// A password with every character that needs URL-encoding survives keygen.
func TestSpecialCharactersInCredentialsAndConfig(t *testing.T) {
	t.Parallel()
	admin, pass := "api & <ops> 'x'", `p&ss w<rd>'%+=#?;"`
	sim := startSim(t, func(c *panossim.Config) { c.Admins = append(c.Admins, panossim.Admin{Name: admin, Password: pass}) })
	c := newClient(t, sim, panosclient.Config{Username: admin, Password: pass})
	ctx := ctxT(t)
	profile := "web & <api> 'prod'"
	xp, err := panosclient.EntryXPath("/config/shared/ssl-tls-service-profile", profile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, xp, "<certificate>"+panosclient.Escape("sim-factory-web")+"</certificate>"); err != nil {
		t.Fatal(err)
	}
	res, err := c.Get(ctx, xp)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Child("entry").Attr("name"); got != profile {
		t.Errorf("profile name came back as %q, want %q", got, profile)
	}
	// The predicate form on a child value, with quotes and markup in it.
	byCert, err := c.Get(ctx, "/config/shared/ssl-tls-service-profile/entry[./certificate='sim-factory-web']")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(byCert.All("entry")); n != 2 {
		t.Errorf("%d profiles use sim-factory-web, want 2", n)
	}
}

func TestAbsentObjects(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	_, err := c.Get(ctx, "/config/shared/certificate/entry[@name='nope']")
	if ae := asAPIError(t, err); !ae.NotFound() || ae.Code != "7" {
		t.Errorf("get absent: %v, want code 7", err)
	}
	_, err = c.Show(ctx, "/config/shared/certificate/entry[@name='nope']")
	if ae := asAPIError(t, err); !ae.NotFound() {
		t.Errorf("show absent: %v, want No such node", err)
	}
	_, err = c.Get(ctx, "config/shared")
	if ae := asAPIError(t, err); ae.Code != "6" {
		t.Errorf("relative xpath: %v, want code 6", err)
	}
	err = c.Set(ctx, "/config/shared/ssl-tls-service-profile/entry[@name='p']", "<no-such-field>x</no-such-field>")
	if ae := asAPIError(t, err); ae.Code != "12" || !strings.Contains(ae.Message(), "unexpected here") {
		t.Errorf("set of an unknown element: %v, want code 12 unexpected here", err)
	}
	err = c.Delete(ctx, "/config/shared/certificate/entry[@name='sim-factory-web']")
	if ae := asAPIError(t, err); ae.Code != "10" || !strings.Contains(ae.Message(), "web-tls") {
		t.Errorf("delete of a referenced certificate: %v, want code 10 naming web-tls", err)
	}
}

func generate(t *testing.T, ctx context.Context, c *panosclient.Client, name string) {
	t.Helper()
	cmd := "<request><certificate><generate><certificate-name>" + name + "</certificate-name><name>gen.example</name>" +
		"<algorithm><ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA></algorithm><digest>sha256</digest><signed-by>external</signed-by>" +
		"<hostname><member>gen.example</member></hostname></generate></certificate></request>"
	if _, err := c.Op(ctx, cmd); err != nil {
		t.Fatal(err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestExportAndImportChecks(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	generate(t, ctx, c, "gen1")
	_, err := c.Export(ctx, url.Values{"category": {"certificate"}, "certificate-name": {"gen1"}})
	if ae := asAPIError(t, err); ae.Code != "400" || !strings.Contains(ae.Message(), `"format" is required`) {
		t.Errorf("export without format: %v", err)
	}
	raw, err := c.Export(ctx, url.Values{"category": {"certificate"}, "certificate-name": {"gen1"}, "format": {"pkcs10"}, "include-key": {"no"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("BEGIN CERTIFICATE REQUEST")) {
		t.Fatalf("export is not a CSR: %q", raw)
	}
	// The device pairs an imported certificate with the pending key and refuses another key's.
	_, err = c.Import(ctx, url.Values{"category": {"certificate"}, "certificate-name": {"gen1"}, "format": {"pem"}}, "c.pem", selfSignedPEM(t))
	if ae := asAPIError(t, err); !strings.Contains(ae.Message(), "does not match the private key") {
		t.Errorf("import for another key: %v", err)
	}
	// A certificate without a pending entry is imported as a CA-style entry without key.
	if _, err := c.Import(ctx, url.Values{"category": {"certificate"}, "certificate-name": {"other ca"}, "format": {"pem"}}, "c.pem", selfSignedPEM(t)); err != nil {
		t.Fatal(err)
	}
	if got := sim.Candidate("/config/shared/certificate/entry[@name='other ca']/private-key"); got != "" {
		t.Errorf("a keyless import got a private key: %s", got)
	}
	if got := sim.Running("/config/shared/certificate/entry[@name='other ca']"); got != "" {
		t.Error("an import is in the running configuration before any commit")
	}
}

func TestImportRejectsQuotedBoundary(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	key, err := sim.IssueKey(user)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("type", "import")
	part, _ := w.CreateFormFile("file", "c.pem")
	_, _ = part.Write(selfSignedPEM(t))
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+"/api/", &body)
	req.Header.Set("Content-Type", `multipart/form-data; boundary="`+w.Boundary()+`"`)
	req.Header.Set("X-PAN-KEY", key)
	res, err := httpClient(t, sim).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("quoted boundary answered %d, want 400", res.StatusCode)
	}
}

func TestCommitJobs(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.CommitDuration = 500 * time.Millisecond })
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	ans, err := c.Commit(ctx, "<commit><description>nothing</description></commit>", false)
	if err != nil || ans.JobID != "" {
		t.Fatalf("commit with no changes: %+v, %v; want no job", ans, err)
	}
	generate(t, ctx, c, "gen2")
	ans, err = c.Commit(ctx, "<commit><description>one</description></commit>", false)
	if err != nil || ans.JobID == "" {
		t.Fatalf("commit: %+v, %v", ans, err)
	}
	first, err := c.Job(ctx, ans.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if first.Finished() {
		t.Errorf("job finished at once; commits take time")
	}
	job, err := c.WaitForJob(ctx, ans.JobID, 20*time.Millisecond)
	if err != nil || !job.OK() {
		t.Fatalf("job: %+v, %v", job, err)
	}
	if sim.Running("/config/shared/certificate/entry[@name='gen2']") == "" {
		t.Error("the committed entry is not in the running configuration")
	}
	// A failing job: FIN/FAIL with its messages, nothing changes.
	sim.FailCommits(1, "Validation Error:", "custom failure <x> & 'y'")
	generate(t, ctx, c, "gen3")
	ans, err = c.Commit(ctx, "<commit/>", false)
	if err != nil {
		t.Fatal(err)
	}
	job, err = c.WaitForJob(ctx, ans.JobID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if job.OK() || job.Result != "FAIL" || !strings.Contains(strings.Join(job.Details, "\n"), "custom failure <x> & 'y'") {
		t.Errorf("failed job: %+v", job)
	}
	if sim.Running("/config/shared/certificate/entry[@name='gen3']") != "" {
		t.Error("a failed commit changed the running configuration")
	}
	// <partial> without action=partial is taken too, as pango, pan-os-python and pan-python send it.
	generate(t, ctx, c, "gen4")
	ans, err = c.Commit(ctx, "<commit><partial><admin><member>certfleet</member></admin></partial></commit>", false)
	if err != nil || ans.JobID == "" {
		t.Fatalf("partial commit without action=partial: %+v, %v", ans, err)
	}
}

// A partial commit by one admin leaves another admin's changes pending.
func TestPartialCommitByAdmin(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	ctx := ctxT(t)
	mine := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	theirs := newClient(t, sim, panosclient.Config{Username: "admin", Password: "admin-sim-password"})
	generate(t, ctx, theirs, "theirs")
	generate(t, ctx, mine, "mine")
	ans, err := mine.Commit(ctx, "<commit><partial><admin><member>certfleet</member></admin></partial></commit>", true)
	if err != nil {
		t.Fatal(err)
	}
	if job, err := mine.WaitForJob(ctx, ans.JobID, 20*time.Millisecond); err != nil || !job.OK() {
		t.Fatalf("job %+v, %v", job, err)
	}
	if sim.Running("/config/shared/certificate/entry[@name='mine']") == "" {
		t.Error("my change was not committed")
	}
	if sim.Running("/config/shared/certificate/entry[@name='theirs']") != "" {
		t.Error("another admin's change was committed by my partial commit")
	}
	if n := sim.PendingChanges(); n != 1 {
		t.Errorf("%d pending changes, want 1 (theirs)", n)
	}
}

func TestTransportFaults(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	c := newClient(t, sim, panosclient.Config{Username: user, Password: password})
	ctx := ctxT(t)
	if err := showInfo(ctx, c); err != nil {
		t.Fatal(err)
	}
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultUnavailable, Type: "op"})
	var he *panosclient.HTTPError
	if err := showInfo(ctx, c); !errors.As(err, &he) || he.StatusCode != 503 {
		t.Errorf("503 fault: %v", err)
	}
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultDropConnection, Type: "op"})
	var te *panosclient.TransportError
	if err := showInfo(ctx, c); !errors.As(err, &te) {
		t.Errorf("dropped connection: %v (%T)", err, err)
	}
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultForbidden, Type: "op"})
	if err := showInfo(ctx, c); err != nil {
		t.Errorf("one 403 with a keygen key should be retried after keygen: %v", err)
	}
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultSessionTimeout, Type: "op"})
	if err := showInfo(ctx, c); err != nil {
		t.Errorf("code 22 with a keygen key should be retried after keygen: %v", err)
	}
	static := newClient(t, sim, panosclient.Config{APIKey: mustKey(t, sim)})
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultSessionTimeout, Type: "op"})
	if ae := asAPIError(t, showInfo(ctx, static)); !ae.SessionExpired() {
		t.Errorf("code 22 with a static key: %v", ae)
	}
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultInternalError, Type: "op"})
	if ae := asAPIError(t, showInfo(ctx, static)); ae.Code != "21" {
		t.Errorf("internal error fault: %v", ae)
	}
	sim.SetLatency(300 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := showInfo(short, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow device with a short deadline: %v", err)
	}
}

func mustKey(t *testing.T, sim *panossim.Sim) string {
	t.Helper()
	key, err := sim.IssueKey(user)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
