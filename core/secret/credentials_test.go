package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentialsFile(t *testing.T) {
	t.Parallel()
	d := &Decrypter{AgeIdentities: testAgeKeys(t)}
	for _, name := range []string{"plain/creds.yaml", "age/creds.yaml", "age/creds.partial.yaml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := d.LoadCredentialsFile(testCtx(t), filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if c.Encrypted != !strings.HasPrefix(name, "plain/") {
				t.Errorf("Encrypted = %v", c.Encrypted)
			}
			if c.Len() != 2 || strings.Join(c.Hosts(), ",") != "192.0.2.10,adc2.example.test" {
				t.Fatalf("hosts %v", c.Hosts())
			}
			for _, q := range []struct{ host, user, password string }{
				{"192.0.2.10", "admin", "john_1234"},
				{"192.0.2.10:443", "admin", "john_1234"},
				{"ADC2.example.test.", "nsroot", `p@ss:w0rd/with#specials & "quotes"`},
			} {
				u, p, ok := c.Lookup(q.host)
				if !ok || u != q.user || p != q.password {
					t.Errorf("Lookup(%s) = %q, %v", q.host, u, ok)
				}
			}
			if _, _, ok := c.Lookup("192.0.2.99"); ok {
				t.Error("Lookup found an unknown host")
			}
		})
	}
	t.Run("pgp", func(t *testing.T) {
		t.Parallel()
		c, err := (&Decrypter{GnuPGHome: newGnuPGHome(t, true)}).LoadCredentialsFile(testCtx(t), filepath.Join("testdata", "pgp", "creds.partial.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if u, p, ok := c.Lookup("192.0.2.10"); !ok || u != "admin" || p != "john_1234" {
			t.Fatalf("Lookup = %q, %v", u, ok)
		}
	})
}

func TestParseCredentialsShapes(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"top-level list":   "- host: h1\n  username: u\n  password: pw-1\n",
		"any single key":   "citrix:\n  - host: h1\n    username: u\n    password: pw-1\n",
		"json":             `{"credentials": [{"host": "h1", "username": "u", "password": "pw-1"}]}`,
		"numeric password": "credentials:\n  - host: h1\n    username: u\n    password: 0123\n",
	} {
		c, err := ParseCredentials([]byte(doc), name, false)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := "pw-1"
		if name == "numeric password" {
			want = "0123"
		}
		if _, p, ok := c.Lookup("h1"); !ok || p != want {
			t.Errorf("%s: Lookup = %v", name, ok)
		}
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ doc, message string }{
		{"credentials:\n  - host: h1\n    username: u\n    pasword: s3cret-pw\n", `line 4: entry 1: unknown key "pasword"`},
		{"credentials:\n  - host: h1\n    username: u\n", "line 2: entry 1: password is missing"},
		{"credentials:\n  - host: h1\n    username: u\n    password: ''\n", "password is missing or empty"},
		{"credentials:\n  - host: h1\n    username: u\n    password: s3cret-pw\n  - host: H1\n    username: v\n    password: s3cret-pw2\n", "line 5: entry 2: host H1 is already given by entry 1"},
		{"credentials: []\n", "empty"},
		{"a:\n  - host: h\nb:\n  - host: h\n", "found 2 top-level keys"},
		{"host: h1\nusername: u\npassword: s3cret-pw\n", "found 3 top-level keys"},
		{"credentials:\n  - just-a-string\n", "entry 1: expected a mapping"},
		{"credentials:\n  - host: h1\n    username: u\n    password: [s3cret-pw]\n", "password must be a single value"},
		{"credentials:\n  - host: h1\n    host: h2\n    username: u\n    password: s3cret-pw\n", "host is given twice"},
		{"credentials: [\n", "not a YAML or JSON document"},
	} {
		_, err := ParseCredentials([]byte(c.doc), "creds.yaml", false)
		if err == nil || !strings.Contains(err.Error(), c.message) {
			t.Errorf("got %v, want an error containing %q", err, c.message)
			continue
		}
		mustContain(t, err.Error(), "creds.yaml")
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error quotes a password: %v", err)
		}
	}
	// For a decrypted file, lines are not reported: they need not match the file on disk.
	_, err := ParseCredentials([]byte("credentials:\n  - host: h1\n"), "enc.yaml", true)
	if err == nil || strings.Contains(err.Error(), "line") {
		t.Fatalf("got %v", err)
	}
}

func TestResolverLoadCredentialsFileRegistersPasswords(t *testing.T) {
	t.Parallel()
	r := &Resolver{Decrypter: &Decrypter{AgeIdentities: testAgeKeys(t)}, Redactor: NewRedactor(), BaseDir: "testdata"}
	c, err := r.LoadCredentialsFile(testCtx(t), "age/creds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Warning != nil {
		t.Errorf("an encrypted file got a permission warning: %v", c.Warning)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("admin:john_1234"))
	for _, s := range []string{"john_1234", basic, `p@ss:w0rd/with#specials & \"quotes\"`} {
		if got := r.Redactor.Redact(s); got != Mask {
			t.Errorf("%q not masked: %q", s, got)
		}
	}
	_, err = r.LoadCredentialsFile(testCtx(t), "age/missing.yaml")
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v", err)
	}
}

func TestCredentialsFilePermissionWarning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := writeFile(t, dir, "creds.yaml", readTestdata(t, "plain/creds.yaml"), 0o640)
	c, err := LoadCredentialsFile(testCtx(t), loose)
	if err != nil {
		t.Fatal(err)
	}
	if c.Warning == nil || c.Warning.Mode != 0o640 {
		t.Fatalf("warning %v", c.Warning)
	}
	tight := writeFile(t, dir, "tight.yaml", readTestdata(t, "plain/creds.yaml"), 0o600)
	if c, err := LoadCredentialsFile(testCtx(t), tight); err != nil || c.Warning != nil {
		t.Fatalf("got %v, %v", c, err)
	}
}

func TestCheckPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		mode  uint32
		words []string
	}{
		{0o600, nil},
		{0o400, nil},
		{0o640, []string{"readable", "0640"}},
		{0o604, []string{"readable"}},
		{0o620, []string{"writable"}},
		{0o666, []string{"readable and writable"}},
	} {
		p := writeFile(t, dir, fmt.Sprintf("f%04o", c.mode), []byte("x"), 0o600)
		if err := os.Chmod(p, os.FileMode(c.mode)); err != nil {
			t.Fatal(err)
		}
		w, err := CheckPermissions(p)
		if err != nil {
			t.Fatal(err)
		}
		if (w != nil) != (c.words != nil) {
			t.Fatalf("mode %04o: warning %v", c.mode, w)
		}
		if w != nil {
			mustContain(t, w.String(), append(c.words, p, "chmod 600", "sops")...)
		}
	}
	if _, err := CheckPermissions(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("no error for a missing file")
	}
}
