package xms

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// The export sample of PDF-2021 has no line breaks at all; the 10.x documents' replies do.
func TestParsePEMWithAndWithoutLineBreaks(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	//lint:ignore SA1019 the server's format
	kblock, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", kder, []byte("pw"), x509.PEMCipher3DES) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	pretty := string(pem.EncodeToMemory(kblock)) + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	compact := strings.NewReplacer("\n\n", " ", "ENCRYPTED\n", "ENCRYPTED ", "\n", "").Replace(pretty)
	glued := strings.NewReplacer("\n\n", "", "\n", "").Replace(pretty)
	for name, text := range map[string]string{"pretty": pretty, "compact": compact, "glued": glued} {
		blocks, err := ParsePEM(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(blocks) != 2 || blocks[0].Headers["DEK-Info"] != kblock.Headers["DEK-Info"] || blocks[0].Headers["Proc-Type"] != "4,ENCRYPTED" {
			t.Fatalf("%s: blocks %+v", name, blocks)
		}
		//lint:ignore SA1019 the server's format
		got, err := x509.DecryptPEMBlock(blocks[0], []byte("pw")) //nolint:staticcheck
		if err != nil || string(got) != string(kder) {
			t.Fatalf("%s: key does not decrypt back: %v", name, err)
		}
		if string(blocks[1].Bytes) != string(der) {
			t.Fatalf("%s: certificate differs", name)
		}
	}
	if _, err := ParsePEM("no pem here"); err == nil {
		t.Error("ParsePEM accepted text without a block")
	}
	if _, err := ParsePEM("-----BEGIN CERTIFICATE-----AAAA-----END RSA PRIVATE KEY-----"); err == nil {
		t.Error("ParsePEM accepted mismatched markers")
	}
}

// The documents type ids and flags loosely (reference §0): both forms decode.
func TestLooseTyping(t *testing.T) {
	var c Certificate
	if err := json.Unmarshal([]byte(`{"id":"300","privateKey":"true","isActive":false}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != 300 || !bool(c.PrivateKey) || bool(c.IsActive) {
		t.Errorf("decoded %+v", c)
	}
	if err := json.Unmarshal([]byte(`{"id":301,"privateKey":false,"isActive":"true"}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != 301 || bool(c.PrivateKey) || !bool(c.IsActive) {
		t.Errorf("decoded %+v", c)
	}
	if err := json.Unmarshal([]byte(`{"id":"x"}`), &c); err == nil {
		t.Error("a non-numeric id was accepted")
	}
}
