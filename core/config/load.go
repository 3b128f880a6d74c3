package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/certfleet/certfleet/plugins/sdk"
	"gopkg.in/yaml.v3"
)

// Resolver expands a secret reference such as ${env:NAME} inside a value.
type Resolver interface {
	Resolve(ctx context.Context, value string) (string, error)
}

type loader struct {
	readFile func(path string) ([]byte, error)
	resolver Resolver
	ctx      context.Context
	onState  func(State)
	cache    *Cache
	// record, when not nil, collects what a cache entry needs while an unresolved load runs.
	record *cacheRecord
}

// LoadOption changes how Load reads.
type LoadOption func(*loader)

// WithFileReader reads configuration files through fn (to decrypt sops files in memory).
func WithFileReader(fn func(path string) ([]byte, error)) LoadOption {
	return func(l *loader) { l.readFile = fn }
}

// WithResolver expands secret references while loading; without it they are only checked.
func WithResolver(ctx context.Context, r Resolver) LoadOption {
	return func(l *loader) { l.resolver, l.ctx = r, ctx }
}

// WithStateFirst calls fn once with the state section, as early as it can be known, so that a
// caller can start reading the state database while the rest of the configuration is parsed,
// built and checked: as soon as a file is read when its top level has a `state:` line (that
// section alone is parsed), otherwise once every file is parsed. fn is not called when that
// section shows a problem, nor after a file fails to parse. It is a hint: Load's result is the
// authority, and a caller keeps what it started only if Load succeeds with the same State.
func WithStateFirst(fn func(State)) LoadOption {
	return func(l *loader) { l.onState = fn }
}

// raw is what one file defines, before defaults and cross-checks.
type raw struct {
	file     string
	sections map[string]*yaml.Node
	keys     map[string]*yaml.Node
}

// Load reads path (a file, or a directory of *.yaml / *.yml files) and checks everything. The
// error, if any, is an *Errors listing every problem.
func Load(path string, opts ...LoadOption) (*Config, []Warning, error) {
	l := &loader{readFile: func(p string) ([]byte, error) { return boundedfile.Read(p, boundedfile.DefaultLimit) }, ctx: context.Background()}
	for _, o := range opts {
		o(l)
	}
	files, err := configFiles(path)
	if err != nil {
		return nil, nil, err
	}
	if l.cache != nil {
		return l.loadCached(path, files)
	}
	return l.load(files)
}

// load parses, builds and checks files.
func (l *loader) load(files []string) (*Config, []Warning, error) {
	errs := &Errors{}
	var warnings []Warning
	var raws []raw
	for _, f := range files {
		data, err := l.readFile(f)
		if err != nil {
			errs.add(Position{File: f}, "", "", "%v", err)
			continue
		}
		if l.record != nil {
			l.record.read(f, data)
		}
		if l.onState != nil && errs.Err() == nil {
			if s, ok := stateSection(f, data); ok {
				l.onState(s)
				l.onState = nil
			}
		}
		doc, line, err := parseDocument(data)
		if err != nil {
			errs.add(Position{File: f}, "", "fix the YAML syntax", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			continue
		}
		if line > 0 {
			errs.add(Position{File: f, Line: line}, "", "certfleet reads one YAML document per file: remove the `---` separator, or move the second document into a file of its own in the configuration directory",
				"a second YAML document starts here; it would be ignored")
			continue
		}
		if len(doc.Content) == 0 {
			errs.add(Position{File: f}, "", "add at least `version: v1`", "the file is empty")
			continue
		}
		warnings = append(warnings, l.references(f, doc.Content[0], sopsSource(f, data), "", errs)...)
		if l.record != nil {
			l.record.roots = append(l.record.roots, fileRoot{file: f, root: doc.Content[0]})
		}
		if r, ok := splitFile(f, doc.Content[0], errs); ok {
			raws = append(raws, r)
		}
	}
	if l.onState != nil && errs.Err() == nil {
		if s, ok := stateFirst(raws); ok {
			l.onState(s)
		}
	}
	var deps *[]cacheDep
	if l.record != nil {
		deps = &l.record.deps
	}
	cfg := build(raws, errs, &warnings, deps)
	if err := errs.Err(); err != nil {
		return nil, warnings, err
	}
	if l.record != nil {
		l.record.warnings = append([]Warning(nil), warnings...)
	}
	return cfg, append(warnings, plainHTTPWarnings(cfg)...), nil
}

// plainHTTPWarnings repeats, on every load, that a device is reached over plain http.
func plainHTTPWarnings(cfg *Config) []Warning {
	var out []Warning
	for _, name := range sortedKeys(cfg.Devices) {
		if d := cfg.Devices[name]; d.AllowPlainHTTP && strings.HasPrefix(strings.ToLower(d.Address), "http://") {
			out = append(out, Warning{Position: d.Position, Path: "devices." + name + ".address",
				Message: "the device is reached over plain http: its credentials and every request cross the network unencrypted",
				Hint:    "use https:// and remove allow_plain_http"})
		}
	}
	return out
}

// parseDocument parses the YAML document of data, and returns the line where a second document
// starts (0: there is none). One decoder reads both, so the first document is parsed once.
func parseDocument(data []byte) (doc yaml.Node, second int, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return yaml.Node{}, 0, nil // an empty file: no document
		}
		return yaml.Node{}, 0, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != nil || len(next.Content) == 0 {
		return doc, 0, nil // io.EOF
	}
	if n := next.Content[0]; n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" {
		return doc, 0, nil // a trailing `---` with nothing after it
	}
	return doc, next.Content[0].Line, nil
}

func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w (give the file or directory with --config)", path, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("configuration directory %s cannot be read: %w (the user running certfleet needs read and search permission on it)", path, err)
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); ext == ".yaml" || ext == ".yml" {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("configuration directory %s holds no *.yaml or *.yml file", path)
	}
	return files, nil
}

var topLevel = []string{"version", "defaults", "state", "logging", "runtime", "plugins", "issuers", "devices", "certificates", "daemon", "notifications"}

// splitFile checks a file's top level and keeps its sections.
func splitFile(file string, root *yaml.Node, errs *Errors) (raw, bool) {
	w := &walker{file: file, errs: errs}
	r := raw{file: file, sections: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	f := fields{}
	for _, name := range topLevel {
		f[name] = func(n *yaml.Node, _ string) { r.sections[name] = n }
	}
	w.object(root, "", f)
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			r.keys[root.Content[i].Value] = root.Content[i]
		}
	}
	v, ok := r.sections["version"]
	switch {
	case !ok:
		errs.add(Position{File: file, Line: 1}, "version", "add `version: v1` at the top", "is missing")
		return r, false
	case v.Value != "v1":
		errs.add(w.pos(v), "version", "this certfleet reads version v1", "%q is not a known configuration version", v.Value)
		return r, false
	}
	return r, root.Kind == yaml.MappingNode
}

var (
	reference = regexp.MustCompile(`\$\{([^}]*)\}`)
	refForm   = regexp.MustCompile(`^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|sops:[^#]+#.+)$`)
)

// secretKeys are fields that hold secrets; a literal value there draws a warning.
var secretKeys = map[string]bool{
	"password": true, "client_secret": true, "api_key": true, "token": true, "hmac_key": true,
	"account_key_passphrase": true, "secret": true, "tsig_secret": true,
}

// references checks (and, with a resolver, expands) every ${...} in the tree, and warns about
// secrets written in plain text.
//
// enc is the same place in the file as stored on disk when the file is sops-encrypted (nil
// otherwise): a value sops encrypted there is not "in plain text".
func (l *loader) references(file string, n, enc *yaml.Node, key string, errs *Errors) []Warning {
	var warnings []Warning
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			warnings = append(warnings, l.references(file, n.Content[i+1], encChild(enc, n.Content[i].Value), n.Content[i].Value, errs)...)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for i, c := range n.Content {
			warnings = append(warnings, l.references(file, c, encIndex(enc, n.Kind, i), key, errs)...)
		}
	case yaml.AliasNode:
		if l.record != nil {
			l.record.aliases = true // one node may reach several places: see cacheRecord.entry
		}
	case yaml.ScalarNode:
		pos := Position{File: file, Line: n.Line}
		var refs [][]string
		if strings.Contains(n.Value, "${") { // most values hold none: no regexp for them
			refs = reference.FindAllStringSubmatch(strings.ReplaceAll(n.Value, "$${", ""), -1)
		}
		bad := false
		for _, m := range refs {
			if !refForm.MatchString(m[1]) {
				errs.add(pos, key, "use ${env:NAME}, ${file:/path} or ${sops:/path/file.yaml#key.path}; write $${ for a literal ${", "%q is not a secret reference", m[0])
				bad = true
			}
		}
		sopsEncrypted := enc != nil && enc.Kind == yaml.ScalarNode && strings.HasPrefix(enc.Value, "ENC[")
		if len(refs) == 0 && secretKeys[key] && n.Value != "" && !sopsEncrypted {
			warnings = append(warnings, Warning{Position: pos, Path: key, Message: "a secret is written in the configuration in plain text",
				Hint: "use ${env:NAME}, ${file:/path} or a sops-encrypted file"})
		}
		// What a resolver is asked, and (recording) what the cache resolves after a hit.
		toResolve := !bad && (len(refs) > 0 || strings.Contains(n.Value, "$${"))
		if l.record != nil && toResolve {
			l.record.refs = append(l.record.refs, recordedRef{node: n, ref: cachedRef{File: file, Line: n.Line, Key: key, Value: n.Value}})
		}
		if l.resolver != nil && toResolve {
			v, err := l.resolver.Resolve(l.ctx, n.Value)
			if err != nil {
				errs.add(pos, key, "", "%v", err)
			} else {
				n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
			}
		}
	}
	return warnings
}

// stateSection reads the state section of a file's data alone, before the file is parsed: the
// lines from a `state:` at the start of a line (a top-level key in block style) up to the next
// line that starts with anything but a space, a tab, a comment or the line's end (false: there is
// no such line, or it does not read as a state section by itself).
func stateSection(file string, data []byte) (State, bool) {
	start, found := stateLine(data)
	if !found {
		return State{}, false
	}
	end, _ := sectionEnd(data[start:])
	return parseStateSection(file, data[start:start+end])
}

// stateLine is where the first line that starts with `state:` starts.
func stateLine(data []byte) (int, bool) {
	if bytes.HasPrefix(data, []byte("state:")) {
		return 0, true
	}
	i := bytes.Index(data, []byte("\nstate:"))
	return i + 1, i >= 0
}

// sectionEnd is where the top-level section whose first line starts data ends: at the next line
// that starts with anything but a space, a tab, a comment or the line's end (len(data), false:
// not within data).
func sectionEnd(data []byte) (int, bool) {
	end := 0
	for {
		nl := bytes.IndexByte(data[end:], '\n')
		if nl < 0 {
			return len(data), false
		}
		end += nl + 1
		if end < len(data) && !sectionContinues(data[end]) {
			return end, true
		}
	}
}

// sectionContinues says whether a line starting with c is still within the section above it.
func sectionContinues(c byte) bool { return strings.IndexByte(" \t\r\n#", c) >= 0 }

// parseStateSection reads a state section's lines (false: they do not read as one by themselves).
func parseStateSection(file string, section []byte) (State, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(section, &doc); err != nil || len(doc.Content) != 1 {
		return State{}, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || len(root.Content) != 2 || root.Content[0].Value != "state" {
		return State{}, false
	}
	scratch := &Errors{}
	w := &walker{file: file, errs: scratch}
	s := w.state(root.Content[1], w.pos(root.Content[0]))
	return s, scratch.Err() == nil
}

// stateFirst reads the state section alone, as build will (false: it is defined twice or has a
// problem, which build reports).
func stateFirst(raws []raw) (State, bool) {
	var s State
	found := false
	for _, r := range raws {
		n, ok := r.sections["state"]
		if !ok {
			continue
		}
		if found {
			return State{}, false
		}
		found = true
		scratch := &Errors{}
		w := &walker{file: r.file, errs: scratch}
		s = w.state(n, w.pos(r.keys["state"]))
		if scratch.Err() != nil {
			return State{}, false
		}
	}
	if !found {
		return State{}, true
	}
	return s, true
}

// build merges the files' sections, applies defaults and checks everything across files.
// deps, when not nil, collects the other files build reads (ca_bundle files).
func build(raws []raw, errs *Errors, warnings *[]Warning, deps *[]cacheDep) *Config {
	cfg := &Config{Issuers: map[string]*Issuer{}, Devices: map[string]*Device{}, Certificates: map[string]*Certificate{}}
	var defaults *defaultsSection
	single := map[string]Position{}
	for _, r := range raws {
		cfg.Files = append(cfg.Files, r.file)
		w := &walker{file: r.file, errs: errs, warnings: warnings, deps: deps}
		for _, name := range []string{"defaults", "state", "logging", "runtime", "plugins", "daemon", "notifications"} {
			n, ok := r.sections[name]
			if !ok {
				continue
			}
			if prev, dup := single[name]; dup {
				errs.add(w.pos(r.keys[name]), name, "keep it in one file", "is also defined at %s", prev)
				continue
			}
			single[name] = w.pos(r.keys[name])
			switch name {
			case "defaults":
				defaults = w.defaults(n)
			case "state":
				cfg.State = w.state(n, w.pos(r.keys[name]))
			case "logging":
				cfg.Logging = w.logging(n)
			case "runtime":
				cfg.Runtime = w.runtime(n)
			case "daemon":
				d := w.daemon(n)
				cfg.Daemon = &d
			case "notifications":
				cfg.Notifications = w.notifications(n)
			case "plugins":
				w.object(n, "plugins", fields{
					"dirs": func(n *yaml.Node, p string) {
						for _, d := range w.stringList(n, p) {
							cfg.Plugins.Dirs = append(cfg.Plugins.Dirs, w.relPath(d))
						}
					},
					"pins_file":   func(n *yaml.Node, p string) { cfg.Plugins.PinsFile = w.relPath(w.str(n, p)) },
					"search_path": func(n *yaml.Node, p string) { cfg.Plugins.SearchPath = w.boolean(n, p) },
					"public_key":  func(n *yaml.Node, p string) { cfg.Plugins.PublicKey = w.relPath(w.str(n, p)) },
				})
			}
		}
	}
	if defaults == nil {
		defaults = &defaultsSection{}
	}
	applyRuntimeDefaults(cfg)
	var certs []*rawCertificate
	for _, r := range raws {
		w := &walker{file: r.file, errs: errs, warnings: warnings, deps: deps}
		if n, ok := r.sections["issuers"]; ok {
			w.entries(n, "issuers", func(name string, k, v *yaml.Node, p string) {
				if prev, dup := cfg.Issuers[name]; dup {
					errs.add(w.pos(k), p, "names must be unique across files", "issuer %q is also defined at %s", name, prev.Position)
					return
				}
				cfg.Issuers[name] = w.issuer(name, k, v, p)
			})
		}
		if n, ok := r.sections["devices"]; ok {
			w.entries(n, "devices", func(name string, k, v *yaml.Node, p string) {
				if prev, dup := cfg.Devices[name]; dup {
					errs.add(w.pos(k), p, "names must be unique across files", "device %q is also defined at %s", name, prev.Position)
					return
				}
				cfg.Devices[name] = w.device(name, k, v, p, cfg.Runtime.PerDevice)
			})
		}
		if n, ok := r.sections["certificates"]; ok {
			seen := map[string]Position{}
			for _, c := range certs {
				seen[c.cert.Name] = c.cert.Position
			}
			w.entries(n, "certificates", func(name string, k, v *yaml.Node, p string) {
				if prev, dup := seen[name]; dup {
					errs.add(w.pos(k), p, "names must be unique across files", "certificate %q is also defined at %s", name, prev)
					return
				}
				rc := w.certificate(name, k, v, p)
				seen[name] = rc.cert.Position
				certs = append(certs, rc)
			})
		}
	}
	for _, rc := range certs {
		c := rc.finish(defaults, cfg, errs)
		cfg.Certificates[c.Name] = c
	}
	checkBindingClaims(cfg, errs)
	return cfg
}

func applyRuntimeDefaults(cfg *Config) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Runtime.Workers, 8)
	def(&cfg.Runtime.PerIssuer, 4)
	def(&cfg.Runtime.PerDevice, 1)
	defDur(&cfg.Runtime.CollectTimeout, 5*time.Minute)
	defDur(&cfg.Runtime.CallTimeout, 2*time.Minute)
	defDur(&cfg.Runtime.RevocationCheckInterval, 24*time.Hour)
	if cfg.Logging.Format == "" {
		cfg.Logging.Format = "text"
	}
}

// relPath makes a relative path relative to the configuration file's directory.
func (w *walker) relPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(w.file), p)
}

func (w *walker) logging(n *yaml.Node) Logging {
	var l Logging
	w.object(n, "logging", fields{
		"level": func(n *yaml.Node, p string) {
			l.Level = w.str(n, p)
			switch l.Level {
			case "trace", "debug", "info", "warn", "error":
			default:
				w.errs.add(w.pos(n), p, "use trace, debug, info, warn or error", "%q is not a log level", l.Level)
			}
		},
		"format": func(n *yaml.Node, p string) {
			l.Format = w.str(n, p)
			if l.Format != "text" && l.Format != "json" {
				w.errs.add(w.pos(n), p, "use text or json", "%q is not a log format", l.Format)
			}
		},
		"file": func(n *yaml.Node, p string) { l.File = w.logFile(n, p) },
	})
	return l
}

func (w *walker) runtime(n *yaml.Node) Runtime {
	var r Runtime
	w.object(n, "runtime", fields{
		"workers":                   func(n *yaml.Node, p string) { r.Workers = w.positive(n, p) },
		"per_issuer":                func(n *yaml.Node, p string) { r.PerIssuer = w.positive(n, p) },
		"per_device":                func(n *yaml.Node, p string) { r.PerDevice = w.positive(n, p) },
		"collect_timeout":           func(n *yaml.Node, p string) { r.CollectTimeout = w.duration(n, p) },
		"call_timeout":              func(n *yaml.Node, p string) { r.CallTimeout = w.duration(n, p) },
		"revocation_check_interval": func(n *yaml.Node, p string) { r.RevocationCheckInterval = w.durationOrNever(n, p) },
		"verify_attempts":           func(n *yaml.Node, p string) { r.VerifyAttempts = w.positive(n, p) },
		"verify_wait":               func(n *yaml.Node, p string) { r.VerifyWait = w.duration(n, p) },
	})
	return r
}

// tls decodes a tls block; ca_bundle is inline PEM or a file holding PEM.
func (w *walker) tls(n *yaml.Node, path string) TLS {
	var t TLS
	w.object(n, path, fields{
		"ca_bundle": func(n *yaml.Node, p string) {
			v := w.str(n, p)
			if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
				t.CABundlePEM = v
			} else if v != "" {
				file := w.relPath(v)
				data, err := boundedfile.Read(file, boundedfile.DefaultLimit)
				if err != nil {
					w.errs.add(w.pos(n), p, "give a PEM file path (relative to this file) or inline PEM", "cannot read %s: %v", file, errors.Unwrap(err))
					return
				}
				if w.deps != nil {
					*w.deps = append(*w.deps, cacheDep{Path: file, Sum: sha256.Sum256(data)})
				}
				t.CABundlePEM = string(data)
			}
			if t.CABundlePEM != "" {
				if _, err := sdk.ParseCertificatesPEM(t.CABundlePEM); err != nil {
					w.errs.add(w.pos(n), p, "it must hold PEM CERTIFICATE blocks", "%v", err)
				}
			}
		},
		"insecure_skip_verify": func(n *yaml.Node, p string) { t.InsecureSkipVerify = w.boolean(n, p) },
		"server_name":          func(n *yaml.Node, p string) { t.ServerName = w.str(n, p) },
	})
	return t
}

// sopsSource returns the top node of a file as stored on disk when data (what the file reader
// returned) is its decryption, so that values sops encrypted can be told from plain ones.
func sopsSource(path string, data []byte) *yaml.Node {
	// Read again only what the file reader accepted: a regular file of a sane size (sops adds
	// metadata and base64 to the plaintext, well under this bound).
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() || st.Size() > 4*int64(len(data))+1<<20 {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil || bytes.Equal(raw, data) || !bytes.Contains(raw, []byte("ENC[")) {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(raw, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func encChild(enc *yaml.Node, key string) *yaml.Node {
	if enc == nil || enc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(enc.Content); i += 2 {
		if enc.Content[i].Value == key {
			return enc.Content[i+1]
		}
	}
	return nil
}

func encIndex(enc *yaml.Node, kind yaml.Kind, i int) *yaml.Node {
	if enc == nil || kind != yaml.SequenceNode || enc.Kind != yaml.SequenceNode || i >= len(enc.Content) {
		return nil
	}
	return enc.Content[i]
}
