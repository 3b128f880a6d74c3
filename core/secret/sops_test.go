package secret

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The fixtures in testdata/age and testdata/pgp were written by the sops CLI (testdata/gen.sh).
var fixtures = []struct{ encrypted, plain string }{
	{"creds.yaml", "creds.yaml"},
	{"creds.partial.yaml", "creds.yaml"},
	{"scm.yaml", "scm.yaml"},
	{"scm.partial.yaml", "scm.yaml"},
	{"settings.json", "settings.json"},
	{"settings.partial.json", "settings.json"},
}

func TestDecryptAgeFixtures(t *testing.T) {
	t.Parallel()
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	for _, f := range fixtures {
		t.Run(f.encrypted, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "age", f.encrypted)
			got, err := d.ReadFile(testCtx(t), path)
			if err != nil {
				t.Fatal(err)
			}
			sameDocument(t, got, readTestdata(t, "plain/"+f.plain))
			if bytes.Contains(got, []byte("ENC[")) || bytes.Contains(got, []byte("sops:")) {
				t.Fatalf("decrypted document still holds ciphertext or sops metadata:\n%s", got)
			}
		})
	}
	t.Run("binary token.txt", func(t *testing.T) {
		t.Parallel()
		got, err := d.ReadFile(testCtx(t), filepath.Join("testdata", "age", "token.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if want := readTestdata(t, "plain/token.txt"); !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func TestDecryptPGPFixtures(t *testing.T) {
	t.Parallel()
	d := &Decrypter{GnuPGHome: newGnuPGHome(t, true)}
	// Sequential: one gpg-agent serves them all.
	for _, f := range fixtures {
		path := filepath.Join("testdata", "pgp", f.encrypted)
		got, err := d.Decrypt(testCtx(t), path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sameDocument(t, got, readTestdata(t, "plain/"+f.plain))
	}
}

func TestDecryptFileWithTwoRecipients(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "both", "scm.yaml")
	want := readTestdata(t, "plain/scm.yaml")
	t.Run("age key only", func(t *testing.T) {
		t.Parallel()
		got, err := (&Decrypter{AgeIdentities: testAgeKeys(t), GnuPGHome: newGnuPGHome(t, false)}).Decrypt(testCtx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		sameDocument(t, got, want)
	})
	t.Run("pgp key only", func(t *testing.T) {
		t.Parallel()
		other := string(readTestdata(t, "keys/age-other.txt"))
		got, err := (&Decrypter{AgeIdentities: other, GnuPGHome: newGnuPGHome(t, true)}).Decrypt(testCtx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		sameDocument(t, got, want)
	})
}

// The zero Decrypter finds age keys where the sops CLI does.
func TestAgeKeyFromEnvironment(t *testing.T) {
	path := filepath.Join("testdata", "age", "creds.yaml")
	keyFile, err := filepath.Abs(filepath.Join("testdata", "keys", "age-test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := readTestdata(t, "plain/creds.yaml")
	decrypt := func(t *testing.T) {
		t.Helper()
		got, err := ReadFile(testCtx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		sameDocument(t, got, want)
	}
	t.Run("SOPS_AGE_KEY_FILE", func(t *testing.T) {
		isolateKeyEnvironment(t)
		t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
		decrypt(t)
	})
	t.Run("SOPS_AGE_KEY", func(t *testing.T) {
		isolateKeyEnvironment(t)
		t.Setenv("SOPS_AGE_KEY", testAgeKeys(t))
		decrypt(t)
	})
	t.Run("default location", func(t *testing.T) {
		isolateKeyEnvironment(t)
		dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "sops", "age")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "keys.txt", []byte(testAgeKeys(t)), 0o600)
		decrypt(t)
	})
}

// The zero Decrypter uses the GnuPG keyring named by $GNUPGHOME, as the sops CLI does.
func TestPGPKeyFromEnvironment(t *testing.T) {
	isolateKeyEnvironment(t)
	t.Setenv("GNUPGHOME", newGnuPGHome(t, true))
	got, err := Decrypt(testCtx(t), filepath.Join("testdata", "pgp", "settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	sameDocument(t, got, readTestdata(t, "plain/settings.json"))
}

func TestMissingKey(t *testing.T) {
	isolateKeyEnvironment(t)
	t.Run("age", func(t *testing.T) {
		path := filepath.Join("testdata", "age", "creds.yaml")
		_, err := ReadFile(testCtx(t), path)
		if !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("got %v, want ErrKeyNotFound", err)
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.Path != path {
			t.Fatalf("error does not name the file: %v", err)
		}
		mustContain(t, err.Error(), path, "age "+testAgeRecipient(t), "SOPS_AGE_KEY_FILE")
		assertNoSecrets(t, err.Error())
	})
	t.Run("age and pgp", func(t *testing.T) {
		if _, err := exec.LookPath("gpg"); err != nil {
			t.Skip("gpg is not installed: skipping the PGP part")
		}
		path := filepath.Join("testdata", "both", "scm.yaml")
		_, err := ReadFile(testCtx(t), path)
		if !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("got %v, want ErrKeyNotFound", err)
		}
		mustContain(t, err.Error(), path, "age "+testAgeRecipient(t), "pgp "+testPGPFingerprint(t), "SOPS_AGE_KEY_FILE", "gpg --import")
	})
}

func TestWrongAgeKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "age", "scm.yaml")
	d := &Decrypter{AgeIdentities: string(readTestdata(t, "keys/age-other.txt"))}
	_, err := d.ReadFile(testCtx(t), path)
	if !errors.Is(err, ErrWrongKey) || errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
	mustContain(t, err.Error(), path, testAgeRecipient(t), "re-encrypt")
	assertNoSecrets(t, err.Error())
}

func TestWrongPGPKeyring(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "pgp", "creds.yaml")
	d := &Decrypter{GnuPGHome: newGnuPGHome(t, false)}
	_, err := d.Decrypt(testCtx(t), path)
	if !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("got %v, want ErrKeyNotFound", err)
	}
	mustContain(t, err.Error(), path, testPGPFingerprint(t), "gpg --import")
}

func TestTamperedFilesAreRejected(t *testing.T) {
	t.Parallel()
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	encValue := regexp.MustCompile(`ENC\[AES256_GCM,data:([A-Za-z0-9+/]+)`)
	flipFirstChar := func(b64 string) string {
		if b64[0] == 'A' {
			return "B" + b64[1:]
		}
		return "A" + b64[1:]
	}
	cases := []struct {
		name, fixture string
		tamper        func(t *testing.T, data string) string
	}{
		{"one encrypted value changed", "age/creds.yaml", func(t *testing.T, data string) string {
			// The first value, not a comment: sops keeps a comment that fails to decrypt as it is
			// (older sops versions left comments in plain text), and comments are not in the MAC.
			m := regexp.MustCompile(`password: ENC\[AES256_GCM,data:([A-Za-z0-9+/]+)`).FindStringSubmatchIndex(data)
			return data[:m[2]] + flipFirstChar(data[m[2]:m[3]]) + data[m[3]:]
		}},
		{"plain value of a partially encrypted file changed", "age/creds.partial.yaml", func(t *testing.T, data string) string {
			return strings.Replace(data, "username: admin", "username: root", 1)
		}},
		{"encrypted values swapped", "age/creds.partial.yaml", func(t *testing.T, data string) string {
			all := encValue.FindAllString(data, 2)
			tmp := strings.Replace(data, all[0], "SWAP", 1)
			tmp = strings.Replace(tmp, all[1], all[0], 1)
			return strings.Replace(tmp, "SWAP", all[1], 1)
		}},
		{"MAC changed", "age/scm.yaml", func(t *testing.T, data string) string {
			i := strings.Index(data, "mac: ENC[AES256_GCM,data:") + len("mac: ENC[AES256_GCM,data:")
			return data[:i] + flipFirstChar(data[i:])
		}},
		{"MAC removed", "age/settings.json", func(t *testing.T, data string) string {
			return regexp.MustCompile(`"mac": "[^"]*"`).ReplaceAllString(data, `"mac": ""`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			data := string(readTestdata(t, c.fixture))
			tampered := c.tamper(t, data)
			if tampered == data {
				t.Fatal("the tampering changed nothing")
			}
			path := writeFile(t, t.TempDir(), filepath.Base(c.fixture), []byte(tampered), 0o600)
			_, err := d.ReadFile(testCtx(t), path)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("got %v, want ErrTampered", err)
			}
			mustContain(t, err.Error(), path, "MAC mismatch", "changed after it was encrypted")
			assertNoSecrets(t, err.Error())
		})
	}
}

// TestMayBeSops: every sops document of the fixtures, in every format, passes the pre-filter (a
// file it refuses is never decrypted); plain files, and a configuration holding ${sops:…}
// references, do not (they are read without starting the helper).
func TestMayBeSops(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"age", "pgp", "both", "plain"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("testdata/%s: %v", dir, err)
		}
		for _, f := range files {
			if got := MayBeSops(readTestdata(t, strings.TrimPrefix(f, "testdata/"))); got != (dir != "plain") {
				t.Errorf("MayBeSops(%s) = %v", f, got)
			}
		}
	}
	ref := []byte("issuers:\n  scm:\n    client_secret: ${sops:secrets.yaml#scm.client_secret}\n")
	if MayBeSops(ref) {
		t.Error("a configuration with a ${sops:…} reference is taken for a sops file")
	}
}

func TestReadFilePassesPlainFilesThrough(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"plain/creds.yaml", "plain/settings.json", "plain/token.txt"} {
		got, err := ReadFile(testCtx(t), filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, readTestdata(t, name)) {
			t.Errorf("%s changed on the way through", name)
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	t.Parallel()
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	t.Run("not encrypted", func(t *testing.T) {
		path := filepath.Join("testdata", "plain", "scm.yaml")
		_, err := d.Decrypt(testCtx(t), path)
		if !errors.Is(err, ErrNotEncrypted) {
			t.Fatalf("got %v, want ErrNotEncrypted", err)
		}
		mustContain(t, err.Error(), path)
	})
	t.Run("not found", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.yaml")
		_, err := d.ReadFile(testCtx(t), path)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want fs.ErrNotExist", err)
		}
		mustContain(t, err.Error(), path, "not found")
	})
	t.Run("malformed metadata", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "bad.yaml", []byte("password: ENC[AES256_GCM,data:xx]\nsops:\n    version: 3.13.3\n    age: not-a-list\n"), 0o600)
		_, err := d.ReadFile(testCtx(t), path)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
		mustContain(t, err.Error(), path)
	})
	t.Run("no keys in metadata", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "nokeys.yaml", []byte("password: x\nsops:\n    version: 3.13.3\n    mac: x\n    lastmodified: \"2024-01-01T00:00:00Z\"\n"), 0o600)
		_, err := d.ReadFile(testCtx(t), path)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("unusable GnuPG home", func(t *testing.T) {
		_, err := (&Decrypter{GnuPGHome: filepath.Join(t.TempDir(), "absent")}).Decrypt(testCtx(t), filepath.Join("testdata", "pgp", "creds.yaml"))
		if err == nil || !strings.Contains(err.Error(), "GnuPG home") {
			t.Fatalf("got %v, want a GnuPG home error", err)
		}
	})
}
