package secret

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	for _, c := range []struct {
		plain, format, regex string
		encrypted, clear     []string // values that must be encrypted / stay readable
	}{
		{"plain/creds.yaml", FormatYAML, "", []string{"john_1234", "192.0.2.10", "admin"}, nil},
		{"plain/creds.yaml", FormatYAML, "^password$", []string{"john_1234"}, []string{"192.0.2.10", "admin"}},
		{"plain/settings.json", FormatJSON, "", []string{"json-Secret", "gJlQWE56987", "fw1.example.test"}, nil},
		{"plain/settings.json", FormatJSON, "^(client_secret|api_key)$", []string{"json-Secret", "gJlQWE56987"}, []string{"fw1.example.test", "b8923830"}},
		{"plain/token.txt", FormatBinary, "", []string{"tok-3f9a1c2e7b5d"}, nil},
	} {
		t.Run(c.plain+" "+c.regex, func(t *testing.T) {
			t.Parallel()
			plain := readTestdata(t, c.plain)
			enc, err := Encrypt(testCtx(t), plain, c.format, EncryptOptions{AgeRecipients: []string{testAgeRecipient(t)}, EncryptedRegex: c.regex})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range c.encrypted {
				if bytes.Contains(enc, []byte(v)) {
					t.Errorf("%q is in the encrypted file", v)
				}
			}
			for _, v := range c.clear {
				if !bytes.Contains(enc, []byte(v)) {
					t.Errorf("%q should have stayed in plain text", v)
				}
			}
			if !MayBeSops(enc) {
				t.Fatal("the result is not a sops file")
			}
			got, err := d.DecryptData(testCtx(t), enc, c.format, "roundtrip")
			if err != nil {
				t.Fatal(err)
			}
			if c.format == FormatBinary {
				if !bytes.Equal(got, plain) {
					t.Fatalf("got %q, want %q", got, plain)
				}
				return
			}
			sameDocument(t, got, plain)
		})
	}
}

func TestEncryptForPGP(t *testing.T) {
	t.Parallel()
	home := newGnuPGHome(t, true)
	plain := readTestdata(t, "plain/scm.yaml")
	enc, err := Encrypt(testCtx(t), plain, FormatYAML, EncryptOptions{PGPFingerprints: []string{testPGPFingerprint(t)}, GnuPGHome: home, EncryptedRegex: "^client_secret$"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte("Ti]hXzuxj")) || !bytes.Contains(enc, []byte("0b3fc7a1-7f44")) {
		t.Fatalf("unexpected encryption:\n%s", enc)
	}
	got, err := (&Decrypter{GnuPGHome: home}).DecryptData(testCtx(t), enc, FormatYAML, "pgp roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	sameDocument(t, got, plain)
}

func TestEncryptRejectsBadRequests(t *testing.T) {
	t.Parallel()
	age := []string{testAgeRecipient(t)}
	plain := readTestdata(t, "plain/creds.yaml")
	for _, c := range []struct {
		name    string
		data    []byte
		format  string
		opts    EncryptOptions
		message string
	}{
		{"no recipient", plain, FormatYAML, EncryptOptions{}, "no recipients"},
		{"bad age recipient", plain, FormatYAML, EncryptOptions{AgeRecipients: []string{"age1nope"}}, "age recipient"},
		{"two selections", plain, FormatYAML, EncryptOptions{AgeRecipients: age, EncryptedRegex: "^password$", UnencryptedSuffix: "_plain"}, "at most one"},
		{"regex does not compile", plain, FormatYAML, EncryptOptions{AgeRecipients: age, EncryptedRegex: "^(password$"}, "encrypted regex"},
		{"regex matches nothing", plain, FormatYAML, EncryptOptions{AgeRecipients: age, EncryptedRegex: "^pasword$"}, "nothing would be encrypted"},
		{"already encrypted", readTestdata(t, "age/creds.yaml"), FormatYAML, EncryptOptions{AgeRecipients: age}, "already sops-encrypted"},
		{"empty document", []byte("{}\n"), FormatYAML, EncryptOptions{AgeRecipients: age}, "empty"},
		{"not YAML", []byte("a: [b\n"), FormatYAML, EncryptOptions{AgeRecipients: age}, "cannot parse"},
		{"unknown format", plain, "toml", EncryptOptions{AgeRecipients: age}, "unknown file format"},
	} {
		_, err := Encrypt(testCtx(t), c.data, c.format, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.message) {
			t.Errorf("%s: got %v, want an error about %q", c.name, err, c.message)
			continue
		}
		assertNoSecrets(t, err.Error())
	}
}

// sopsCLI returns the sops binary to test against: $SOPS_BIN, else sops on PATH.
func sopsCLI(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("SOPS_BIN"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("sops")
	if err != nil {
		t.Skip("no sops CLI on PATH and SOPS_BIN is not set: skipping the interoperability test " +
			"(go install github.com/getsops/sops/v3/cmd/sops@<version in go.mod>)")
	}
	return bin
}

// runSops runs the sops CLI in an empty directory (no .sops.yaml is found), with the test age key
// and no other key source of the user's.
func runSops(t *testing.T, bin string, env []string, args ...string) []byte {
	t.Helper()
	keyFile, err := filepath.Abs(filepath.Join("testdata", "keys", "age-test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(testCtx(t), bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "SOPS_AGE_KEY_FILE=" + keyFile, "SOPS_DISABLE_VERSION_CHECK=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// Files written by Encrypt decrypt with the real sops CLI, and files the CLI writes decrypt with
// this package (the committed fixtures cover the latter too, for the CLI version that wrote them;
// this test covers the CLI installed now).
func TestInteroperabilityWithSopsCLI(t *testing.T) {
	t.Parallel()
	bin := sopsCLI(t)
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	cases := []struct{ plain, regex string }{
		{"plain/creds.yaml", ""},
		{"plain/creds.yaml", "^password$"},
		{"plain/settings.json", ""},
		{"plain/settings.json", "^(client_secret|api_key)$"},
	}
	for _, c := range cases {
		t.Run("ours to sops "+c.plain+" "+c.regex, func(t *testing.T) {
			t.Parallel()
			plain := readTestdata(t, c.plain)
			enc, err := Encrypt(testCtx(t), plain, FormatForPath(c.plain), EncryptOptions{AgeRecipients: []string{testAgeRecipient(t)}, EncryptedRegex: c.regex})
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, t.TempDir(), filepath.Base(c.plain), enc, 0o600)
			sameDocument(t, runSops(t, bin, nil, "decrypt", path), plain)
		})
		t.Run("sops to ours "+c.plain+" "+c.regex, func(t *testing.T) {
			t.Parallel()
			plainPath, err := filepath.Abs(filepath.Join("testdata", c.plain))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"encrypt", "--age", testAgeRecipient(t)}
			if c.regex != "" {
				args = append(args, "--encrypted-regex", c.regex)
			}
			enc := runSops(t, bin, nil, append(args, plainPath)...)
			got, err := d.DecryptData(testCtx(t), enc, FormatForPath(c.plain), "from sops")
			if err != nil {
				t.Fatal(err)
			}
			sameDocument(t, got, readTestdata(t, c.plain))
		})
	}
	t.Run("ours to sops, PGP", func(t *testing.T) {
		t.Parallel()
		home := newGnuPGHome(t, true)
		plain := readTestdata(t, "plain/scm.yaml")
		enc, err := Encrypt(testCtx(t), plain, FormatYAML, EncryptOptions{PGPFingerprints: []string{testPGPFingerprint(t)}, GnuPGHome: home})
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, t.TempDir(), "scm.yaml", enc, 0o600)
		sameDocument(t, runSops(t, bin, []string{"GNUPGHOME=" + home}, "decrypt", path), plain)
	})
	t.Run("sops edits what we wrote", func(t *testing.T) {
		t.Parallel()
		// sops set re-encrypts one value and recomputes the MAC: our file must be a complete sops
		// file for that, and the result must still decrypt here.
		enc, err := Encrypt(testCtx(t), readTestdata(t, "plain/scm.yaml"), FormatYAML, EncryptOptions{AgeRecipients: []string{testAgeRecipient(t)}})
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, t.TempDir(), "scm.yaml", enc, 0o600)
		runSops(t, bin, nil, "set", path, `["default"]["client_secret"]`, `"rotated-secret-value"`)
		edited, err := d.Decrypt(testCtx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Default struct {
				ClientSecret string `yaml:"client_secret"`
			} `yaml:"default"`
		}
		if err := yaml.Unmarshal(edited, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Default.ClientSecret != "rotated-secret-value" {
			t.Fatalf("client_secret = %q after sops set", doc.Default.ClientSecret)
		}
	})
}

// A comment that fails to decrypt is kept as it is by sops (older versions did not encrypt
// comments) and is not covered by the MAC; sops logs a warning, which SetSopsLogOutput redirects.
func TestSopsLogOutput(t *testing.T) {
	var logged lockedBuffer
	SetSopsLogOutput(&logged)
	t.Cleanup(func() { SetSopsLogOutput(os.Stderr) })
	data := string(readTestdata(t, "age/creds.yaml"))
	m := regexp.MustCompile(`#ENC\[AES256_GCM,data:([A-Za-z0-9+/])`).FindStringSubmatchIndex(data)
	if m == nil {
		t.Fatal("no encrypted comment in the fixture")
	}
	flipped := "A"
	if data[m[2]] == 'A' {
		flipped = "B"
	}
	path := writeFile(t, t.TempDir(), "creds.yaml", []byte(data[:m[2]]+flipped+data[m[3]:]), 0o600)
	if _, err := (&Decrypter{AgeIdentities: testAgeKeys(t)}).Decrypt(testCtx(t), path); err != nil {
		t.Fatal(err)
	}
	mustContain(t, logged.String(), "possibly unencrypted comment")
}

func TestDecryptedErrorsNeverQuoteValues(t *testing.T) {
	t.Parallel()
	// A type tag is not authenticated by AES-GCM: flipping str to int makes sops's parser fail on
	// the decrypted text, and sops's message quotes it. Ours must not.
	data := string(readTestdata(t, "age/creds.partial.yaml"))
	tampered := strings.Replace(data, "type:str]", "type:int]", 1)
	path := writeFile(t, t.TempDir(), "creds.yaml", []byte(tampered), 0o600)
	_, err := (&Decrypter{AgeIdentities: testAgeKeys(t)}).Decrypt(testCtx(t), path)
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
	assertNoSecrets(t, err.Error())
}
