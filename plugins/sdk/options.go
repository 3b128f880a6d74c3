package sdk

import (
	"fmt"
	"sort"
)

// Options are vendor options from a device's or a binding's configuration. Values are what a
// JSON/YAML document holds: string, bool, float64, []any, map[string]any.
type Options map[string]any

// String returns a string option, def when unset, and an error naming the option when it has another type.
func (o Options) String(name, def string) (string, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("option %q must be a string, got %T", name, v)
	}
	return s, nil
}

// Bool returns a boolean option, def when unset.
func (o Options) Bool(name string, def bool) (bool, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("option %q must be true or false, got %T", name, v)
	}
	return b, nil
}

// Int returns an integer option, def when unset.
func (o Options) Int(name string, def int) (int, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return def, nil
	}
	switch n := v.(type) {
	case float64:
		if n != float64(int(n)) {
			return 0, fmt.Errorf("option %q must be a whole number, got %v", name, n)
		}
		return int(n), nil
	case int:
		return n, nil
	case int64:
		return int(n), nil
	}
	return 0, fmt.Errorf("option %q must be a number, got %T", name, v)
}

// StringList returns a list-of-strings option; a single string counts as a list of one.
func (o Options) StringList(name string) ([]string, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return nil, nil
	}
	switch l := v.(type) {
	case string:
		return []string{l}, nil
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("option %q item %d must be a string, got %T", name, i, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("option %q must be a list of strings, got %T", name, v)
}

// Unknown returns the option names not in specs, sorted, so a plugin can reject typos.
func (o Options) Unknown(specs []OptionSpec) []string {
	known := make(map[string]bool, len(specs))
	for _, s := range specs {
		known[s.Name] = true
	}
	var out []string
	for k := range o {
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
