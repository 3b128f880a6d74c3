package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Resolver expands secret references inside configuration values:
//
//	${env:NAME}              the environment variable NAME (unset is an error; set but empty is "")
//	${file:PATH}             the content of a file, trailing line breaks removed; a sops-encrypted
//	                         file is decrypted
//	${sops:PATH#key.path}    one value of a YAML or JSON document, sops-encrypted or not; the key path
//	                         is dotted, with list indices as numbers or in brackets, and keys that
//	                         contain dots in brackets and quotes: devices.0.password,
//	                         devices[0].password, hosts["adc1.example.com"].password
//
// Literal text around references is kept ("Bearer ${env:TOKEN}"); "$${" stands for a literal "${"
// and is the only escape: any other "$" is kept as it is, so "pa$$word" needs no escaping.
// A relative PATH is relative to BaseDir; "~/" is the user's home directory.
//
// Every resolved value is registered with the Redactor. Files are read, decrypted and parsed once
// per Resolver, and kept in memory only. Plain (unencrypted) files that hold secrets and that group
// or others can read are reported by Warnings. A Resolver is safe for concurrent use.
type Resolver struct {
	// Decrypter decrypts sops files; nil means the zero Decrypter (keys found as the sops CLI does).
	Decrypter *Decrypter
	// Redactor, when not nil, learns every resolved value.
	Redactor *Redactor
	// BaseDir anchors relative paths (normally the configuration file's directory); empty means the
	// working directory.
	BaseDir string
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)

	mu       sync.Mutex
	files    map[string]*cachedFile
	warnings map[string]PermissionWarning
}

type cachedFile struct {
	data      []byte
	encrypted bool
	doc       *yaml.Node // parsed on first ${sops:} use
	docErr    error
}

// HasReference reports whether value contains a ${…} reference (an escaped "$${" is not one).
func HasReference(value string) bool {
	for i := 0; i+1 < len(value); i++ {
		if value[i] != '$' {
			continue
		}
		if strings.HasPrefix(value[i:], "$${") {
			i += 2
			continue
		}
		if value[i+1] == '{' {
			return true
		}
	}
	return false
}

// Resolve expands the references in value. Errors quote the reference, never a secret value.
func (r *Resolver) Resolve(ctx context.Context, value string) (string, error) {
	if !strings.Contains(value, "$") {
		return value, nil
	}
	var b strings.Builder
	for i := 0; i < len(value); {
		j := strings.IndexByte(value[i:], '$')
		if j < 0 {
			b.WriteString(value[i:])
			break
		}
		b.WriteString(value[i : i+j])
		i += j
		switch {
		case strings.HasPrefix(value[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(value[i:], "${"):
			end := strings.IndexByte(value[i:], '}')
			if end < 0 {
				// The text is not quoted: it may be a literal password that happens to contain ${.
				return "", fmt.Errorf("unterminated reference: ${ at offset %d has no closing }; a reference is ${env:NAME}, ${file:PATH} or ${sops:PATH#key.path}; write $${ for a literal ${", i)
			}
			ref := value[i : i+end+1]
			resolved, err := r.resolveRef(ctx, ref[2:len(ref)-1])
			if err != nil {
				if isKnownRef(ref) {
					return "", fmt.Errorf("%s: %w", ref, err)
				}
				return "", fmt.Errorf("reference at offset %d: %w", i, err)
			}
			if r.Redactor != nil {
				r.Redactor.Add(resolved)
			}
			b.WriteString(resolved)
			i += end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), nil
}

func (r *Resolver) resolveRef(ctx context.Context, ref string) (string, error) {
	scheme, arg, _ := strings.Cut(ref, ":")
	switch scheme {
	case "env":
		return r.resolveEnv(arg)
	case "file":
		return r.resolveFile(ctx, arg)
	case "sops":
		return r.resolveSops(ctx, arg)
	}
	return "", errors.New("unknown reference kind: a reference is ${env:NAME}, ${file:PATH} or ${sops:PATH#key.path}; write $${ for a literal ${")
}

// isKnownRef reports whether a ${…} text is a reference of a known kind, which errors may quote
// (it names a variable or a file). Anything else may be a literal secret and is not quoted.
func isKnownRef(ref string) bool {
	return strings.HasPrefix(ref, "${env:") || strings.HasPrefix(ref, "${file:") || strings.HasPrefix(ref, "${sops:")
}

func (r *Resolver) resolveEnv(name string) (string, error) {
	if name == "" || strings.IndexFunc(name, func(c rune) bool {
		return !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9')
	}) >= 0 {
		return "", fmt.Errorf("invalid environment variable name %q (letters, digits and _ only)", name)
	}
	lookup := r.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

func (r *Resolver) resolveFile(ctx context.Context, path string) (string, error) {
	if path == "" {
		return "", errors.New("no file path: use ${file:/path/to/file}")
	}
	f, err := r.load(ctx, path)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(f.data), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s: the file is empty", r.abs(path))
	}
	return v, nil
}

func (r *Resolver) resolveSops(ctx context.Context, arg string) (string, error) {
	hash := strings.LastIndexByte(arg, '#')
	if hash < 0 {
		return "", errors.New("no key path: use ${sops:PATH#key.path}")
	}
	path, keyPath := arg[:hash], arg[hash+1:]
	if path == "" || keyPath == "" {
		return "", errors.New("use ${sops:PATH#key.path}, with both a file path and a key path")
	}
	elems, err := parseKeyPath(keyPath)
	if err != nil {
		return "", err
	}
	f, err := r.load(ctx, path)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	if f.doc == nil && f.docErr == nil {
		f.doc, f.docErr = parseDocument(f.data)
	}
	doc, docErr := f.doc, f.docErr
	r.mu.Unlock()
	if docErr != nil {
		return "", fmt.Errorf("%s: %w", r.abs(path), docErr)
	}
	v, err := lookupPath(doc, elems)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.abs(path), err)
	}
	return v, nil
}

// Warnings returns, sorted by path, the plain files read so far that hold secrets and that group
// or others can read. The caller logs them.
func (r *Resolver) Warnings() []PermissionWarning {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PermissionWarning, 0, len(r.warnings))
	for _, w := range r.warnings {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (r *Resolver) abs(path string) string {
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	}
	if !filepath.IsAbs(path) && r.BaseDir != "" {
		path = filepath.Join(r.BaseDir, path)
	}
	if a, err := filepath.Abs(path); err == nil {
		path = a
	}
	return path
}

// load reads a file once per Resolver (decrypting it if it is a sops file). The lock is held
// while reading, so that concurrent resolutions of the same file decrypt it once.
func (r *Resolver) load(ctx context.Context, path string) (*cachedFile, error) {
	path = r.abs(path)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[path]; ok {
		return f, nil
	}
	d := r.Decrypter
	if d == nil {
		d = &Decrypter{}
	}
	data, encrypted, err := d.readFile(ctx, path)
	if err != nil {
		return nil, err
	}
	if !encrypted {
		if w, err := CheckPermissions(path); err == nil && w != nil {
			if r.warnings == nil {
				r.warnings = map[string]PermissionWarning{}
			}
			r.warnings[path] = *w
		}
	}
	if r.files == nil {
		r.files = map[string]*cachedFile{}
	}
	f := &cachedFile{data: data, encrypted: encrypted}
	r.files[path] = f
	return f, nil
}

// parseDocument parses the first document of a YAML or JSON file (JSON is YAML) into a node tree,
// which keeps every scalar exactly as written: a password 0123 stays "0123".
func parseDocument(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON document: %s", yamlErrorWithoutValues(err))
	}
	return &doc, nil
}

// yamlErrorWithoutValues keeps the position of a YAML syntax error; the yaml package's messages
// quote keys and tokens, never whole values, but be strict about length.
func yamlErrorWithoutValues(err error) string { return SingleLine(err.Error(), 200) }

type pathElem struct {
	key     string
	index   int
	isIndex bool // [N] in brackets: a list index only
	numeric bool // a bare number: a list index, or a mapping key
}

func (e pathElem) String() string {
	if e.isIndex {
		return "[" + strconv.Itoa(e.index) + "]"
	}
	return e.key
}

// parseKeyPath parses a.b.0.c, a.b[0].c and a["x.y"].c.
func parseKeyPath(p string) ([]pathElem, error) {
	bad := func(why string) ([]pathElem, error) {
		return nil, fmt.Errorf("invalid key path %q: %s (use a.b.c, a.list.0.c, a.list[0].c or a[\"key.with.dots\"].c)", p, why)
	}
	var elems []pathElem
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			if i == 0 || i == len(p)-1 || p[i+1] == '.' || p[i+1] == '[' {
				return bad("empty key")
			}
			i++
		case '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return bad("unclosed [")
			}
			inner := p[i+1 : i+end]
			if len(inner) >= 2 && (inner[0] == '"' || inner[0] == '\'') && inner[len(inner)-1] == inner[0] {
				elems = append(elems, pathElem{key: inner[1 : len(inner)-1]})
			} else if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				elems = append(elems, pathElem{index: n, isIndex: true})
			} else {
				return bad("brackets hold a list index or a quoted key")
			}
			i += end + 1
			if i < len(p) && p[i] != '.' && p[i] != '[' {
				return bad("expected . or [ after ]")
			}
		default:
			end := strings.IndexAny(p[i:], ".[")
			if end < 0 {
				end = len(p) - i
			}
			key := p[i : i+end]
			e := pathElem{key: key}
			if n, err := strconv.Atoi(key); err == nil && n >= 0 {
				e.index, e.numeric = n, true
			}
			elems = append(elems, e)
			i += end
		}
	}
	if len(elems) == 0 {
		return bad("empty")
	}
	return elems, nil
}

// lookupPath walks the node tree. Errors name the keys that exist (keys are not secret), never
// a value.
func lookupPath(doc *yaml.Node, elems []pathElem) (string, error) {
	n := doc
	for n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var walked []string
	where := func() string {
		if len(walked) == 0 {
			return "at the top level"
		}
		return "under " + strings.Join(walked, ".")
	}
	for _, e := range elems {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.MappingNode:
			if e.isIndex {
				return "", fmt.Errorf("key path: %s is a mapping, not a list: cannot take item %s", where(), e)
			}
			var next *yaml.Node
			var have []string
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == e.key {
					next = n.Content[i+1]
					break
				}
				have = append(have, strconv.Quote(n.Content[i].Value))
			}
			if next == nil {
				if len(have) > 10 {
					have = append(have[:10], "…")
				}
				return "", fmt.Errorf("key path: no key %q %s (keys there: %s)", e.key, where(), strings.Join(have, ", "))
			}
			n = next
		case yaml.SequenceNode:
			if !e.isIndex && !e.numeric {
				return "", fmt.Errorf("key path: %s is a list: use an item number, not %q", where(), e.key)
			}
			if e.index >= len(n.Content) {
				return "", fmt.Errorf("key path: %s has %d items: no item %d (items count from 0)", where(), len(n.Content), e.index)
			}
			n = n.Content[e.index]
		default:
			return "", fmt.Errorf("key path: %s is a single value, so %s cannot be looked up in it", where(), e)
		}
		walked = append(walked, e.String())
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode:
		return "", fmt.Errorf("key path %s leads to a mapping or list, not a single value", strings.Join(walked, "."))
	case n.Tag == "!!null":
		return "", fmt.Errorf("key path %s leads to an empty (null) value", strings.Join(walked, "."))
	}
	return n.Value, nil
}
