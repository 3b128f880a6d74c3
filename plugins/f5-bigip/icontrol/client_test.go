package icontrol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

func startSim(t *testing.T, cfg bigipsim.Config) *bigipsim.Sim {
	t.Helper()
	sim, err := bigipsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func newClient(t *testing.T, sim *bigipsim.Sim, cfg icontrol.Config) *icontrol.Client {
	t.Helper()
	hc, err := sdk.NewHTTPClient(sdk.Target{TLS: sdk.TLSConfig{CABundlePEM: sim.CACertPEM()}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseURL, cfg.HTTPClient = sim.URL(), hc
	if cfg.Username == "" {
		cfg.Username, cfg.Password = "admin", "admin-sim-password"
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 5 * time.Millisecond
	}
	c, err := icontrol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func apiError(t *testing.T, err error) *icontrol.Error {
	t.Helper()
	var e *icontrol.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *icontrol.Error", err, err)
	}
	return e
}

func TestLoginLogoutAndExpiry(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	ctx := ctxFor(t)
	c := newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "certfleet-sim-password"})
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.ActiveTokens("certfleet"); n != 1 {
		t.Fatalf("%d tokens after login", n)
	}
	// The token expires in the middle of the session: the client logs in again, once.
	sim.ExpireTokens()
	if err := c.Get(ctx, icontrol.PathDevice, nil); err != nil {
		t.Fatalf("GET after the token expired: %v", err)
	}
	if n := len(sim.TokensIssued()); n != 2 {
		t.Fatalf("%d logins, want 2 (one again after the expiry)", n)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.ActiveTokens("certfleet"); n != 0 {
		t.Fatalf("%d tokens after logout", n)
	}
	if err := c.Get(ctx, icontrol.PathDevice, nil); err == nil {
		t.Fatal("GET after logout succeeded")
	}
}

func TestAuthenticationErrors(t *testing.T) {
	t.Parallel()
	cfg := bigipsim.DefaultConfig()
	cfg.TokenLimit = 2
	cfg.Users = append(cfg.Users, bigipsim.User{Name: "ldapuser", Password: "ldap-password", Role: "admin", Provider: "ldap"})
	sim := startSim(t, cfg)
	ctx := ctxFor(t)

	err := newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "wrong-password-xyz"}).Login(ctx)
	if !icontrol.IsAuthFailure(err) || strings.Contains(err.Error(), "wrong-password-xyz") {
		t.Fatalf("bad password: %v (the device echoes the request; the error must not)", err)
	}
	err = newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "wrong-password-xyz", BasicAuth: true}).Get(ctx, icontrol.PathDevice, nil)
	if !icontrol.IsAuthFailure(err) {
		t.Fatalf("bad password with basic auth: %v", err)
	}
	// Remote users log in with their provider only, and never with basic auth.
	if err := newClient(t, sim, icontrol.Config{Username: "ldapuser", Password: "ldap-password"}).Login(ctx); !icontrol.IsAuthFailure(err) {
		t.Fatalf("remote user with provider tmos: %v", err)
	}
	if err := newClient(t, sim, icontrol.Config{Username: "ldapuser", Password: "ldap-password", LoginProvider: "ldap"}).Login(ctx); err != nil {
		t.Fatalf("remote user with provider ldap: %v", err)
	}
	// At most TokenLimit tokens per user; the built-in admin is exempt.
	for i := range 2 {
		if err := newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "certfleet-sim-password"}).Login(ctx); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	err = newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "certfleet-sim-password"}).Login(ctx)
	if !icontrol.IsTokenLimit(err) || apiError(t, err).Status != http.StatusBadRequest {
		t.Fatalf("third login: %v, want the token limit (400)", err)
	}
	for range 3 {
		if err := newClient(t, sim, icontrol.Config{}).Login(ctx); err != nil {
			t.Fatalf("admin login past the limit: %v", err)
		}
	}
	// A role without shell access may not run util/bash.
	_, err = newClient(t, sim, icontrol.Config{Username: "certfleet", Password: "certfleet-sim-password", BasicAuth: true}).RunBash(ctx, "tmsh list sys crypto csr x")
	if !icontrol.IsForbidden(err) {
		t.Fatalf("util/bash as resource-admin: %v", err)
	}
}

func TestTypedErrors(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	ctx := ctxFor(t)
	c := newClient(t, sim, icontrol.Config{BasicAuth: true})

	err := c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCert, "/Common/nope.crt"), nil)
	if e := apiError(t, err); !icontrol.IsNotFound(err) || e.ID() != icontrol.IDNotFound || e.Status != http.StatusNotFound {
		t.Fatalf("missing certificate: %v (id %s)", err, e.ID())
	}
	key := map[string]any{"name": "dup.key", "partition": "Common", "keyType": "ec-private", "curveName": "prime256v1",
		"securityType": "password", "passphrase": "secret-passphrase-001"}
	c.AddSecret("secret-passphrase-001")
	if err := c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, key, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, key, nil)
	if e := apiError(t, err); !icontrol.IsAlreadyExists(err) || e.ID() != icontrol.IDAlreadyExists || e.Status != http.StatusConflict {
		t.Fatalf("duplicate key: %v", err)
	}
	// A certificate for the on-box key: CSR read with util/bash, signed, uploaded, installed.
	if err := c.Send(ctx, http.MethodPost, icontrol.PathCryptoCSR, map[string]any{"name": "dup.csr", "partition": "Common",
		"key": "/Common/dup.key", "commonName": "dup.example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := c.RunBash(ctx, "tmsh list sys crypto csr /Common/dup.csr")
	if err != nil || !strings.HasPrefix(out, "-----BEGIN CERTIFICATE REQUEST-----") {
		t.Fatalf("tmsh list sys crypto csr: %q, %v", out, err)
	}
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignCSR(out, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	local, err := c.Upload(ctx, "dup.crt", []byte(sdk.EncodeCertificatePEM(cert)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, map[string]any{"command": "install", "name": "dup.crt", "partition": "Common", "from-local-file": local}, nil); err != nil {
		t.Fatal(err)
	}
	// The pair in a profile: without the passphrase, or with a wrong one, 01070313.
	profile := icontrol.ObjectPath(icontrol.PathClientSSL, "/Common/api_clientssl")
	for _, pass := range []string{"", "not-the-passphrase"} {
		err = c.Send(ctx, http.MethodPatch, profile, map[string]any{"certKeyChain": []icontrol.CertKeyChain{{Name: "x", Cert: "/Common/dup.crt", Key: "/Common/dup.key", Passphrase: pass}}}, nil)
		if !icontrol.IsBadPassphrase(err) || apiError(t, err).ID() != icontrol.IDBadPassphrase {
			t.Fatalf("profile with passphrase %q: %v", pass, err)
		}
	}
	if err := c.Send(ctx, http.MethodPatch, profile, map[string]any{"certKeyChain": []icontrol.CertKeyChain{{Name: "x", Cert: "/Common/dup.crt", Key: "/Common/dup.key", Passphrase: "secret-passphrase-001"}}}, nil); err != nil {
		t.Fatalf("profile with the right passphrase: %v", err)
	}
	// A certificate for another key is refused.
	err = c.Send(ctx, http.MethodPatch, profile, map[string]any{"certKeyChain": []icontrol.CertKeyChain{{Name: "x", Cert: "/Common/default.crt", Key: "/Common/dup.key", Passphrase: "secret-passphrase-001"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("profile with a certificate for another key: %v", err)
	}
	err = c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, map[string]any{"name": "k2.key", "colour": "blue"}, nil)
	if !icontrol.IsUnexpectedProperty(err) {
		t.Fatalf("unknown property: %v", err)
	}
	// A device that echoes the body: the registered secret never reaches the error.
	sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/sys/crypto/key", Status: http.StatusBadRequest, EchoRequest: true})
	err = c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, key, nil)
	if err == nil || strings.Contains(err.Error(), "secret-passphrase-001") || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("echoed error: %v", err)
	}
	// A page instead of JSON, and a busy device: retried.
	sim.InjectFault(bigipsim.Fault{Status: http.StatusServiceUnavailable, HTML: true, Message: "Configuration Utility restarting..."})
	sim.Busy(2)
	if err := c.Get(ctx, icontrol.PathDevice, nil); err != nil {
		t.Fatalf("GET on a device busy for 3 requests: %v", err)
	}
	sim.Busy(4)
	if err := c.Get(ctx, icontrol.PathDevice, nil); !icontrol.IsRetryable(err) {
		t.Fatalf("GET on a device busy for longer than the retries: %v", err)
	}
	// A cancelled context ends the call with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Get(cctx, icontrol.PathDevice, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("GET with a cancelled context: %v", err)
	}
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	ctx := ctxFor(t)
	c := newClient(t, sim, icontrol.Config{})
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)

	id, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, icontrol.PathDevice, nil, icontrol.InTransaction(id)); err == nil {
		t.Fatal("a GET inside a transaction was accepted")
	}
	prof := map[string]any{"name": "txn_a", "partition": "Common", "defaultsFrom": "/Common/clientssl"}
	if err := c.Send(ctx, http.MethodPost, icontrol.PathClientSSL, prof, nil, icontrol.InTransaction(id)); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, "/Common/txn_a"), nil); !icontrol.IsNotFound(err) {
		t.Fatalf("a queued change is visible before the commit: %v", err)
	}
	attach := map[string]any{"profiles": []icontrol.VirtualProfile{{Name: "/Common/tcp", Context: "all"}, {Name: "/Common/txn_a", Context: "clientside"}}}
	if err := c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathVirtual, "/Common/vs_api"), attach, nil, icontrol.InTransaction(id)); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitTransaction(ctx, id); err != nil {
		t.Fatalf("commit: %v", err)
	}
	v, err := c.GetVirtual(ctx, "/Common/vs_api")
	if err != nil || len(v.ProfilesReference.Items) != 2 || v.ProfilesReference.Items[1].Path() != "/Common/txn_a" {
		t.Fatalf("after commit vs_api has %+v, %v", v.ProfilesReference.Items, err)
	}

	// One bad command fails the whole transaction; the good one before it is not applied.
	id, err = c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prof["name"] = "txn_b"
	if err := c.Send(ctx, http.MethodPost, icontrol.PathClientSSL, prof, nil, icontrol.InTransaction(id)); err != nil {
		t.Fatal(err)
	}
	bad := map[string]any{"profiles": []icontrol.VirtualProfile{{Name: "/Common/no_such_profile"}}}
	if err := c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathVirtual, "/Common/vs_api"), bad, nil, icontrol.InTransaction(id)); err != nil {
		t.Fatal(err)
	}
	err = c.CommitTransaction(ctx, id)
	if !icontrol.IsNotFound(err) || !strings.Contains(err.Error(), "transaction failed:01020036") {
		t.Fatalf("commit of a bad transaction: %v", err)
	}
	if err := c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, "/Common/txn_b"), nil); !icontrol.IsNotFound(err) {
		t.Fatalf("a failed transaction left txn_b behind: %v", err)
	}
}

func TestUploadDownloadAndPaging(t *testing.T) {
	t.Parallel()
	cfg := bigipsim.DefaultConfig()
	cfg.MaxUploadChunk = 1024
	sim := startSim(t, cfg)
	ctx := ctxFor(t)
	c := newClient(t, sim, icontrol.Config{BasicAuth: true, UploadChunkSize: 1000, PageSize: 2})
	data := make([]byte, 5500)
	_, _ = rand.Read(data)
	local, err := c.Upload(ctx, "blob.bin", data)
	if err != nil {
		t.Fatal(err)
	}
	if local != icontrol.DownloadsDir+"/blob.bin" || !sim.FileExists(local) {
		t.Fatalf("uploaded to %s", local)
	}
	if big := newClient(t, sim, icontrol.Config{BasicAuth: true, UploadChunkSize: 4096}); true {
		if _, err := big.Upload(ctx, "big.bin", data); err == nil {
			t.Fatal("a chunk larger than the device takes was accepted")
		}
	}
	// Round trip through the bulk area: chunked download, including the small-file case.
	if err := c.UnixMove(ctx, local, icontrol.BulkDir+"/blob.bin"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Download(ctx, "blob.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	small := newClient(t, sim, icontrol.Config{BasicAuth: true, UploadChunkSize: 1 << 20})
	if got, err := small.Download(ctx, "blob.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download in one chunk larger than the file: %d bytes, %v", len(got), err)
	}
	if err := c.UnixRemove(ctx, icontrol.BulkDir+"/blob.bin"); err != nil {
		t.Fatal(err)
	}
	if err := c.UnixRemove(ctx, icontrol.BulkDir+"/blob.bin"); err == nil {
		t.Fatal("removing a missing file succeeded")
	}
	// Paging: $top=2 over the folders and virtual servers, following nextLink.
	virtuals, err := icontrol.List[icontrol.Virtual](ctx, c, icontrol.PathVirtual, url.Values{"expandSubcollections": {"true"}})
	if err != nil || len(virtuals) != 3 {
		t.Fatalf("listed %d virtual servers, %v; want 3", len(virtuals), err)
	}
	tenant, err := icontrol.List[icontrol.Virtual](ctx, c, icontrol.PathVirtual, url.Values{"$filter": {"partition eq Tenant1"}})
	if err != nil || len(tenant) != 1 || tenant[0].FullPath != "/Tenant1/vs_shop" {
		t.Fatalf("filtered list: %+v, %v", tenant, err)
	}
}

func TestSaveSyncAndStatus(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	ctx := ctxFor(t)
	c := newClient(t, sim, icontrol.Config{BasicAuth: true})
	if status, _, err := c.SyncStatus(ctx); err != nil || status != "In Sync" {
		t.Fatalf("sync status at start: %q, %v", status, err)
	}
	if err := c.Send(ctx, http.MethodPost, icontrol.PathClientSSL, map[string]any{"name": "p", "partition": "Common"}, nil); err != nil {
		t.Fatal(err)
	}
	if status, _, err := c.SyncStatus(ctx); err != nil || status != "Changes Pending" {
		t.Fatalf("sync status after a change: %q, %v", status, err)
	}
	sim.FailSave(1)
	if err := c.SaveConfig(ctx); err == nil || apiError(t, err).ID() != "01070711" {
		t.Fatalf("failing save: %v", err)
	}
	if err := c.SaveConfig(ctx); err != nil || sim.Saves() != 1 {
		t.Fatalf("save: %v", err)
	}
	if err := c.ConfigSync(ctx, "no_such_group"); !icontrol.IsNotFound(err) {
		t.Fatalf("sync to a missing group: %v", err)
	}
	if err := c.ConfigSync(ctx, "dg_failover"); err != nil {
		t.Fatal(err)
	}
	if status, _, err := c.SyncStatus(ctx); err != nil || status != "In Sync" {
		t.Fatalf("sync status after sync: %q, %v", status, err)
	}
}
