package secret

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/secret/sopstest"
	"go.yaml.in/yaml/v3"
)

// TestMain builds the certfleet-sops helper, which decrypts and encrypts for this package.
func TestMain(m *testing.M) { sopstest.Main(m) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testAgeKeys is the text of the age identity file the fixtures are encrypted for.
func testAgeKeys(t *testing.T) string { return string(readTestdata(t, "keys/age-test.txt")) }

// testAgeRecipient is the public key of testAgeKeys, read from the file's comment.
func testAgeRecipient(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(testAgeKeys(t), "\n") {
		if r, ok := strings.CutPrefix(line, "# public key: "); ok {
			return strings.TrimSpace(r)
		}
	}
	t.Fatal("no public key comment in keys/age-test.txt")
	return ""
}

func testPGPFingerprint(t *testing.T) string {
	return strings.TrimSpace(string(readTestdata(t, "keys/pgp-test.fpr")))
}

// newGnuPGHome returns a fresh GnuPG home holding the test PGP key (or none, if importKey is
// false), so that no test depends on the user's keyring. The gpg-agent that GnuPG starts there
// is stopped when the test ends. Tests are skipped when gpg is not installed.
func newGnuPGHome(t *testing.T, importKey bool) string {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg is not installed (apt-get install -y gnupg): skipping the PGP test")
	}
	// A short path: gpg-agent's socket path must fit in a sockaddr_un.
	home, err := os.MkdirTemp("", "cfgpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(gpgconf, "--homedir", home, "--kill", "all").Run()
		}
		_ = os.RemoveAll(home)
	})
	if importKey {
		cmd := exec.Command(gpg, "--homedir", home, "--batch", "--import", filepath.Join("testdata", "keys", "pgp-test.sec.asc"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg --import: %v\n%s", err, out)
		}
	}
	return home
}

// sameDocument fails the test unless two YAML/JSON documents hold the same data.
func sameDocument(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := yaml.Unmarshal(got, &g); err != nil {
		t.Fatalf("result is not YAML/JSON: %v\n%s", err, got)
	}
	if err := yaml.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("documents differ:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// plaintextSecrets lists values of the fixtures that must never appear in an error message.
var plaintextSecrets = []string{"john_1234", "p@ss:w0rd", "Ti]hXzuxj", "0123456789", "json-Secret", "gJlQWE56987", "tok-3f9a1c2e7b5d"}

func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range plaintextSecrets {
		if strings.Contains(s, secret) {
			t.Fatalf("message contains the secret %q: %s", secret, s)
		}
	}
}

// isolateKeyEnvironment makes sure no age or PGP key of the user running the tests is found by
// sops's default lookup: it clears the SOPS_AGE_* variables and points HOME, XDG_CONFIG_HOME and
// GNUPGHOME at empty directories. It uses t.Setenv, so the test cannot be parallel.
func isolateKeyEnvironment(t *testing.T) {
	t.Helper()
	for _, name := range []string{"SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE", "SOPS_AGE_SSH_PRIVATE_KEY_CMD", "SOPS_DECRYPTION_ORDER"} {
		t.Setenv(name, "") // registers the restore
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, ".config"))
	gnupg := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GNUPGHOME", gnupg)
	t.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(gpgconf, "--homedir", gnupg, "--kill", "all").Run()
		}
	})
}

func mustContain(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("%q does not contain %q", s, p)
		}
	}
}

func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
