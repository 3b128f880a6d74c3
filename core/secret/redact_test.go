package secret

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	if got := r.Redact("nothing registered"); got != "nothing registered" {
		t.Fatalf("got %q", got)
	}
	r.Add("hunter22", "abc", "  spaced-secret \n", "")
	for _, c := range []struct{ in, want string }{
		{"password=hunter22", "password=" + Mask},
		{"hunter22hunter22", Mask + Mask},
		{"short abc stays", "short abc stays"},
		{"spaced-secret with the spaces trimmed", Mask + " with the spaces trimmed"},
		{"no secret here", "no secret here"},
		{"", ""},
		{"hunter2 is not hunter22", "hunter2 is not " + Mask},
	} {
		if got := r.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Where occurrences of two secrets overlap, masking either one alone would leave part of the
// other readable; the union is masked.
func TestRedactOverlappingSecrets(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	r.Add("abcdef", "defghi", "xxabcd")
	for _, c := range []struct{ in, want string }{
		{"1abcdefghi2", "1" + Mask + "2"},
		{"xxabcdef", Mask},
		{"abcdef defghi", Mask + " " + Mask},
		{"abcdefdefghi", Mask + Mask}, // adjacent, not overlapping
	} {
		if got := r.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactEncodedForms(t *testing.T) {
	t.Parallel()
	const secret = `p@ss "w0rd"/<&>+é`
	r := NewRedactor()
	r.Add(secret)
	jsonHTML, _ := json.Marshal(secret)
	var jsonPlain bytes.Buffer
	enc := json.NewEncoder(&jsonPlain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(secret)
	var xmlText bytes.Buffer
	_ = xml.EscapeText(&xmlText, []byte(secret))
	for name, form := range map[string]string{
		"raw":               secret,
		"query":             url.QueryEscape(secret),
		"path":              url.PathEscape(secret),
		"json":              string(jsonHTML),
		"json without html": strings.TrimSpace(jsonPlain.String()),
		"go quoted":         strconv.Quote(secret),
		"base64":            base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64url":         base64.URLEncoding.EncodeToString([]byte(secret)),
		"xml":               xmlText.String(),
		"html":              html.EscapeString(secret),
	} {
		got := r.Redact("before " + form + " after")
		if !strings.Contains(got, Mask) || strings.Contains(got, "w0rd") || strings.Contains(got, "cEBzcy") {
			t.Errorf("%s form %q not masked: %q", name, form, got)
		}
	}
}

func TestRedactMultiLineSecret(t *testing.T) {
	t.Parallel()
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIm7yKIMn0uV1tQ3xKq0sWvY5nq3ZpH0\nAwEHoUQDQgAEq9tK3Zf2Y8xN\n-----END EC PRIVATE KEY-----\n"
	r := NewRedactor()
	r.Add(key)
	got := r.Redact("key:\n" + key)
	if strings.Contains(got, "MHcCAQ") || strings.Contains(got, "AwEHoUQ") {
		t.Fatalf("a line of the key survived:\n%s", got)
	}
	quoted := r.Redact(strconv.Quote(key))
	if strings.Contains(quoted, "MHcCAQ") || strings.Contains(quoted, "AwEHoUQ") {
		t.Fatalf("the quoted key survived: %s", quoted)
	}
}

// The automaton agrees with a brute-force redaction on random secrets and texts over a small
// alphabet, where overlaps and shared prefixes are frequent.
func TestRedactMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	randString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc"[rng.IntN(3)]
		}
		return string(b)
	}
	for round := 0; round < 300; round++ {
		var patterns []string
		for i := rng.IntN(6) + 1; i > 0; i-- {
			patterns = append(patterns, randString(rng.IntN(5)+1))
		}
		text := randString(rng.IntN(40))
		m := newMatcher(patterns)
		var b strings.Builder
		spans := m.scanString(text, nil)
		prev := 0
		for _, sp := range spans {
			b.WriteString(text[prev:sp.start] + "#")
			prev = sp.end
		}
		b.WriteString(text[prev:])
		if want := bruteForceMask(text, patterns); b.String() != want {
			t.Fatalf("patterns %q, text %q: got %q, want %q", patterns, text, b.String(), want)
		}
	}
}

// bruteForceMask marks every byte covered by an occurrence of a pattern and replaces each run of
// overlapping occurrences by "#".
func bruteForceMask(text string, patterns []string) string {
	type iv struct{ s, e int }
	var occ []iv
	for i := range text {
		for _, p := range patterns {
			if strings.HasPrefix(text[i:], p) {
				occ = append(occ, iv{i, i + len(p)})
			}
		}
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		end := -1
		for _, o := range occ {
			if o.s == i && o.e > end {
				end = o.e
			}
		}
		if end < 0 {
			b.WriteByte(text[i])
			i++
			continue
		}
		// Extend over occurrences that overlap the run.
		for grown := true; grown; {
			grown = false
			for _, o := range occ {
				if o.s > i && o.s < end && o.e > end {
					end, grown = o.e, true
				}
			}
		}
		b.WriteByte('#')
		i = end
	}
	return b.String()
}

func TestWriterMasksSecretsSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	r.Add("s3cr3t-value", "t-valueX")
	line := "user=admin password=s3cr3t-valueX and again s3cr3t-value\n"
	want := r.Redact(line)
	if strings.Contains(want, "s3cr3t") || strings.Contains(want, "valueX") {
		t.Fatalf("bad expectation %q", want)
	}
	// Every way of cutting the line in two, and byte by byte.
	for cut := 0; cut <= len(line); cut++ {
		var out bytes.Buffer
		w := r.Writer(&out)
		for _, part := range []string{line[:cut], line[cut:]} {
			if n, err := w.Write([]byte(part)); err != nil || n != len(part) {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if out.String() != want {
			t.Fatalf("cut at %d: got %q, want %q", cut, out.String(), want)
		}
	}
	var out bytes.Buffer
	w := r.Writer(&out)
	for i := 0; i < len(line); i++ {
		_, _ = w.Write([]byte{line[i]})
		if strings.Contains(out.String(), "s3cr3") {
			t.Fatalf("after byte %d, part of the secret was passed on: %q", i, out.String())
		}
	}
	if out.String() != want {
		t.Fatalf("byte by byte: got %q, want %q", out.String(), want)
	}
}

func TestWriterPassesCompleteLinesAtOnce(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	r.Add("secret-one", "secret-two")
	var out bytes.Buffer
	w := r.Writer(&out)
	written := ""
	for _, line := range []string{"first secret-one line\n", "second line ends with secret-\n", "secret-two\n"} {
		_, _ = w.Write([]byte(line))
		written += line
		if out.String() != r.Redact(written) {
			t.Fatalf("after %q: got %q, want everything written so far", line, out.String())
		}
	}
	// An unterminated fragment that could begin a secret is held back until Flush.
	_, _ = w.Write([]byte("tail secret-o"))
	if strings.HasSuffix(out.String(), "secret-o") {
		t.Fatal("the possible beginning of a secret was passed on before it was complete")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "tail secret-o") {
		t.Fatalf("Flush did not pass the tail on: %q", out.String())
	}
}

func TestWriterLearnsNewSecretsAndIsConcurrencySafe(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	var out lockedBuffer
	w := r.Writer(&out)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r.Add(fmt.Sprintf("secret-%d-%d", g, i))
				fmt.Fprintf(w, "goroutine %d says secret-%d-%d\n", g, g, i)
				_ = r.Redact("secret-0-1")
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	lines := 0
	for sc.Scan() {
		lines++
		if strings.Contains(sc.Text(), "secret-") || !strings.HasSuffix(sc.Text(), Mask) {
			t.Fatalf("line not masked: %q", sc.Text())
		}
	}
	if lines != 800 {
		t.Fatalf("%d lines, want 800", lines)
	}
}

// Plugin logs reach the host through go-plugin, which replays them on the host's hclog logger;
// with its output redacted, a secret logged by a plugin in any form is masked, in JSON and text.
func TestHclogOutputIsRedacted(t *testing.T) {
	t.Parallel()
	const password = `n0t"so<secret>&\pass`
	r := NewRedactor()
	r.Add(password)
	for _, jsonFormat := range []bool{true, false} {
		var out bytes.Buffer
		log := r.NewLogger(&hclog.LoggerOptions{Name: "host", Output: &out, JSONFormat: jsonFormat, Level: hclog.Debug})
		plugin := log.Named("plugin.citrix-nitro")
		plugin.Info("login", "password", password, "url", "https://adc/login?pw="+url.QueryEscape(password))
		plugin.Debug("request body", "body", map[string]string{"password": password})
		plugin.Error("failed: " + password)
		got := out.String()
		for _, leak := range []string{"n0t", "so<secret>", `so\u003csecret`, `&\pass`, `\u0026\\pass`} {
			if strings.Contains(got, leak) {
				t.Fatalf("json=%v: %q survived:\n%s", jsonFormat, leak, got)
			}
		}
		if strings.Count(got, Mask) < 4 {
			t.Fatalf("json=%v: expected masks:\n%s", jsonFormat, got)
		}
		if jsonFormat {
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				var entry map[string]any
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("redaction broke the JSON: %v\n%s", err, line)
				}
			}
		}
	}
	// HclogOutput is the same redaction for callers that build their own logger.
	var out bytes.Buffer
	hclog.New(&hclog.LoggerOptions{Output: r.HclogOutput(&out)}).Warn("pw", "v", password)
	if strings.Contains(out.String(), "n0t") {
		t.Fatalf("HclogOutput did not redact: %s", out.String())
	}
}

func TestAddBasicAuth(t *testing.T) {
	t.Parallel()
	r := NewRedactor()
	r.AddBasicAuth("admin", "john_1234")
	header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("admin:john_1234"))
	if got := r.Redact(header); got != "Authorization: Basic "+Mask {
		t.Fatalf("got %q", got)
	}
	r.AddBasicAuth("admin", "abc") // too short: nothing registered
	if got := r.Redact(base64.StdEncoding.EncodeToString([]byte("admin:abc"))); strings.Contains(got, Mask) {
		t.Fatalf("short password registered: %q", got)
	}
}

// benchmarkSecrets registers n random 16-32 character secrets and returns them.
func benchmarkSecrets(r *Redactor, n int) []string {
	rng := rand.New(rand.NewPCG(7, 7))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#%&*-_=+"
	secrets := make([]string, n)
	for i := range secrets {
		b := make([]byte, 16+rng.IntN(17))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		secrets[i] = string(b)
	}
	r.Add(secrets...)
	return secrets
}

// logLine1K is a 1 KiB hclog-style JSON log line; with secret != "", it holds it twice.
func logLine1K(secret string) string {
	var b strings.Builder
	b.WriteString(`{"@level":"debug","@message":"nitro request","@module":"plugin.citrix-nitro","@timestamp":"2024-05-01T10:00:00.000000Z","method":"POST","url":"https://adc1.example.com/nitro/v1/config/sslcertkey","status":201`)
	if secret != "" {
		b.WriteString(`,"password":"` + secret + `","auth":"` + secret + `"`)
	}
	b.WriteString(`,"body":"`)
	for b.Len() < 1022 {
		b.WriteString("certkey=www-example-com-2024 cert=/nflash/ssl/www.crt key=/nflash/ssl/www.key ")
	}
	s := b.String()[:1022] + `"}`
	return s
}

func BenchmarkRedact(b *testing.B) {
	r := NewRedactor()
	secrets := benchmarkSecrets(r, 50)
	for _, c := range []struct{ name, line string }{
		{"50secrets/1KiB/no-match", logLine1K("")},
		{"50secrets/1KiB/2-matches", logLine1K(secrets[17])},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.line)))
			b.ReportAllocs()
			for b.Loop() {
				_ = r.Redact(c.line)
			}
		})
	}
	b.Run("50secrets/1KiB/writer", func(b *testing.B) {
		line := []byte(logLine1K(secrets[3]) + "\n")
		w := r.Writer(discard{})
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = w.Write(line)
		}
	})
}

// BenchmarkRedactStringsReplacer is the simple alternative, for comparison: one strings.Replacer
// over the same patterns (it masks leftmost-first, not the union of overlapping secrets).
func BenchmarkRedactStringsReplacer(b *testing.B) {
	r := NewRedactor()
	secrets := benchmarkSecrets(r, 50)
	var oldnew []string
	for p := range r.known {
		oldnew = append(oldnew, p, Mask)
	}
	rep := strings.NewReplacer(oldnew...)
	for _, c := range []struct{ name, line string }{
		{"50secrets/1KiB/no-match", logLine1K("")},
		{"50secrets/1KiB/2-matches", logLine1K(secrets[17])},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.line)))
			b.ReportAllocs()
			for b.Loop() {
				_ = rep.Replace(c.line)
			}
		})
	}
}

func BenchmarkAdd(b *testing.B) {
	for b.Loop() {
		r := NewRedactor()
		benchmarkSecrets(r, 50)
		r.Redact("") // builds the automaton
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
