package sopscodec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/secret"
)

// The fixtures are package secret's (core/secret/testdata), which also tests decryption through
// the helper end to end.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestIsSopsFile(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file string
		want bool
	}{
		{"age/creds.yaml", true},
		{"pgp/settings.partial.json", true},
		{"age/token.txt", true},
		{"plain/creds.yaml", false},
		{"plain/settings.json", false},
		{"plain/token.txt", false},
	} {
		if got := IsSopsFile(readTestdata(t, c.file), secret.FormatForPath(c.file)); got != c.want {
			t.Errorf("IsSopsFile(%s) = %v, want %v", c.file, got, c.want)
		}
	}
	if IsSopsFile([]byte("- a\n- b\n"), secret.FormatYAML) || IsSopsFile([]byte("not: [valid"), secret.FormatYAML) || IsSopsFile([]byte("sops"), secret.FormatBinary) {
		t.Error("IsSopsFile accepted a document without sops metadata")
	}
}

// serve runs one request through Serve as the helper does.
func serve(t *testing.T, req secret.SopsHelperRequest) secret.SopsHelperResponse {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Serve(context.Background(), bytes.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	var resp secret.SopsHelperResponse
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("response %q: %v", out.String(), err)
	}
	return resp
}

// TestServeAnswers: a plain document is answered as not encrypted, a sops document with its
// plaintext, and a failure with an error that keeps its sentinel across the wire.
func TestServeAnswers(t *testing.T) {
	t.Parallel()
	keys := string(readTestdata(t, "keys/age-test.txt"))
	plain := serve(t, secret.SopsHelperRequest{Protocol: secret.SopsHelperProtocol, Op: secret.SopsOpDecrypt, Format: "yaml", Data: readTestdata(t, "plain/creds.yaml")})
	if plain.Encrypted || plain.Data != nil || plain.Error != nil {
		t.Fatalf("plain document: %+v", plain)
	}
	dec := serve(t, secret.SopsHelperRequest{Protocol: secret.SopsHelperProtocol, Op: secret.SopsOpDecrypt, Format: "yaml", Data: readTestdata(t, "age/creds.yaml"), AgeIdentities: keys})
	if !dec.Encrypted || dec.Error != nil || !bytes.Contains(dec.Data, []byte("john_1234")) {
		t.Fatalf("sops document: %+v", dec)
	}
	tampered := bytes.Replace(readTestdata(t, "age/creds.yaml"), []byte("lastmodified: \""), []byte("lastmodified: \"1"), 1)
	bad := serve(t, secret.SopsHelperRequest{Protocol: secret.SopsHelperProtocol, Op: secret.SopsOpDecrypt, Format: "yaml", Data: tampered, AgeIdentities: keys})
	if bad.Error == nil || !errors.Is(bad.Error.Err(), secret.ErrMalformed) && !errors.Is(bad.Error.Err(), secret.ErrTampered) {
		t.Fatalf("tampered document: %+v", bad.Error)
	}
	other := serve(t, secret.SopsHelperRequest{Protocol: secret.SopsHelperProtocol, Op: secret.SopsOpDecrypt, Format: "yaml", Data: readTestdata(t, "age/creds.yaml"), AgeIdentities: string(readTestdata(t, "keys/age-other.txt"))})
	var ke *secret.KeyError
	if other.Error == nil || !errors.As(other.Error.Err(), &ke) || !errors.Is(ke, secret.ErrWrongKey) || !ke.AgeIdentitiesConfigured {
		t.Fatalf("wrong key: %+v", other.Error)
	}
	again := serve(t, secret.SopsHelperRequest{Protocol: secret.SopsHelperProtocol, Op: secret.SopsOpEncrypt, Format: "yaml", Data: readTestdata(t, "age/creds.yaml"), Encrypt: &secret.EncryptOptions{AgeRecipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}})
	if again.Error == nil || !errors.Is(again.Error.Err(), secret.ErrAlreadyEncrypted) {
		t.Fatalf("encrypting a sops document: %+v", again.Error)
	}
	old := serve(t, secret.SopsHelperRequest{Protocol: 0, Op: secret.SopsOpDecrypt, Format: "yaml", Data: []byte("a: b\n")})
	if old.Error == nil || !strings.Contains(old.Error.Message, "same release") {
		t.Fatalf("another protocol: %+v", old.Error)
	}
}
