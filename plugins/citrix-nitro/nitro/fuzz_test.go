package nitro

import (
	"context"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk/fuzzwire"
)

// FuzzNITROAnswers gives every read the plugin makes an arbitrary NITRO answer (status and JSON
// body): nothing may panic, and an error's text stays bounded whatever the appliance sends.
func FuzzNITROAnswers(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"errorcode":0,"message":"Done","severity":"NONE","sslcertkey":[{"certkey":"www-1","cert":"/nsconfig/ssl/www-1.crt","key":"/nsconfig/ssl/www-1.key","daystoexpiration":"42","linkcertkeyname":"ca"}]}`},
		{200, `{"errorcode":0,"lbvserver":[{"name":"vs_www_443","servicetype":"SSL","ipv46":"127.0.0.1","port":443}]}`},
		{200, `{"errorcode":0,"sslvserver_sslcertkey_binding":[{"vservername":"vs","certkeyname":"www-1","snicert":true}]}`},
		{200, `{"errorcode":0,"systemfile":[{"filename":"www.csr","filecontent":"LS0tLS1CRUdJTg=="}]}`},
		{200, `{"errorcode":0,"nsversion":[{"version":"NetScaler NS14.1: Build 25.53.nc"}]}`},
		{404, `{"errorcode":258,"message":"No such resource [certkey, www]","severity":"ERROR"}`},
		{409, `{"errorcode":1642,"message":"Resource already exists","severity":"ERROR"}`},
		{207, `{"errorcode":1,"severity":"WARNING"}`}, {500, `<html>oops</html>`}, {200, ``}, {200, `null`},
		{200, `{"errorcode":"x"}`}, {200, `{"sslcertkey":{"certkey":1}}`}, {200, `{"daystoexpiration":1e400}`},
		{401, strings.Repeat(`{"a":`, 500)}, {200, `{"errorcode":0,"message":"` + strings.Repeat("x", 70000) + `"}`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c := New("https://adc.invalid", Options{Mode: AuthHeaders, HTTPClient: fuzzwire.Client(status, body), Username: "u", Password: "p"})
		ctx := context.Background()
		check := func(err error) {
			if err != nil && len(err.Error()) > 100_000 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
		}
		_, err := c.Version(ctx)
		check(err)
		_, err = c.CertKeys(ctx)
		check(err)
		_, _, err = c.GetCertKey(ctx, "www-1")
		check(err)
		_, err = c.VServers(ctx, "lbvserver")
		check(err)
		_, err = c.Bindings(ctx, "vs_www_443")
		check(err)
		_, err = c.AllBindings(ctx)
		check(err)
		_, err = c.Places(ctx)
		check(err)
		_, err = c.VPNGlobalCertKeys(ctx)
		check(err)
		_, err = c.SAMLActions(ctx)
		check(err)
		_, err = c.DefaultProfileEnabled(ctx)
		check(err)
		_, err = c.SSLVServer(ctx, "vs_www_443")
		check(err)
		_, _, err = c.Download(ctx, "/nsconfig/ssl/www.csr")
		check(err)
		check(c.SaveConfig(ctx))
	})
}
