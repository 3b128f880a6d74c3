package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"html"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Mask replaces every secret in redacted text.
const Mask = "[REDACTED]"

// MinSecretLen is the shortest secret the Redactor masks. Shorter values are ignored by Add:
// masking every "abc" or "1" in the logs would make them unreadable while protecting almost
// nothing (a 3-character password falls to guessing anyway). Callers that want to warn about such
// passwords can compare against this constant.
const MinSecretLen = 4

// Redactor masks known secrets in text: log lines, error messages, anything shown or stored.
// Secrets are registered with Add (the Resolver registers every value it resolves). Matching is
// exact and case-sensitive, one pass over the text whatever the number of secrets (Aho-Corasick);
// where occurrences of several secrets overlap, the union is masked, so no byte of any secret
// survives.
//
// The zero value is ready to use; a Redactor is safe for concurrent use.
type Redactor struct {
	mu    sync.Mutex // guards known and rebuilds
	known map[string]struct{}
	// The automaton is rebuilt lazily, on the first use after Add: resolving a configuration adds
	// secrets one by one, and rebuilding on each would cost O(n²).
	dirty   atomic.Bool
	matcher atomic.Pointer[matcher]
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{} }

// Add registers secrets to mask. Surrounding white space is ignored, and values shorter than
// MinSecretLen are not registered. Besides the value itself, Add registers the forms in which it
// commonly shows up in logs: URL query and path escaping, JSON string escaping (with and without
// HTML escaping), Go quoting, hclog's text-format quoting, XML/HTML escaping, and standard and URL-safe
// base64. A multi-line secret (a PEM key) is registered line by line, and whole in its escaped
// forms, so that no registered form contains a line break and log lines can be redacted
// independently (see Writer).
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		for _, form := range secretForms(s) {
			r.addPatternLocked(form)
		}
	}
}

func (r *Redactor) addPatternLocked(p string) {
	if r.known == nil {
		r.known = map[string]struct{}{}
	}
	if _, ok := r.known[p]; !ok {
		r.known[p] = struct{}{}
		r.dirty.Store(true)
	}
}

// current returns the automaton for the secrets added so far, or nil if there are none.
func (r *Redactor) current() *matcher {
	if r.dirty.Load() {
		r.mu.Lock()
		if r.dirty.Load() {
			patterns := make([]string, 0, len(r.known))
			for p := range r.known {
				patterns = append(patterns, p)
			}
			r.matcher.Store(newMatcher(patterns))
			r.dirty.Store(false)
		}
		r.mu.Unlock()
	}
	return r.matcher.Load()
}

// AddBasicAuth registers a password and the HTTP Basic credentials built from it
// (base64 of "username:password"), which contain no encoding of the password on its own.
func (r *Redactor) AddBasicAuth(username, password string) {
	r.Add(password)
	if len(strings.TrimSpace(password)) < MinSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addPatternLocked(base64.StdEncoding.EncodeToString([]byte(username + ":" + password)))
}

// Len returns the number of registered patterns (secrets times their encodings, deduplicated).
func (r *Redactor) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.known)
}

func secretForms(secret string) []string {
	secret = strings.TrimSpace(secret)
	if len(secret) < MinSecretLen {
		return nil
	}
	var forms []string
	add := func(f string) {
		// Forms with a line break are split: see Add.
		for _, line := range strings.FieldsFunc(f, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if line = strings.TrimSpace(line); len(line) >= MinSecretLen {
				forms = append(forms, line)
			}
		}
	}
	add(secret)
	add(url.QueryEscape(secret))
	add(url.PathEscape(secret))
	add(jsonEscape(secret, true))
	add(jsonEscape(secret, false))
	q := strconv.Quote(secret)
	add(q[1 : len(q)-1])
	// hclog's text format quotes a value by escaping double quotes only.
	add(strings.ReplaceAll(secret, `"`, `\"`))
	add(html.EscapeString(secret))
	var x bytes.Buffer
	_ = xml.EscapeText(&x, []byte(secret)) // writes to a bytes.Buffer cannot fail
	add(x.String())
	// Base64 without padding: the padded encodings start with it.
	add(base64.RawStdEncoding.EncodeToString([]byte(secret)))
	add(base64.RawURLEncoding.EncodeToString([]byte(secret)))
	return forms
}

func jsonEscape(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s) // a string always encodes
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// Redact returns s with every registered secret replaced by Mask.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	m := r.current()
	if m == nil {
		return s
	}
	var buf [8]span
	spans := m.scanString(s, buf[:0])
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prev := 0
	for _, sp := range spans {
		b.WriteString(s[prev:sp.start])
		b.WriteString(Mask)
		prev = sp.end
	}
	b.WriteString(s[prev:])
	return b.String()
}

// RedactBytes is Redact for a byte slice. It returns p itself when there is nothing to mask.
func (r *Redactor) RedactBytes(p []byte) []byte {
	if r == nil {
		return p
	}
	m := r.current()
	if m == nil {
		return p
	}
	var buf [8]span
	spans, _ := m.scan(p, buf[:0])
	if len(spans) == 0 {
		return p
	}
	return appendMasked(make([]byte, 0, len(p)), p, spans)
}

func appendMasked(dst, p []byte, spans []span) []byte {
	prev := 0
	for _, sp := range spans {
		dst = append(dst, p[prev:sp.start]...)
		dst = append(dst, Mask...)
		prev = sp.end
	}
	return append(dst, p[prev:]...)
}

// Writer returns a writer that redacts everything written through it before passing it to w.
//
// A secret split across two Write calls is still masked: the writer holds back, until the next
// Write or Flush, only the trailing bytes that could be the beginning of a secret. Since no
// registered form contains a line break, a Write that ends with a newline is passed on whole and at
// once: line-oriented output (logs) is never delayed. Call Flush (or Close) when done, to pass on
// a final unterminated fragment.
//
// Secrets added to the Redactor later apply to later writes. The writer is safe for concurrent use.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// Writer is the redacting writer returned by Redactor.Writer.
type Writer struct {
	r       *Redactor
	w       io.Writer
	mu      sync.Mutex
	pending []byte // written, not yet passed on
	out     []byte
	spans   []span
}

// Write redacts p and passes it on (all of it, except a possible beginning of a secret at its end).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.r.current()
	if m == nil && len(w.pending) == 0 {
		if _, err := w.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	cut := len(w.pending)
	w.spans = w.spans[:0]
	if m != nil {
		var end int32
		w.spans, end = m.scan(w.pending, w.spans)
		// Hold back what could be the start of a secret completed by the next write, and any
		// occurrence that reaches into it (it may merge with one found then).
		cut -= int(m.depth[end])
		for len(w.spans) > 0 && w.spans[len(w.spans)-1].end > cut {
			if s := w.spans[len(w.spans)-1].start; s < cut {
				cut = s
			}
			w.spans = w.spans[:len(w.spans)-1]
		}
	}
	if err := w.emit(cut); err != nil {
		return 0, err
	}
	return len(p), nil
}

// emit passes on pending[:cut], masked by w.spans, and keeps the rest.
func (w *Writer) emit(cut int) error {
	if cut == 0 {
		return nil
	}
	w.out = appendMasked(w.out[:0], w.pending[:cut], w.spans)
	n := copy(w.pending, w.pending[cut:])
	w.pending = w.pending[:n]
	_, err := w.w.Write(w.out)
	return err
}

// Flush passes on everything held back, redacted.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans = w.spans[:0]
	if m := w.r.current(); m != nil {
		w.spans, _ = m.scan(w.pending, w.spans)
	}
	return w.emit(len(w.pending))
}

// Close flushes the writer. It does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }

// HclogOutput returns a writer to use as hclog.LoggerOptions.Output: every log entry written
// through it, in text or JSON format, is redacted. hclog writes each entry with one Write ending
// in a newline, so entries are never delayed.
func (r *Redactor) HclogOutput(w io.Writer) io.Writer { return r.Writer(w) }

// NewLogger returns an hclog.Logger built from opts whose output (opts.Output, default
// os.Stderr) is redacted. Logs that plugins send to the host through go-plugin are written by this
// logger too, so they are masked as well. opts is not modified.
func (r *Redactor) NewLogger(opts *hclog.LoggerOptions) hclog.Logger {
	o := hclog.LoggerOptions{}
	if opts != nil {
		o = *opts
	}
	out := o.Output
	if out == nil {
		out = os.Stderr
	}
	o.Output = r.Writer(out)
	return hclog.New(&o)
}
