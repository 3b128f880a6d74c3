package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTestResolver(t *testing.T, env map[string]string) *Resolver {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return &Resolver{
		Decrypter: &Decrypter{AgeIdentities: testAgeKeys(t)},
		Redactor:  NewRedactor(),
		BaseDir:   abs,
		LookupEnv: func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		},
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "token", []byte("file-token-value\r\n\n"), 0o600)
	r := newTestResolver(t, map[string]string{"SCM_SECRET": "env-secret-value", "EMPTY": ""})
	for _, c := range []struct{ in, want string }{
		{"no references", "no references"},
		{"${env:SCM_SECRET}", "env-secret-value"},
		{"${env:EMPTY}", ""},
		{"Bearer ${env:SCM_SECRET}!", "Bearer env-secret-value!"},
		{"${file:" + filepath.Join(dir, "token") + "}", "file-token-value"},
		{"${file:plain/token.txt}", "tok-3f9a1c2e7b5d"}, // relative to BaseDir, plain
		{"${file:age/token.txt}", "tok-3f9a1c2e7b5d"},   // sops binary format
		{"${sops:age/creds.yaml#credentials.0.password}", "john_1234"},
		{"${sops:age/creds.partial.yaml#credentials[1].password}", `p@ss:w0rd/with#specials & "quotes"`},
		{"${sops:age/scm.yaml#default.client_secret}", "Ti]hXzuxj.!T,zg!S0rZ0StbwyDlhCP4"},
		{"${sops:age/scm.yaml#second.client_secret}", "0123456789"}, // a string of digits stays as written
		{"${sops:age/scm.yaml#second.accounts.1.pin}", "0815x"},
		{`${sops:age/scm.yaml#second["accounts"][0]['pin']}`, "4711"},
		{"${sops:age/settings.json#devices[1].api_key}", "LUFRPT1second-api-key=="},
		{"${sops:age/settings.json#port}", "443"},
		{"${sops:plain/scm.yaml#second.client_id}", "5d2f8c90-1b3a-4e6f-8a7b-2c9d0e1f2a3b"},
		{"a ${env:SCM_SECRET} and ${sops:pgp/../age/scm.yaml#default.client_id}", "a env-secret-value and 0b3fc7a1-7f44-4c9e-9d55-1f0a2a9c1e11"},
		{"$${env:SCM_SECRET}", "${env:SCM_SECRET}"},
		{"$$${env:SCM_SECRET}", "$${env:SCM_SECRET}"}, // only "$${" is special; a lone $ is kept
		{"cost: $5, {braces}, $ alone, $$", "cost: $5, {braces}, $ alone, $$"},
	} {
		got, err := r.Resolve(testCtx(t), c.in)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("Resolve(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Every resolved value is now masked.
	for _, secret := range []string{"env-secret-value", "file-token-value", "john_1234", "Ti]hXzuxj.!T,zg!S0rZ0StbwyDlhCP4", "0123456789"} {
		if got := r.Redactor.Redact("log: " + secret); got != "log: "+Mask {
			t.Errorf("%q was not registered with the redactor: %q", secret, got)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	r := newTestResolver(t, map[string]string{"SET": "x"})
	for _, c := range []struct{ in, message string }{
		{"${env:UNSET}", "environment variable UNSET is not set"},
		{"${env:BAD-NAME}", "invalid environment variable name"},
		{"${file:missing.txt}", "file not found"},
		{"${file:}", "no file path"},
		{"${sops:age/scm.yaml}", "no key path"},
		{"${sops:age/scm.yaml#}", "both a file path and a key path"},
		{"${sops:age/scm.yaml#default.nope}", `no key "nope" under default (keys there: "url", "client_id", "client_secret")`},
		{"${sops:age/scm.yaml#second.accounts.5.pin}", "has 2 items: no item 5"},
		{"${sops:age/scm.yaml#second.accounts.first}", "is a list: use an item number"},
		{"${sops:age/scm.yaml#default[0]}", "is a mapping, not a list"},
		{"${sops:age/scm.yaml#default}", "leads to a mapping or list"},
		{"${sops:age/scm.yaml#default.url.x}", "is a single value"},
		{"${sops:age/scm.yaml#a..b}", "invalid key path"},
		{"${sops:age/scm.yaml#a[x]}", "invalid key path"},
		{"${sops:plain/token.txt#a}", "at the top level is a single value"},
		{"${sops:age/creds.yaml#credentials.0.password} ${vault:secret/x}", "unknown reference kind"},
		{"pass${word", "unterminated reference: ${ at offset 4"},
	} {
		_, err := r.Resolve(testCtx(t), c.in)
		if err == nil || !strings.Contains(err.Error(), c.message) {
			t.Errorf("Resolve(%q): got %v, want an error containing %q", c.in, err, c.message)
			continue
		}
		assertNoSecrets(t, err.Error())
	}
	// A literal that only looks like a reference is not quoted in the error: it may be a password.
	_, err := r.Resolve(testCtx(t), "${s3cr3t-literal}")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v", err)
	}
	// A file that is empty is an error, not an empty secret.
	empty := writeFile(t, t.TempDir(), "empty", []byte("\n"), 0o600)
	if _, err := r.Resolve(testCtx(t), "${file:"+empty+"}"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("got %v", err)
	}
	// Decryption errors name the file and keep their kind.
	wrong := &Resolver{Decrypter: &Decrypter{AgeIdentities: string(readTestdata(t, "keys/age-other.txt"))}}
	_, err = wrong.Resolve(testCtx(t), "${sops:testdata/age/scm.yaml#default.client_secret}")
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "testdata/age/scm.yaml") {
		t.Fatalf("got %v", err)
	}
	_, err = r.Resolve(testCtx(t), "${file:nowhere/x}")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestHasReference(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"${env:X}": true, "a ${file:/x} b": true, "plain": false, "$${env:X}": false, "$5": false, "$$${env:X}": false, "{}": false,
	} {
		if got := HasReference(in); got != want {
			t.Errorf("HasReference(%q) = %v", in, got)
		}
	}
}

// A file is read and decrypted once per Resolver: later references use the copy in memory.
func TestResolverCachesFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "scm.yaml", readTestdata(t, "age/scm.yaml"), 0o600)
	r := &Resolver{Decrypter: &Decrypter{AgeIdentities: testAgeKeys(t)}, BaseDir: dir}
	if _, err := r.Resolve(testCtx(t), "${sops:scm.yaml#default.client_secret}"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	got, err := r.Resolve(testCtx(t), "${sops:scm.yaml#second.client_secret}")
	if err != nil || got != "0123456789" {
		t.Fatalf("got %q, %v: the file was read again", got, err)
	}
	// A new Resolver reads the file again.
	if _, err := (&Resolver{BaseDir: dir}).Resolve(testCtx(t), "${sops:scm.yaml#default.client_id}"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestResolverReportsLoosePlainFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := writeFile(t, dir, "loose.yaml", readTestdata(t, "plain/scm.yaml"), 0o644)
	writeFile(t, dir, "tight", []byte("tight-secret\n"), 0o600)
	writeFile(t, dir, "encrypted.yaml", readTestdata(t, "age/scm.yaml"), 0o644) // encrypted: fine
	r := &Resolver{Decrypter: &Decrypter{AgeIdentities: testAgeKeys(t)}, BaseDir: dir}
	for _, ref := range []string{"${sops:loose.yaml#default.client_secret}", "${file:tight}", "${sops:encrypted.yaml#default.client_secret}"} {
		if _, err := r.Resolve(testCtx(t), ref); err != nil {
			t.Fatal(err)
		}
	}
	w := r.Warnings()
	if len(w) != 1 || w[0].Path != loose || w[0].Mode != 0o644 {
		t.Fatalf("warnings %v, want one for %s", w, loose)
	}
	mustContain(t, w[0].String(), loose, "readable", "chmod 600")
}

func TestResolverIsConcurrencySafe(t *testing.T) {
	t.Parallel()
	r := newTestResolver(t, map[string]string{"A": "value-of-a"})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := []string{"${env:A}", "${sops:age/scm.yaml#default.client_id}", "${sops:age/creds.yaml#credentials.1.host}", "${file:age/token.txt}"}[i%4]
			if _, err := r.Resolve(testCtx(t), ref); err != nil {
				errs <- fmt.Errorf("%s: %w", ref, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
