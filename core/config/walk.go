package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// walker decodes a YAML node tree by hand, so that every unknown key and every wrong value is
// reported with its own line, and decoding goes on after a problem.
type walker struct {
	file     string
	errs     *Errors
	warnings *[]Warning  // nil: warnings are dropped
	deps     *[]cacheDep // nil: the files read are not recorded
}

// warn records something allowed but probably wrong.
func (w *walker) warn(n *yaml.Node, path, hint, format string, args ...any) {
	if w.warnings != nil {
		*w.warnings = append(*w.warnings, Warning{Position: w.pos(n), Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
	}
}

func (w *walker) pos(n *yaml.Node) Position { return Position{File: w.file, Line: n.Line} }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields maps the keys a mapping may hold to their decoders.
type fields map[string]func(n *yaml.Node, path string)

func (f fields) names() []string {
	out := make([]string, 0, len(f))
	for k := range f {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "empty"
	}
	return strings.TrimPrefix(n.Tag, "!!") + " " + strconv.Quote(n.Value)
}

// object walks a mapping, calling the decoder of each key and reporting unknown or repeated keys.
func (w *walker) object(n *yaml.Node, path string, f fields) {
	w.walkObject(n, path, func(key string) bool { _, ok := f[key]; return ok }, f.names, func(key string, v *yaml.Node, p string) { f[key](v, p) })
}

// keySet is the keys a mapping decoded by a switch may hold (objectOf), sorted as hints list them.
type keySet []string

func newKeySet(keys ...string) keySet {
	sort.Strings(keys)
	return keySet(keys)
}

func (k keySet) has(key string) bool {
	for _, known := range k {
		if known == key {
			return true
		}
	}
	return false
}

// objectOf is object with one decoder for every key of keys (a switch): for the mappings repeated
// for every certificate, which would otherwise build a map of closures each.
func (w *walker) objectOf(n *yaml.Node, path string, keys keySet, dec func(key string, v *yaml.Node, path string)) {
	w.walkObject(n, path, keys.has, func() []string { return keys }, dec)
}

func (w *walker) walkObject(n *yaml.Node, path string, known func(key string) bool, names func() []string, dec func(key string, v *yaml.Node, path string)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errs.add(w.pos(n), path, "", "must be a mapping, not %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if setBefore(n, i) {
			w.errs.add(w.pos(k), p, "remove one of them", "is set twice")
			continue
		}
		if !known(k.Value) {
			hint := "known fields: " + strings.Join(names(), ", ")
			if s := suggest(k.Value, names()); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			w.errs.add(w.pos(k), p, hint, "unknown field %q", k.Value)
			continue
		}
		dec(k.Value, v, p)
	}
}

// setBefore reports whether the key at i of mapping n came earlier in it (objects hold a few keys:
// comparing is cheaper than a set).
func setBefore(n *yaml.Node, i int) bool {
	for j := 0; j < i; j += 2 {
		if n.Content[j].Value == n.Content[i].Value {
			return true
		}
	}
	return false
}

// entries walks a mapping of names to objects (issuers, devices, certificates).
func (w *walker) entries(n *yaml.Node, path string, each func(name string, key, value *yaml.Node, path string)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errs.add(w.pos(n), path, "write it as name: {fields}", "must be a mapping of names, not %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			w.errs.add(w.pos(k), p, "names must be unique", "is defined twice in this file")
			continue
		}
		seen[k.Value] = true
		if !validEntryName(k.Value) {
			w.errs.add(w.pos(k), p, "use letters, digits, '.', '_' and '-'", "name %q is not allowed", k.Value)
			continue
		}
		each(k.Value, k, v, p)
	}
}

// validEntryName reports whether s is an allowed name of an issuer, device or certificate:
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
func validEntryName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func (w *walker) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		w.errs.add(w.pos(n), path, "", "must be %s, not %s", want, kindName(n))
		return false
	}
	return true
}

func (w *walker) str(n *yaml.Node, path string) string {
	if !w.scalar(n, path, "a string") || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func (w *walker) integer(n *yaml.Node, path string) int {
	if !w.scalar(n, path, "a whole number") {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || n.Tag != "!!int" {
		w.errs.add(w.pos(n), path, "", "must be a whole number, not %s", kindName(n))
		return 0
	}
	return v
}

func (w *walker) positive(n *yaml.Node, path string) int {
	v := w.integer(n, path)
	if v < 1 && n.Tag == "!!int" {
		w.errs.add(w.pos(n), path, "", "must be 1 or more, not %d", v)
	}
	return v
}

func (w *walker) boolean(n *yaml.Node, path string) bool {
	if !w.scalar(n, path, "true or false") {
		return false
	}
	if n.Tag != "!!bool" {
		w.errs.add(w.pos(n), path, "", "must be true or false, not %s", kindName(n))
		return false
	}
	return n.Value == "true"
}

// parseDuration reads Go durations plus days ("30d").
func parseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		days, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(days * 24 * float64(time.Hour)), nil
	}
	return time.ParseDuration(s)
}

func (w *walker) duration(n *yaml.Node, path string) time.Duration {
	if !w.scalar(n, path, "a duration") {
		return 0
	}
	d, err := parseDuration(n.Value)
	if err != nil || d <= 0 {
		w.errs.add(w.pos(n), path, `write e.g. "30d", "12h" or "90s"`, "%q is not a positive duration", n.Value)
		return 0
	}
	return d
}

// durationOrNever reads a duration that may be turned off: "never", or a negative duration (as
// the README has always said), gives -1.
func (w *walker) durationOrNever(n *yaml.Node, path string) time.Duration {
	if !w.scalar(n, path, "a duration") {
		return 0
	}
	if n.Value == "never" {
		return -1
	}
	d, err := parseDuration(n.Value)
	if err != nil || d == 0 {
		w.errs.add(w.pos(n), path, `write e.g. "30d", "12h" or "90s", or "never"`, "%q is not a duration", n.Value)
		return 0
	}
	if d < 0 {
		return -1
	}
	return d
}

func (w *walker) stringList(n *yaml.Node, path string) []string {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			return nil
		}
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		w.errs.add(w.pos(n), path, "", "must be a list of strings, not %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			w.errs.add(w.pos(item), fmt.Sprintf("%s[%d]", path, i), "", "must be a string, not %s", kindName(item))
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

// freeMap decodes a free-form mapping (vendor options).
func (w *walker) freeMap(n *yaml.Node, path string) map[string]any {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		w.errs.add(w.pos(n), path, "", "must be a mapping, not %s", kindName(n))
		return nil
	}
	var out map[string]any
	if err := n.Decode(&out); err != nil {
		w.errs.add(w.pos(n), path, "", "%v", err)
		return nil
	}
	return out
}

// writtenMap decodes a free-form mapping whose values go to a CA as text (issuer options: SCM
// custom fields), keeping every scalar as written.
func (w *walker) writtenMap(n *yaml.Node, path string) map[string]any {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		w.errs.add(w.pos(n), path, "", "must be a mapping, not %s", kindName(n))
		return nil
	}
	v, err := plainValue(n)
	if err != nil {
		w.errs.add(w.pos(n), path, "", "%v", err)
		return nil
	}
	out, _ := v.(map[string]any)
	return out
}

// plainValue decodes a free-form node keeping every scalar as the user wrote it, unless it reads
// back the same as a plain number or boolean: YAML would turn an unquoted 2025-01-31 into a
// timestamp and 0123 into 83, and an SCM custom field must receive exactly what was written.
func plainValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return plainValue(n.Alias)
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return plainValue(n.Content[0])
		}
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" {
				var merged map[string]any
				if err := n.Decode(&merged); err != nil {
					return nil, err
				}
				return merged, nil
			}
			v, err := plainValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := plainValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!int":
			if i, err := strconv.Atoi(n.Value); err == nil && strconv.Itoa(i) == n.Value {
				return i, nil
			}
		case "!!float":
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil && strconv.FormatFloat(f, 'f', -1, 64) == n.Value {
				return f, nil
			}
		case "!!bool":
			if b, err := strconv.ParseBool(n.Value); err == nil {
				return b, nil
			}
		}
		return n.Value, nil
	}
	var v any
	err := n.Decode(&v)
	return v, err
}
