package citrixnitro_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	citrixnitro "github.com/certfleet/certfleet/plugins/citrix-nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

func TestSessionExpiryReLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	e.sim.Calls()
	// The session expires under the call: the first read after login gets 444.
	e.sim.FailNext("GET sslcertkey", 1, 401, 444)
	if _, err := e.p.Inventory(e.ctx, e.tgt); err != nil {
		t.Fatalf("Inventory across an expired session: %v", err)
	}
	if n := countCalls(e.sim.Calls(), "POST /nitro/v1/config/login"); n != 2 {
		t.Errorf("%d logins, want a second one after 444", n)
	}
	e.sim.FailNext("GET sslcertkey", 1, 401, 1027)
	if _, err := e.p.Inventory(e.ctx, e.tgt); err != nil {
		t.Fatalf("Inventory across 1027: %v", err)
	}
	if n := e.sim.Sessions(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	a := e.enroll("api", "api.example.com")

	t.Run("BadLogin354", func(t *testing.T) {
		bad := e.tgt
		bad.Credentials.Password = "nope-nope"
		_, err := e.p.CheckTarget(e.ctx, bad)
		ve := wantErr(t, "bad password", err, codes.Unauthenticated, sdk.ReasonBadCredentials)
		if strings.Contains(err.Error(), "nope-nope") {
			t.Error("the error shows the password")
		}
		if ve.VendorCode != "354" {
			t.Errorf("vendor code %q, want 354", ve.VendorCode)
		}
	})
	t.Run("CheckTarget", func(t *testing.T) {
		info, err := e.p.CheckTarget(e.ctx, e.tgt)
		if err != nil || info.SoftwareVersion != "14.1-25.56" || info.Details["partition"] != "default" {
			t.Errorf("CheckTarget: %+v %v", info, err)
		}
	})
	t.Run("UnknownVServer461", func(t *testing.T) {
		// An LB vserver named as a Gateway one is unknown as a Gateway vserver.
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindGateway, Name: "vs_www_443"}}})
		ve := wantErr(t, "LB vserver named as Gateway", err, codes.NotFound, sdk.ReasonUnknownBinding)
		if ve.VendorCode != "461" {
			t.Errorf("vendor code %q, want 461", ve.VendorCode)
		}
	})
	t.Run("NotSSL1544", func(t *testing.T) {
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{{Kind: citrixnitro.KindLB, Name: "vs_plain_80"}}})
		wantErr(t, "HTTP vserver", err, codes.FailedPrecondition, "NOT_SSL_VSERVER")
	})
	t.Run("UnknownCertRef", func(t *testing.T) {
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: "nope-toy55100000000", Bindings: []sdk.Binding{lbWWW}})
		wantErr(t, "unknown cert_ref", err, codes.NotFound, sdk.ReasonNotFound)
	})
	t.Run("FileExists1642", func(t *testing.T) {
		csr, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "dup", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384},
			Subject: sdk.Subject{CommonName: "dup.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := e.ca.SignCSR(csr.PEM, time.Hour)
		req := sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()}
		e.sim.FailNext("POST systemfile", 1, 409, 1642)
		_, err = e.p.ImportCert(e.ctx, e.tgt, req)
		ve := wantErr(t, "upload onto an existing file", err, codes.AlreadyExists, sdk.ReasonAlreadyExists)
		if ve.VendorCode != "1642" {
			t.Errorf("vendor code %q, want 1642", ve.VendorCode)
		}
		// ImportCert is idempotent: a retry, and a second call, find their own work done.
		for i := range 2 {
			if _, err := e.p.ImportCert(e.ctx, e.tgt, req); err != nil {
				t.Fatalf("ImportCert again (%d): %v", i, err)
			}
		}
	})
	t.Run("NameCollision", func(t *testing.T) {
		// The appliance already has a key file of the drawn name: GenerateCSR draws another.
		e.sim.FailNext("POST sslecdsakey", 1, 409, 1642)
		e.enroll("collide", "collide.example.com")
	})
	t.Run("CAReused273", func(t *testing.T) {
		e.enroll("api2", "api2.example.com")
		cas := 0
		for _, c := range e.inventory() {
			if c.IsCA {
				cas++
			}
		}
		if cas != 2 {
			t.Errorf("%d CA certificates after several imports with one chain, want 2 (reused)", cas)
		}
	})
	t.Run("SameIssuerAndSerialOtherCA", func(t *testing.T) {
		// Another CA with the same names and serials: the appliance calls its certificates
		// duplicates, and the plugin must not link to the wrong issuer.
		other := *e
		other.ca = mustCA(t)
		csr, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "twin", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			Subject: sdk.Subject{CommonName: "twin.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := other.ca.SignCSR(csr.PEM, time.Hour)
		_, err = e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: other.ca.ChainPEM()})
		wantErr(t, "a chain colliding with another CA's", err, codes.FailedPrecondition, sdk.ReasonAlreadyExists)
	})
	t.Run("ChainWithALeaf", func(t *testing.T) {
		_, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: a.ref, CertPEM: sdk.EncodeCertificatePEM(a.cert),
			ChainPEM: []string{sdk.EncodeCertificatePEM(e.enroll("leaf", "leaf.example.com").cert)}})
		wantErr(t, "a leaf in chain_pem", err, codes.InvalidArgument, sdk.ReasonInvalidRequest)
	})
	t.Run("SaveFails", func(t *testing.T) {
		e.sim.FailSave(1)
		_, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{})
		ve := wantErr(t, "failed save", err, codes.Aborted, sdk.ReasonCommitFailed)
		if ve.VendorCode == "" {
			t.Error("no vendor code on a failed save")
		}
		if _, err := e.p.Commit(e.ctx, e.tgt, sdk.CommitRequest{}); err != nil {
			t.Fatalf("second save: %v", err)
		}
	})
	t.Run("ServerError599", func(t *testing.T) {
		e.sim.FailNext("POST sslrsakey", 1, 599, 1)
		_, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "x", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
			Subject: sdk.Subject{CommonName: "x.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		wantErr(t, "599", err, codes.FailedPrecondition, sdk.ReasonDeviceError)
	})
	t.Run("CSRFailureRemovesTheKey", func(t *testing.T) {
		e.sim.FailNext("POST sslcertreq", 1, 599, 1)
		before := len(e.sim.Files(""))
		_, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "y", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			Subject: sdk.Subject{CommonName: "y.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
		wantErr(t, "failed sslcertreq", err, codes.FailedPrecondition, sdk.ReasonDeviceError)
		if after := len(e.sim.Files("")); after != before {
			t.Errorf("%d files before, %d after a failed GenerateCSR; the key must be removed", before, after)
		}
	})
	t.Run("BadRequests", func(t *testing.T) {
		for what, call := range map[string]func() error{
			"P-521": func() error {
				_, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 521}, Subject: sdk.Subject{CommonName: "x", Organization: "O", Country: "GB", State: "S"}})
				return err
			},
			"no state": func() error {
				_, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "x", Organization: "O", Country: "GB"}})
				return err
			},
			"unknown target option": func() error {
				tg := e.tgt
				tg.Options = sdk.Options{"partiton": "x"}
				_, err := e.p.CheckTarget(e.ctx, tg)
				return err
			},
			"partition with header auth": func() error {
				tg := e.tgt
				tg.Options = sdk.Options{"partition": "p_tenant1", "auth": "headers"}
				_, err := e.p.CheckTarget(e.ctx, tg)
				return err
			},
			"plain http": func() error {
				tg := e.tgt
				tg.Address = strings.Replace(tg.Address, "https", "http", 1)
				_, err := e.p.CheckTarget(e.ctx, tg)
				return err
			},
			"unknown binding option": func() error {
				b := lbWWW
				b.Options = sdk.Options{"enable_snl": true}
				_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: a.ref, Bindings: []sdk.Binding{b}})
				return err
			},
			"other partition's token": func() error {
				tok := []byte(`{"v":2,"plugin":"citrix-nitro","partition":"p_tenant1","cert_ref":"x","entries":[]}`)
				return e.p.Rollback(e.ctx, e.tgt, tok)
			},
			"token with a bad entry": func() error {
				tok := []byte(`{"v":2,"plugin":"citrix-nitro","cert_ref":"x","entries":[{"mode":"update","slot":"a"}]}`)
				return e.p.Rollback(e.ctx, e.tgt, tok)
			},
		} {
			if err := call(); sdk.CodeOf(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", what, err)
			}
		}
	})
	t.Run("TLSVerifyFails", func(t *testing.T) {
		tg := e.tgt
		tg.TLS.CABundlePEM = ""
		_, err := e.p.CheckTarget(e.ctx, tg)
		wantErr(t, "unknown management CA", err, codes.FailedPrecondition, sdk.ReasonTLSVerify)
	})
	t.Run("Unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		tg := e.tgt
		tg.Address = "https://" + addr
		_, err = e.p.CheckTarget(e.ctx, tg)
		wantErr(t, "nothing listening", err, codes.Unavailable, sdk.ReasonUnreachable)
	})
	t.Run("Deadline", func(t *testing.T) {
		e.sim.SetLatency(300 * time.Millisecond)
		defer e.sim.SetLatency(0)
		ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
		defer cancel()
		_, err := e.p.Inventory(ctx, e.tgt)
		wantErr(t, "slow appliance", err, codes.DeadlineExceeded, "")
	})
	if n := e.sim.Sessions(); n != 0 {
		t.Errorf("%d sessions left open after the error paths", n)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW)
	next := e.enroll("www", "www.example.com")
	e.bind(next, lbWWW) // in place: certkey first.ref now carries next
	unbound := e.enroll("spare", "spare.example.com")
	keyOnly, err := e.p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "orphan", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "o.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"}})
	if err != nil {
		t.Fatal(err)
	}
	var ca string
	for ref, c := range e.inventory() {
		if c.IsCA && c.Subject == e.ca.Intermediate.Subject.String() {
			ca = ref
		}
	}
	e.sim.FailNext("DELETE sslcertkey", 1, 599, 1529)
	refused := e.enroll("refused", "refused.example.com")
	res, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{
		{CertRef: next.ref}, {CertRef: first.ref}, {CertRef: refused.ref}, {CertRef: unbound.ref}, {KeyRef: keyOnly.KeyRef}, {CertRef: ca}, {CertRef: "no such/name"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		removed bool
		reason  string
	}{
		{false, "still bound at lb-vserver/vs_www_443"},
		{true, "now carries " + next.ref},
		{false, "refused to delete"},
		{true, "deleted certkey " + unbound.ref},
		{true, "removed files"},
		{false, "is the issuer"},
		{false, "not a certkey or file name"},
	}
	for i, w := range want {
		if res[i].Removed != w.removed || !strings.Contains(res[i].Reason, w.reason) {
			t.Errorf("Cleanup of %+v: removed=%v %q; want removed=%v and %q", res[i].Object, res[i].Removed, res[i].Reason, w.removed, w.reason)
		}
	}
	e.wantServed("after Cleanup", "vs_www_443", "www.example.com", next)
	for _, f := range e.sim.Files("") {
		for _, gone := range []string{first.ref, unbound.ref, keyOnly.KeyRef} {
			if strings.Contains(f, gone) {
				t.Errorf("file %s of a removed object is left", f)
			}
		}
	}
}

// TestInventory: every certkey with its expiry, serial, subject, SANs, key and bindings, with
// daystoexpiration sent as a string.
func TestInventory(t *testing.T) {
	t.Parallel()
	cfg := nitrosim.DefaultConfig()
	cfg.DaysAsString = true
	e := newEnv(t, cfg, nil)
	www := e.enroll("www", "www.example.com", "www2.example.com")
	e.bind(www, lbWWW, gwVPN, sdk.Binding{Kind: citrixnitro.KindLB, Name: "vs_api_443", SNI: true})
	inv := e.inventory()
	if len(inv) != 4 {
		t.Errorf("%d certificates, want the leaf, two CA certificates and ns-server-certificate", len(inv))
	}
	if builtin := inv[nitrosim.BuiltinCertKey]; builtin.Serial == "" || builtin.KeyRef != "" {
		t.Errorf("the built-in certkey with its relative file names: %+v", builtin)
	}
	dc := inv[www.ref]
	want := sdk.Describe(www.cert)
	if dc.Serial != want.Serial || dc.Subject != want.Subject || !dc.NotAfter.Equal(www.cert.NotAfter) || dc.KeyRef != www.ref ||
		dc.SHA256Fingerprint != want.SHA256Fingerprint || len(dc.SANs.DNSNames) != 2 || dc.KeySpec != want.KeySpec || dc.IsCA {
		t.Errorf("inventory entry %+v, want %+v", dc, want)
	}
	got := map[string]bool{}
	for _, b := range dc.Bindings {
		got[b.String()] = true
	}
	if len(got) != 3 || !got["lb-vserver/vs_www_443"] || !got["gateway-vserver/gw_vpn_443"] || !got["lb-vserver/vs_api_443 (sni)"] {
		t.Errorf("bindings %v", dc.Bindings)
	}
}

// TestConcurrentDevices: one plugin value serves two appliances at once, each call with its
// own session, and none is left open.
func TestConcurrentDevices(t *testing.T) {
	t.Parallel()
	envs := []*env{newEnv(t, nitrosim.DefaultConfig(), nil), newEnv(t, nitrosim.DefaultConfig(), sdk.Options{"auth": "headers"})}
	p := envs[0].p
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, e := range envs {
		for j, b := range []sdk.Binding{lbWWW, gwVPN} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("d%d-%d.example.com", i, j)
				csr, err := p.GenerateCSR(e.ctx, e.tgt, sdk.CSRRequest{NameHint: "c", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
					Subject: sdk.Subject{CommonName: name, Organization: "Example", Country: "GB", State: "Yorkshire"}})
				if err != nil {
					errs <- err
					return
				}
				cert, err := e.ca.SignCSR(csr.PEM, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				res, err := p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()})
				if err == nil {
					_, err = p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: []sdk.Binding{b}})
				}
				if err == nil {
					_, err = p.Inventory(e.ctx, e.tgt)
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, e := range envs {
		if n := e.sim.Sessions(); n != 0 {
			t.Errorf("appliance %d: %d sessions left open", i, n)
		}
		for _, vs := range []string{"vs_www_443", "gw_vpn_443"} {
			if _, err := served(e.ctx, e.sim, vs, ""); err != nil {
				t.Errorf("appliance %d: %s serves nothing: %v", i, vs, err)
			}
		}
	}
}

// TestRepeatedAttemptLeavesOneKey: a plugin killed after GenerateCSR made the key and CSR files
// answers nobody; the core calls again with the same attempt ID. The second call deletes the
// files the first left and makes new ones under the same names, so the appliance holds one key
// for the attempt, the second CSR's, and a certificate for the first key is refused. Both ways an
// appliance may treat a key created onto an existing file (UNCONFIRMED: refused or replaced).
func TestRepeatedAttemptLeavesOneKey(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("overwrite key file %v", overwrite), func(t *testing.T) {
			cfg := nitrosim.DefaultConfig()
			cfg.OverwriteKeyFile = overwrite
			repeatedAttemptLeavesOneKey(t, cfg)
		})
	}
}

func repeatedAttemptLeavesOneKey(t *testing.T, cfg nitrosim.Config) {
	e := newEnv(t, cfg, nil)
	req := sdk.CSRRequest{NameHint: "retried", AttemptID: "0123456789abcdef01234567", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "retried.example.com", Organization: "Example", Country: "GB", State: "Yorkshire"},
		SANs:    sdk.SANs{DNSNames: []string{"retried.example.com"}}}
	lost, err := e.p.GenerateCSR(e.ctx, e.tgt, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.GenerateCSR(e.ctx, e.tgt, req)
	if err != nil {
		t.Fatalf("GenerateCSR again with the same attempt ID: %v", err)
	}
	var keys []string
	for _, f := range e.sim.Files("") {
		if strings.HasPrefix(f, "/nsconfig/ssl/retried") && strings.HasSuffix(f, ".key") {
			keys = append(keys, f)
		}
	}
	if len(keys) != 1 || keys[0] != "/nsconfig/ssl/"+again.KeyRef+".key" {
		t.Fatalf("key files of the attempt %v, want only %s.key", keys, again.KeyRef)
	}
	stale, err := e.ca.SignCSR(lost.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: lost.KeyRef, CertPEM: sdk.EncodeCertificatePEM(stale), ChainPEM: e.ca.ChainPEM()}); err == nil {
		t.Fatal("a certificate for the first call's key was installed: that key is still on the appliance")
	}
	cert, err := e.ca.SignCSR(again.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: again.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: e.ca.ChainPEM()}); err != nil {
		t.Fatalf("ImportCert for the second answer: %v", err)
	}
}
