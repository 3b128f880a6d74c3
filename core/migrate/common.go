package migrate

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// entry is a mapping found in an agent file, with its path from the root.
type entry struct {
	label string
	path  []any
	node  *yaml.Node
}

// accounts finds credential entries (mappings holding one of the marker keys) however the agent's
// file nests them: label → entry at the top or under one key, a list of entries (labelled by
// name/label/profile), or a single entry at the top ("default").
func accounts(root *yaml.Node, markers ...string) []entry {
	has := func(n *yaml.Node) bool {
		k, _ := pick(n, markers...)
		return k != ""
	}
	var out []entry
	var walk func(n *yaml.Node, path []any, label string, depth int)
	walk = func(n *yaml.Node, path []any, label string, depth int) {
		switch {
		case n == nil || depth > 2:
		case n.Kind == yaml.MappingNode && has(n):
			if _, l := pick(n, "name", "label", "profile", "enrollment_profile", "credential_id"); str(l) != "" {
				label = str(l)
			}
			if label == "" {
				label = "default"
			}
			out = append(out, entry{label: label, path: path, node: n})
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if k == "sops" {
					continue
				}
				walk(n.Content[i+1], append(append([]any{}, path...), k), k, depth+1)
			}
		case n.Kind == yaml.SequenceNode:
			for i, it := range n.Content {
				walk(it, append(append([]any{}, path...), i), "", depth+1)
			}
		}
	}
	walk(root, nil, "", 0)
	return out
}

// listOf finds the list of mappings in a file (at the top, or under any key) whose items hold one
// of the marker keys, with the key it was under.
func listOf(root *yaml.Node, markers ...string) (string, []any, []*yaml.Node) {
	match := func(n *yaml.Node) bool {
		for _, it := range items(n) {
			if k, _ := pick(it, markers...); k != "" {
				return true
			}
		}
		return false
	}
	if match(root) {
		return "", nil, items(root)
	}
	for _, k := range keys(root) {
		if v := get(root, k); match(v) {
			return k, []any{k}, items(v)
		}
	}
	return "", nil, nil
}

// keySpec maps the agents' key_type/key_size spellings: rsa|RSA, ecdsa|EC|ec, sizes 2048 / "3072",
// P_256, P-384, 256, prime256v1, P256r1.
func keySpec(typ, size string) (*Key, error) {
	k := &Key{}
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "rsa", "":
		k.Type = "rsa"
	case "ecdsa", "ec", "ecc":
		k.Type = "ecdsa"
	default:
		return nil, fmt.Errorf("key type %q: the agents take rsa or ecdsa (EC)", typ)
	}
	s := strings.ToLower(strings.TrimSpace(size))
	s = strings.NewReplacer("p_", "", "p-", "", "secp", "", "prime", "", "r1", "", "v1", "", "k1", "").Replace(s)
	s = strings.TrimPrefix(s, "p")
	if s == "" {
		k.Bits = map[string]int{"rsa": 2048, "ecdsa": 256}[k.Type]
		return k, nil
	}
	bits, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("key size %q: use 2048, 3072, 4096 (RSA) or P_256, P_384 (ECDSA)", size)
	}
	if k.Type == "rsa" && bits < 1024 {
		// A curve size with the default type: the agent's key_size P_256 implies ECDSA.
		k.Type = "ecdsa"
	}
	k.Bits = bits
	return k, nil
}

// address builds a device URL from the agents' protocol/host/port (host may itself be a URL).
func address(protocol, host string, port int) string {
	if strings.Contains(host, "://") {
		return strings.TrimRight(host, "/")
	}
	scheme := strings.ToLower(protocol)
	if scheme == "" {
		scheme = "https"
	}
	h := host
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		h = "[" + host + "]"
	}
	if port != 0 && !(scheme == "http" && port == 80) && !(scheme == "https" && port == 443) {
		h += ":" + strconv.Itoa(port)
	}
	return scheme + "://" + h
}

// sans puts the common name first, then the other names, without duplicates, split into DNS names
// and IP addresses.
func sans(cn string, more []string) *SANs {
	s := &SANs{}
	seen := map[string]bool{}
	for _, n := range append([]string{cn}, more...) {
		n = strings.TrimSpace(n)
		if n == "" || seen[strings.ToLower(n)] {
			continue
		}
		seen[strings.ToLower(n)] = true
		if net.ParseIP(n) != nil {
			s.IP = append(s.IP, n)
		} else {
			s.DNS = append(s.DNS, n)
		}
	}
	if len(s.DNS) == 0 && len(s.IP) == 0 {
		return nil
	}
	return s
}

func days(n int) string { return strconv.Itoa(n) + "d" }

func boolp(b bool) *bool { return &b }
