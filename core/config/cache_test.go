package config

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/certfleet/certfleet/core/secret"
)

// recordingResolver resolves every reference to a text derived from it, as a resolver would,
// and records what it was asked, in order (the redactor learns values in that order). A
// reference naming one of fail is an error; one naming one of empty resolves to "".
type recordingResolver struct {
	fail, empty []string
	mu          sync.Mutex
	asked       []string
	gaveEmpty   bool
}

func (r *recordingResolver) Resolve(_ context.Context, v string) (string, error) {
	r.mu.Lock()
	r.asked = append(r.asked, v)
	r.mu.Unlock()
	var failed error
	out := reference.ReplaceAllStringFunc(strings.ReplaceAll(v, "$${", "\x00"), func(ref string) string {
		for _, f := range r.fail {
			if strings.Contains(ref, f) {
				failed = fmt.Errorf("%s: not found", ref)
			}
		}
		for _, e := range r.empty {
			if strings.Contains(ref, e) {
				return ""
			}
		}
		// A URL, as a webhook url must resolve to one.
		return "https://resolved.example/" + ref[2:len(ref)-1]
	})
	if failed != nil {
		return "", failed
	}
	if out == "" {
		r.gaveEmpty = true
	}
	return strings.ReplaceAll(out, "\x00", "${"), nil
}

// testCAPEM is a self-signed CA certificate in PEM.
func testCAPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// cacheCase is a configuration, and whether an entry of it serves a load that resolves.
type cacheCase struct {
	name       string
	path       string
	resolvable resolvability
}

type resolvability int

const (
	unknownResolvable resolvability = iota // not checked
	notResolvable
	resolvable
)

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// cacheCases are the configurations the repository ships or tests with, and a directory that
// holds a reference at every place the cache resolves, a ca_bundle file and plain-http warnings.
func cacheCases(t *testing.T) []cacheCase {
	dir := t.TempDir()
	caPEM := testCAPEM(t)
	files := map[string]string{
		"10-base.yaml": `version: v1
state: {path: state/certfleet.db}
defaults:
  issuer: scm
  issuer_options: {comments: plain, term: 365}
notifications:
  webhooks:
    - {url: "${env:HOOK}", headers: {Authorization: "Bearer ${env:HOOK_TOKEN}"}}
  email: {host: mail.example.com, from: a@example.com, to: [b@example.com], username: "${env:SMTP_USER}", password: "${env:SMTP_PASSWORD}"}
issuers:
  scm:
    type: scm
    scm:
      api: enrollment
      base_url: https://acme.enroll.enterprise.sectigo.com
      client_id: ${env:SCM_ID}
      client_secret: ${file:scm.secret}
      lookup: {base_url: https://admin.enterprise.sectigo.com/api/, org_id: 7, client_id: id, client_secret: "${sops:s.yaml#a.b}"}
  le:
    type: acme
    acme:
      directory_url: https://acme.example/dir
      eab: {key_id: "${env:KID}", hmac_key: "${env:HMAC}"}
      account_key_passphrase: pass$${word
      dns: {provider: rfc2136, settings: {tsig_secret: "${env:TSIG}", nameserver: 127.0.0.1}}
`,
		"20-devices.yaml": `version: v1
devices:
  adc1:
    plugin: citrix-nitro
    address: https://adc1.example.com
    credentials: {username: "${env:ADC_USER}", password: "${env:ADC_PASSWORD}", api_key: "${env:ADC_KEY}", token: "${env:ADC_TOKEN}"}
    options: {partition: "${env:PARTITION}", retries: 3}
  lab:
    plugin: pemdir
    address: http://lab.example.com
    allow_plain_http: true
    credentials: {password: literal}
`,
		"30-certs.yaml": `version: v1
certificates:
  www:
    device: adc1
    sans: {dns: [www.example.com]}
    issuer_options: {comments: "${env:COMMENT}"}
    bindings: [{kind: lb-vserver, name: vs_www, options: {note: "${env:NOTE}"}}]
  lab:
    device: lab
    issuer: le
    sans: {dns: [lab.example.com]}
    bindings: [{kind: live-link, name: lab}]
`,
	}
	files["40-tls.yaml"] = "version: v1\ndevices:\n  tls1: {plugin: pemdir, address: /srv/x, tls: {ca_bundle: ca.pem}}\n"
	files["ca.pem"] = caPEM
	writeFiles(t, dir, files)

	// A reference the cache does not place (defaults reach every certificate), and an alias.
	unplaced := t.TempDir()
	writeFiles(t, unplaced, map[string]string{"c.yaml": `version: v1
defaults: {issuer_options: {comments: "${env:C}"}}
issuers: {ca: {type: acme, acme: {directory_url: "https://ca.example/dir"}}}
devices: {d: {plugin: pemdir, address: /x, credentials: {password: &pw "${env:P}"}}}
certificates: {c: {device: d, issuer: ca, sans: {dns: [c.example.com]}, bindings: [{kind: k, name: n}]}}
`})
	aliased := t.TempDir()
	writeFiles(t, aliased, map[string]string{"c.yaml": `version: v1
issuers: {ca: {type: acme, acme: {directory_url: "https://ca.example/dir"}}}
devices: {d: {plugin: pemdir, address: /x, credentials: {password: &pw "${env:P}"}, options: {again: *pw}}}
certificates: {c: {device: d, issuer: ca, sans: {dns: [c.example.com]}, bindings: [{kind: k, name: n}]}}
`})
	fleet := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleet, []byte(fleetYAML(20, 100)+"state:\n  path: fleet.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Glob("../../plugins/*/dist/*.yaml")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no vendor samples: %v", err)
	}
	var cases []cacheCase
	for _, p := range samples {
		if _, _, err := Load(p); err == nil {
			cases = append(cases, cacheCase{name: p, path: p, resolvable: unknownResolvable})
		}
	}
	return append(cases, []cacheCase{
		{"shipped example", "../../examples/certfleet.yaml", resolvable},
		{"testdata/good.yaml", "testdata/good.yaml", resolvable},
		{"every resolvable place", dir, resolvable},
		{"reference in defaults", unplaced, notResolvable},
		{"alias of a reference", aliased, notResolvable},
		{"fleet", fleet, resolvable},
	}...)
}

type loadResult struct {
	cfg      *Config
	warnings []Warning
	err      error
	asked    []string
	reads    int
	// gaveEmpty: a value resolved to "", which the cache leaves to a full load.
	gaveEmpty bool
}

func loadWith(path string, r *recordingResolver, extra ...LoadOption) loadResult {
	var res loadResult
	opts := append([]LoadOption{WithFileReader(func(p string) ([]byte, error) {
		res.reads++
		return boundedfile.Read(p, boundedfile.DefaultLimit)
	})}, extra...)
	if r != nil {
		opts = append(opts, WithResolver(context.Background(), r))
	}
	res.cfg, res.warnings, res.err = Load(path, opts...)
	if r != nil {
		res.asked, res.gaveEmpty = r.asked, r.gaveEmpty
	}
	return res
}

func sameResult(t *testing.T, what string, got, want loadResult) {
	t.Helper()
	if !reflect.DeepEqual(got.cfg, want.cfg) {
		t.Errorf("%s: the configuration differs from a load without the cache:\n got: %+v\nwant: %+v", what, got.cfg, want.cfg)
	}
	if !reflect.DeepEqual(got.warnings, want.warnings) {
		t.Errorf("%s: warnings\n got: %v\nwant: %v", what, got.warnings, want.warnings)
	}
	if !reflect.DeepEqual(got.err, want.err) {
		t.Errorf("%s: error\n got: %v\nwant: %v", what, got.err, want.err)
	}
	if !reflect.DeepEqual(got.asked, want.asked) {
		t.Errorf("%s: resolved\n got: %q\nwant: %q", what, got.asked, want.asked)
	}
}

func testCache(dir string) Cache {
	return Cache{Version: "test", Dir: func(State) string { return dir }}
}

// TestCacheHitEqualsLoad: for every configuration, a load from the cache (the load that writes
// the entry, and the one that reads it) returns what Load returns without it: the same
// configuration, warnings and errors, and the same references resolved in the same order.
func TestCacheHitEqualsLoad(t *testing.T) {
	resolvers := []struct {
		name string
		make func() *recordingResolver
	}{
		{"without resolver", func() *recordingResolver { return nil }},
		{"resolving", func() *recordingResolver { return &recordingResolver{} }},
		{"a reference fails", func() *recordingResolver { return &recordingResolver{fail: []string{"SCM", "ADC_PASSWORD", "P}"}} }},
		{"a value is empty", func() *recordingResolver { return &recordingResolver{empty: []string{"SCM", "P}", "ADC_USER", "SMTP"}} }},
	}
	for _, c := range cacheCases(t) {
		for _, r := range resolvers {
			t.Run(c.name+"/"+r.name, func(t *testing.T) {
				want := loadWith(c.path, r.make())
				if r.make() == nil && want.err != nil {
					t.Fatalf("the configuration does not load: %v", want.err)
				}
				cache := WithCache(testCache(t.TempDir()))
				miss := loadWith(c.path, r.make(), cache)
				sameResult(t, "writing the entry", miss, want)
				hit := loadWith(c.path, r.make(), cache)
				sameResult(t, "reading the entry", hit, want)
				served := r.make() == nil || (c.resolvable == resolvable && !want.gaveEmpty)
				if served && hit.reads != 0 {
					t.Errorf("the entry was not used: %d files parsed", hit.reads)
				}
				if !served && c.resolvable != unknownResolvable && hit.reads == 0 {
					t.Errorf("the entry was used where it cannot be")
				}
				// What a hit returns is the caller's: changing it does not change the next hit.
				if hit.cfg != nil {
					hit.cfg.Files[0] = "changed"
					sameResult(t, "reading the entry again", loadWith(c.path, r.make(), cache), want)
				}
			})
		}
	}
}

// TestCacheMissesOnAnyChange: changing any byte of the configuration, the set of files, a file
// build read, or the certfleet build loads in full.
func TestCacheMissesOnAnyChange(t *testing.T) {
	dir := t.TempDir()
	body := []byte("version: v1\nissuers: {ca: {type: acme, acme: {directory_url: \"https://ca.example/dir\"}}}\n" +
		"devices: {d: {plugin: pemdir, address: /x, credentials: {password: \"${env:P}\"}}}\n" +
		"certificates: {c: {device: d, issuer: ca, sans: {dns: [c.example.com]}, bindings: [{kind: k, name: n}]}}\n")
	path := filepath.Join(dir, "c.yaml")
	cacheDir := t.TempDir()
	opt := WithCache(testCache(cacheDir))
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(body)
	if r := loadWith(path, nil, opt); r.err != nil || r.reads != 1 {
		t.Fatalf("first load: %v, %d reads", r.err, r.reads)
	}
	for i := range body {
		changed := append([]byte(nil), body...)
		changed[i] ^= 0x20
		write(changed)
		if r := loadWith(path, nil, opt); r.reads == 0 {
			t.Fatalf("byte %d changed (%q), yet the entry was used", i, changed[i])
		}
		write(body)
		if r := loadWith(path, nil, opt); r.reads == 0 && r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := loadWith(path, nil, opt); r.reads != 0 {
		t.Fatalf("unchanged, yet loaded in full")
	}
	if r := loadWith(path, nil, WithCache(Cache{Version: "other", Dir: func(State) string { return cacheDir }})); r.reads == 0 {
		t.Errorf("another certfleet version used the entry")
	}

	// A directory: one more file is a change.
	cdir := t.TempDir()
	writeFiles(t, cdir, map[string]string{"a.yaml": string(body)})
	loadWith(cdir, nil, opt)
	if r := loadWith(cdir, nil, opt); r.reads != 0 {
		t.Fatalf("directory unchanged, yet loaded in full")
	}
	writeFiles(t, cdir, map[string]string{"b.yaml": "version: v1\n"})
	if r := loadWith(cdir, nil, opt); r.reads == 0 || r.err != nil {
		t.Errorf("a file was added, yet the entry was used (%v)", r.err)
	}

	// A ca_bundle file is an input.
	caPEM := testCAPEM(t)
	tdir := t.TempDir()
	writeFiles(t, tdir, map[string]string{"c.yaml": "version: v1\ndevices: {d: {plugin: pemdir, address: /x, tls: {ca_bundle: ca.pem}}}\n", "ca.pem": caPEM})
	loadWith(tdir, nil, opt)
	if r := loadWith(tdir, nil, opt); r.reads != 0 {
		t.Fatalf("ca_bundle unchanged, yet loaded in full")
	}
	writeFiles(t, tdir, map[string]string{"ca.pem": caPEM + "\n"})
	r := loadWith(tdir, nil, opt)
	if r.reads == 0 {
		t.Errorf("the ca_bundle changed, yet the entry was used")
	}
	if r.cfg.Devices["d"].TLS.CABundlePEM != caPEM+"\n" {
		t.Errorf("ca_bundle not read again")
	}
}

func entryFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "config-*.cache"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCacheDamagedEntries: a damaged, truncated or foreign entry is ignored and written again.
func TestCacheDamagedEntries(t *testing.T) {
	path := "testdata/good.yaml"
	want := loadWith(path, nil)
	cacheDir := t.TempDir()
	opt := WithCache(testCache(cacheDir))
	loadWith(path, nil, opt)
	entries := entryFiles(t, cacheDir)
	if len(entries) != 1 {
		t.Fatalf("entries: %v", entries)
	}
	good, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(entries[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("entry mode: %v %v", st.Mode(), err)
	}
	damage := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)/2],
		"header":    good[:cacheHeaderLen],
		"flipped":   append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1),
		"foreign":   append([]byte("CFCFGC99"), good[8:]...),
		"garbage":   []byte(strings.Repeat("x", 4096)),
	}
	for name, b := range damage {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(entries[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			r := loadWith(path, nil, opt)
			if r.reads == 0 {
				t.Fatal("a damaged entry was used")
			}
			sameResult(t, "damaged entry", r, want)
			if r := loadWith(path, nil, opt); r.reads != 0 {
				t.Error("the entry was not written again")
			}
		})
	}
}

// TestCacheDecoderRejectsEveryTruncation: a payload cut anywhere does not decode (and does not panic).
func TestCacheDecoderRejectsEveryTruncation(t *testing.T) {
	enc := encodedGoodConfig(t)
	for n := 0; n < len(enc.buf); n++ {
		d := newCacheDecoder(enc.buf[:n])
		if err := d.decode(&Config{}); err == nil {
			t.Fatalf("%d of %d bytes decoded", n, len(enc.buf))
		}
	}
}

// TestCacheUnwritableDirectory: a cache that cannot be written is no cache.
func TestCacheUnwritableDirectory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opt := WithCache(testCache(filepath.Join(blocker, "config-cache")))
	want := loadWith("testdata/good.yaml", nil)
	for i := 0; i < 2; i++ {
		r := loadWith("testdata/good.yaml", nil, opt)
		sameResult(t, "unwritable cache", r, want)
		if r.reads == 0 {
			t.Fatal("served from nowhere")
		}
	}
}

// TestCacheNeverHoldsSopsFiles: a configuration that may be sops-encrypted is not cached, and the
// entry of its plain predecessor is removed.
func TestCacheNeverHoldsSopsFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	plain := "version: v1\ndevices: {d: {plugin: pemdir, address: /x, credentials: {password: hunter22}}}\n"
	cacheDir := t.TempDir()
	opt := WithCache(testCache(cacheDir))
	writeFiles(t, dir, map[string]string{"c.yaml": plain})
	loadWith(path, nil, opt)
	loadWith(path, nil, WithCache(Cache{Version: "other", Dir: func(State) string { return cacheDir }}))
	if len(entryFiles(t, cacheDir)) != 2 {
		t.Fatal("no entry written for each build")
	}
	// What the file reader decrypts to is what the plain file held; on disk it is sops.
	writeFiles(t, dir, map[string]string{"c.yaml": "version: ENC[AES256_GCM,data:x]\nsops: {mac: ENC[AES256_GCM,data:y]}\n"})
	decrypt := WithFileReader(func(string) ([]byte, error) { return []byte(plain), nil })
	for i := 0; i < 2; i++ {
		cfg, _, err := Load(path, opt, decrypt)
		if err != nil || cfg.Devices["d"].Credentials.Password != "hunter22" {
			t.Fatalf("load: %v", err)
		}
		if e := entryFiles(t, cacheDir); len(e) != 0 {
			t.Fatalf("a sops-encrypted configuration is cached: %v", e)
		}
	}
	// A reader that changes what it reads (decrypting a file the heuristic missed) is not cached either.
	writeFiles(t, dir, map[string]string{"c.yaml": "version: v1\n"})
	if _, _, err := Load(path, opt, decrypt); err != nil {
		t.Fatal(err)
	}
	if e := entryFiles(t, cacheDir); len(e) != 0 {
		t.Fatalf("what the reader changed is cached: %v", e)
	}
}

// TestCacheBuildsKeepTheirOwnEntries: two builds reading one configuration (a daemon and a cron
// job of another release) each find their own entry, rather than replacing each other's.
func TestCacheBuildsKeepTheirOwnEntries(t *testing.T) {
	cacheDir := t.TempDir()
	builds := []LoadOption{
		WithCache(Cache{Version: "1.0", Dir: func(State) string { return cacheDir }}),
		WithCache(Cache{Version: "1.1", Dir: func(State) string { return cacheDir }}),
	}
	for round := 0; round < 3; round++ {
		for i, opt := range builds {
			r := loadWith("testdata/good.yaml", nil, opt)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if hit := r.reads == 0; hit != (round > 0) {
				t.Fatalf("round %d, build %d: hit %v", round, i, hit)
			}
		}
	}
	if e := entryFiles(t, cacheDir); len(e) != 2 {
		t.Fatalf("entries: %v", e)
	}
}

// TestCacheGivesStateFirst: a hit gives the state section to WithStateFirst once, before it
// returns, and it is the configuration's.
func TestCacheGivesStateFirst(t *testing.T) {
	opt := WithCache(testCache(t.TempDir()))
	for i := 0; i < 2; i++ {
		var got []State
		cfg, _, err := Load("testdata/good.yaml", opt, WithStateFirst(func(s State) { got = append(got, s) }))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], cfg.State) {
			t.Fatalf("load %d: state first %+v, configuration's %+v", i, got, cfg.State)
		}
	}
}

// TestCacheKeepsFewEntries: a cache directory shared by many configuration paths keeps the newest
// few entries.
func TestCacheKeepsFewEntries(t *testing.T) {
	cacheDir := t.TempDir()
	opt := WithCache(testCache(cacheDir))
	body, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := 0; i < maxEntries+3; i++ {
		last = filepath.Join(t.TempDir(), "c.yaml")
		writeFiles(t, filepath.Dir(last), map[string]string{"c.yaml": string(body)})
		if _, _, err := Load(last, opt); err != nil {
			t.Fatal(err)
		}
	}
	if e := entryFiles(t, cacheDir); len(e) != maxEntries {
		t.Fatalf("%d entries kept: %v", len(e), e)
	}
	if r := loadWith(last, nil, opt); r.reads != 0 {
		t.Error("the newest entry was removed")
	}
}

// TestFileScanInPartsEqualsWhole: a file scanned in parts of any size (a hit reads it so, not
// whole) gives the digest, the sops verdict and the state section the whole file gives.
func TestFileScanInPartsEqualsWhole(t *testing.T) {
	docs := map[string]string{
		"state first":      "state:\n  path: /var/lib/a.db\n  driver: sqlite\nversion: v1\n",
		"state last":       "version: v1\ndevices: {}\nstate:\n  path: /var/lib/b.db\n",
		"no newline":       "version: v1\nstate:\n  path: /var/lib/c.db",
		"comment and gaps": "version: v1\nstate:\n  path: /x.db\n\n# note\n\t\n  lease_ttl: 1m\nlogging: {level: warn}\nstate_x: 1\n",
		"indented state":   "version: v1\nx:\n  state: {path: /no.db}\n",
		"flow state":       "version: v1\nstate: {path: /f.db}\n",
		"crlf":             "version: v1\r\nstate:\r\n  path: /crlf.db\r\nlogging: {}\r\n",
		"sops yaml":        "version: ENC[x]\nsops:\n  mac: ENC[y]\n",
		"sops json":        "{\n  \"data\": \"ENC[x]\",\n  \"sops\"   \t: {\"mac\": \"y\"}\n}\n",
		"sops ini":         "[x]\na=1\n[sops]\nmac=y\n",
		"sops dotenv":      "A=ENC[x]\nsops_version=3.8\n",
		"not sops":         "version: v1\ndevices: {sops: {plugin: pemdir, address: /x}}\n# \"sops\" x\n",
		"long line":        "version: v1\n" + strings.Repeat("# "+strings.Repeat("x", 70)+"\n", 3) + "state:\n  path: /" + strings.Repeat("l", 300) + ".db\n",
		"empty":            "",
	}
	dir := t.TempDir()
	for name, doc := range docs {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		whole := newFileScan()
		whole.lines([]byte(doc))
		wantState, wantFound := stateSection(path, []byte(doc))
		if whole.sops != secret.MayBeSops([]byte(doc)) {
			t.Errorf("%s: the whole file's sops verdict is %v", name, whole.sops)
		}
		if got, found := parseStateSection(path, whole.section); whole.sectionFound && (found != wantFound || got != wantState) {
			t.Errorf("%s: the whole file's state section reads %+v %v, want %+v %v", name, got, found, wantState, wantFound)
		}
		for _, partLen := range []int{1, 2, 3, 5, 8, 13, 64, scanPartLen} {
			parts := newFileScan()
			if err := parts.scanFile(path, make([]byte, partLen)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(parts.sum.Sum(nil), whole.sum.Sum(nil)) || parts.sops != whole.sops ||
				parts.sectionFound != whole.sectionFound || !bytes.Equal(parts.section, whole.section) {
				t.Errorf("%s, parts of %d bytes: sops %v section %v %q; whole: sops %v section %v %q",
					name, partLen, parts.sops, parts.sectionFound, parts.section, whole.sops, whole.sectionFound, whole.section)
			}
		}
	}
}

// TestIssuerOptionsOfDefaultsShared: certificates without issuer_options of their own share
// defaults' map, loaded or from the cache; one with its own has the two merged, in a map of its own.
func TestIssuerOptionsOfDefaultsShared(t *testing.T) {
	dir := t.TempDir()
	body := fleetYAML(2, 4) + "  own:\n    device: pemdir-0000\n    issuer_options: {term: 365}\n    sans: {dns: [own.example.test]}\n    bindings: [{kind: live-link, name: own}]\n"
	writeFiles(t, dir, map[string]string{"c.yaml": body})
	cacheDir := t.TempDir()
	for _, what := range []string{"load", "cache hit"} {
		cfg, _, err := Load(filepath.Join(dir, "c.yaml"), WithCache(testCache(cacheDir)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if what == "cache hit" && len(entryFiles(t, cacheDir)) != 1 {
			t.Fatal("no entry")
		}
		a, b, own := cfg.Certificates["pemdir-0000-site01"], cfg.Certificates["pemdir-0001-site02"], cfg.Certificates["own"]
		if !reflect.DeepEqual(a.IssuerOptions, map[string]any{"cert_type": "OV SSL"}) ||
			reflect.ValueOf(a.IssuerOptions).UnsafePointer() != reflect.ValueOf(b.IssuerOptions).UnsafePointer() {
			t.Errorf("%s: issuer options of defaults %v and %v, not one map", what, a.IssuerOptions, b.IssuerOptions)
		}
		if !reflect.DeepEqual(own.IssuerOptions, map[string]any{"cert_type": "OV SSL", "term": 365}) ||
			reflect.ValueOf(own.IssuerOptions).UnsafePointer() == reflect.ValueOf(a.IssuerOptions).UnsafePointer() {
			t.Errorf("%s: own issuer options %v", what, own.IssuerOptions)
		}
	}
}

// encodedGoodConfig is testdata/good.yaml, loaded and encoded as an entry's payload.
func encodedGoodConfig(t *testing.T) *cacheEncoder {
	t.Helper()
	cfg, _, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	enc := newCacheEncoder()
	if err := enc.encode(cfg); err != nil {
		t.Fatal(err)
	}
	return enc
}
