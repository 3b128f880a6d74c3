package icontrol_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
)

// TestWithSecret: the secret reaches the device in place of the placeholder (token and basic
// auth), the caller's slice is left as it was, errors do not carry it, and a secret that would
// need JSON escaping is refused before anything is sent.
func TestWithSecret(t *testing.T) {
	for _, basic := range []bool{false, true} {
		sim := startSim(t, bigipsim.DefaultConfig())
		c := newClient(t, sim, icontrol.Config{BasicAuth: basic})
		ctx := ctxFor(t)
		if err := c.Login(ctx); err != nil {
			t.Fatal(err)
		}
		secret := []byte("Zm9vYmFyLXNlY3JldC1wYXNzcGhyYXNlLTAxMjM0NTY3")
		c.AddSecretBytes(secret)
		body := map[string]any{"name": "k.key", "partition": "Common", "keyType": "ec-private", "curveName": "prime256v1",
			"securityType": "password", "passphrase": icontrol.SecretPlaceholder}
		if err := c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, body, nil, icontrol.WithSecret(secret)); err != nil {
			t.Fatalf("basic %v: create key with a secret: %v", basic, err)
		}
		if got, ok := sim.KeyPassphrase("/Common/k.key"); !ok || got != string(secret) {
			t.Fatalf("basic %v: the device got passphrase %q, want the secret", basic, got)
		}
		if !slices.Equal(secret, []byte("Zm9vYmFyLXNlY3JldC1wYXNzcGhyYXNlLTAxMjM0NTY3")) {
			t.Fatal("Send changed the caller's secret")
		}
		// The device echoes the request: the error must not carry the secret.
		sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/sys/crypto/key", Status: http.StatusBadRequest, EchoRequest: true})
		body["name"] = "k2.key"
		err := c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, body, nil, icontrol.WithSecret(secret))
		if err == nil || strings.Contains(err.Error(), string(secret)) {
			t.Fatalf("basic %v: echoed error %v", basic, err)
		}
		err = c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, body, nil, icontrol.WithSecret([]byte(`needs"escaping`)))
		if err == nil || !strings.Contains(err.Error(), "escaping") {
			t.Fatalf("a secret that needs escaping: %v", err)
		}
	}
}
