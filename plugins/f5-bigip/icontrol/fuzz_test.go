package icontrol

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/fuzzwire"
)

// FuzzIControlAnswers gives the iControl REST client's reads arbitrary answers (status and JSON
// body): nothing may panic, and error texts stay bounded whatever the device sends.
func FuzzIControlAnswers(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"kind":"tm:sys:file:ssl-cert:ssl-certcollectionstate","items":[{"name":"www_1.crt","partition":"Common","fullPath":"/Common/www_1.crt","expirationDate":1780000000,"fingerprint":"SHA256/AA:BB","subject":"CN=www.example.com"}]}`},
		{200, `{"items":[{"name":"cs","fullPath":"/Common/cs","certKeyChain":[{"name":"default","cert":"/Common/www_1.crt","key":"/Common/www_1.key","chain":"none"}]}]}`},
		{200, `{"name":"vs_www","fullPath":"/Common/vs_www","destination":"/Common/127.0.0.1:443","profilesReference":{"link":"https://localhost/mgmt/tm/ltm/virtual/~Common~vs_www/profiles"}}`},
		{200, `{"items":[],"nextLink":"https://localhost/mgmt/tm/sys/file/ssl-cert?$skip=500"}`},
		{200, `{"transId":1712345678,"state":"STARTED"}`}, {200, `{"commandResult":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"}`},
		{200, `{"entries":{"https://localhost/mgmt/tm/cm/sync-status/0":{"nestedStats":{"entries":{"status":{"description":"In Sync"}}}}}}`},
		{400, `{"code":400,"message":"01070711:3: Caught configuration exception","errorStack":[],"apiError":3}`},
		{401, `{"code":401,"message":"Authorization failed: no user authentication header or token detected."}`},
		{503, `<html><body>Configuration Utility restarting...</body></html>`}, {404, `{"code":404,"message":"01020036:3: The requested ... was not found."}`},
		{200, ``}, {200, `null`}, {200, `{"items":{"x":1}}`}, {200, `{"expirationDate":1e400}`},
		{200, strings.Repeat(`[`, 10000)}, {500, `{"message":"` + strings.Repeat("x", 70000) + `"}`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c, err := New(Config{BaseURL: "https://bigip.invalid", HTTPClient: fuzzwire.Client(status, body), Username: "u", Password: "p",
			BasicAuth: true, MaxRetries: 1, RetryBackoff: time.Nanosecond, PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		check := func(err error) {
			if err != nil && len(err.Error()) > 100_000 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
		}
		_, err = List[CertFile](ctx, c, PathFileCert, nil)
		check(err)
		_, err = List[ClientSSLProfile](ctx, c, PathClientSSL, nil)
		check(err)
		_, err = c.GetVirtual(ctx, "/Common/vs_www")
		check(err)
		_, err = c.VirtualProfiles(ctx, "/Common/vs_www")
		check(err)
		_, err = c.BeginTransaction(ctx)
		check(err)
		_, err = c.RunBash(ctx, "cat /config/ssl/ssl.csr/www.csr")
		check(err)
		_, _, err = c.SyncStatus(ctx)
		check(err)
	})
}
