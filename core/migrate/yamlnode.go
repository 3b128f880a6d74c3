package migrate

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

func docRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

// get returns the value of key in a mapping (keys compared without case), or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, key) {
			return n.Content[i+1]
		}
	}
	return nil
}

// pick returns the first of the spellings present in a mapping, and which one it was.
func pick(n *yaml.Node, spellings ...string) (string, *yaml.Node) {
	for _, s := range spellings {
		if v := get(n, s); v != nil {
			return s, v
		}
	}
	return "", nil
}

func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func str(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return strings.TrimSpace(n.Value)
}

// keys lists a mapping's keys in order.
func keys(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}

// yesNo reads the agents' booleans: yes/no, true/false, True/False, on/off, 1/0.
func yesNo(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "on", "1", "y":
		return true, true
	case "no", "false", "off", "0", "n":
		return false, true
	}
	return false, false
}

func atoi(s string) (int, bool) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	return v, err == nil
}

// list reads a YAML list or a comma-separated string.
func list(n *yaml.Node) []string {
	var out []string
	add := func(s string) {
		for _, part := range strings.Split(s, ",") {
			if p := strings.TrimSpace(part); p != "" {
				out = append(out, p)
			}
		}
	}
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		for _, it := range n.Content {
			add(str(it))
		}
		return out
	}
	add(str(n))
	return out
}

// isEncrypted reports whether a stored value is a sops ciphertext.
func isEncrypted(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, "ENC[")
}

// rawAt follows the same path in the stored (encrypted) document as in the decrypted one.
func rawAt(raw *yaml.Node, path []any) *yaml.Node {
	n := raw
	for _, p := range path {
		switch k := p.(type) {
		case string:
			n = get(n, k)
		case int:
			it := items(n)
			if k >= len(it) {
				return nil
			}
			n = it[k]
		}
		if n == nil {
			return nil
		}
	}
	return n
}
