package panossim

import (
	"fmt"
	"strings"
)

// The xpath subset PAN-OS clients use against the configuration: absolute location paths of
// element names with equality predicates on @name or on a child's text, e.g.
//
//	/config/shared/certificate/entry[@name='web']
//	/config/shared/ssl-tls-service-profile/entry[./certificate="it's"]
//
// String literals take either quote kind; XPath 1.0 has no escapes inside them.

type step struct {
	tag   string
	preds []pred
}

type pred struct {
	// attr is the attribute name (only "name" is meaningful); child is a child element name.
	attr, child string
	value       string
}

type badXPath struct{ msg string }

func (e *badXPath) Error() string { return e.msg }

func parseXPath(s string) ([]step, error) {
	bad := func(format string, args ...any) error {
		return &badXPath{msg: fmt.Sprintf("bad xpath %q: ", s) + fmt.Sprintf(format, args...)}
	}
	if !strings.HasPrefix(s, "/") {
		return nil, bad("it must be absolute")
	}
	var steps []step
	i := 1
	for i <= len(s) {
		start := i
		for i < len(s) && s[i] != '[' && s[i] != '/' {
			i++
		}
		tag := s[start:i]
		if !validTag(tag) {
			return nil, bad("step %q is not an element name", tag)
		}
		st := step{tag: tag}
		for i < len(s) && s[i] == '[' {
			end, err := predicateEnd(s, i)
			if err != nil {
				return nil, bad("%v", err)
			}
			p, err := parsePred(s[i+1 : end])
			if err != nil {
				return nil, bad("%v", err)
			}
			st.preds = append(st.preds, p)
			i = end + 1
		}
		steps = append(steps, st)
		if i == len(s) {
			break
		}
		if s[i] != '/' {
			return nil, bad("unexpected %q after a predicate", s[i])
		}
		i++
		if i == len(s) {
			return nil, bad("it ends with /")
		}
	}
	return steps, nil
}

func validTag(t string) bool {
	if t == "" {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// predicateEnd finds the ] closing the predicate opened at s[open], skipping quoted text.
func predicateEnd(s string, open int) (int, error) {
	var quote byte
	for i := open + 1; i < len(s); i++ {
		switch {
		case quote != 0:
			if s[i] == quote {
				quote = 0
			}
		case s[i] == '\'' || s[i] == '"':
			quote = s[i]
		case s[i] == ']':
			return i, nil
		}
	}
	return 0, fmt.Errorf("unclosed predicate")
}

func parsePred(p string) (pred, error) {
	eq := strings.IndexByte(p, '=')
	if eq < 0 {
		return pred{}, fmt.Errorf("predicate [%s] is not a comparison", p)
	}
	lhs, rhs := strings.TrimSpace(p[:eq]), strings.TrimSpace(p[eq+1:])
	if len(rhs) < 2 || (rhs[0] != '\'' && rhs[0] != '"') || rhs[len(rhs)-1] != rhs[0] {
		return pred{}, fmt.Errorf("predicate [%s] must compare with a quoted string", p)
	}
	value := rhs[1 : len(rhs)-1]
	if strings.IndexByte(value, rhs[0]) >= 0 {
		return pred{}, fmt.Errorf("predicate [%s] has a quote inside its literal", p)
	}
	switch {
	case strings.HasPrefix(lhs, "@"):
		if !validTag(lhs[1:]) {
			return pred{}, fmt.Errorf("predicate [%s]: bad attribute", p)
		}
		return pred{attr: lhs[1:], value: value}, nil
	default:
		child := strings.TrimPrefix(lhs, "./")
		if !validTag(child) {
			return pred{}, fmt.Errorf("predicate [%s]: bad child name", p)
		}
		return pred{child: child, value: value}, nil
	}
}

func (p pred) matches(n *node) bool {
	if p.attr != "" {
		return p.attr == "name" && n.hasName && n.name == p.value
	}
	for _, c := range n.childrenTagged(p.child) {
		if strings.TrimSpace(c.text) == p.value {
			return true
		}
	}
	return false
}

func (st step) matches(n *node) bool {
	if n.tag != st.tag {
		return false
	}
	for _, p := range st.preds {
		if !p.matches(n) {
			return false
		}
	}
	return true
}

// selectNodes returns the nodes steps address below root (whose tag is the first step), with
// their parents.
func selectNodes(root *node, steps []step) (found, parents []*node) {
	if len(steps) == 0 || !steps[0].matches(root) {
		return nil, nil
	}
	cur := []*node{root}
	var curParents []*node = []*node{nil}
	for _, st := range steps[1:] {
		var next, nextParents []*node
		for _, n := range cur {
			for _, c := range n.children {
				if st.matches(c) {
					next = append(next, c)
					nextParents = append(nextParents, n)
				}
			}
		}
		cur, curParents = next, nextParents
	}
	return cur, curParents
}

// ensurePath returns the one node steps address, creating missing steps that can be created
// (plain elements, and entries named by [@name=...]).
func ensurePath(root *node, steps []step) (*node, error) {
	if len(steps) == 0 || !steps[0].matches(root) {
		return nil, &badXPath{msg: "xpath must start at /config"}
	}
	cur := root
	for _, st := range steps[1:] {
		var matches []*node
		for _, c := range cur.children {
			if st.matches(c) {
				matches = append(matches, c)
			}
		}
		switch len(matches) {
		case 1:
			cur = matches[0]
			continue
		case 0:
		default:
			return nil, &badXPath{msg: fmt.Sprintf("xpath step %s matches %d nodes", st.tag, len(matches))}
		}
		n := &node{tag: st.tag}
		for _, p := range st.preds {
			if p.attr != "name" {
				return nil, &badXPath{msg: fmt.Sprintf("cannot create %s from a predicate on %s", st.tag, p.child+p.attr)}
			}
			n.name, n.hasName = p.value, true
		}
		cur.children = append(cur.children, n)
		cur = n
	}
	return cur, nil
}
