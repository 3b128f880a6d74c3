package panossim

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is one element of a configuration tree. PAN-OS configuration is XML whose list items are
// <entry name="..."> and <member>; only the name attribute carries meaning.
type node struct {
	tag      string
	name     string
	hasName  bool
	text     string
	children []*node
}

func elem(tag string, children ...*node) *node { return &node{tag: tag, children: children} }

func leaf(tag, text string) *node { return &node{tag: tag, text: text} }

func entry(name string, children ...*node) *node {
	return &node{tag: "entry", name: name, hasName: true, children: children}
}

func (n *node) clone() *node {
	c := &node{tag: n.tag, name: n.name, hasName: n.hasName, text: n.text}
	if len(n.children) > 0 {
		c.children = make([]*node, len(n.children))
		for i, ch := range n.children {
			c.children[i] = ch.clone()
		}
	}
	return c
}

func (n *node) child(tag string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.tag == tag {
			return c
		}
	}
	return nil
}

func (n *node) path(tags ...string) *node {
	for _, t := range tags {
		n = n.child(t)
	}
	return n
}

// value is the text of the leaf at path, "" when absent.
func (n *node) value(tags ...string) string {
	if c := n.path(tags...); c != nil {
		return strings.TrimSpace(c.text)
	}
	return ""
}

func (n *node) entries() []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, c := range n.children {
		if c.tag == "entry" {
			out = append(out, c)
		}
	}
	return out
}

func (n *node) entry(name string) *node {
	for _, e := range n.entries() {
		if e.name == name {
			return e
		}
	}
	return nil
}

func (n *node) memberValues(tags ...string) []string {
	var out []string
	for _, m := range n.path(tags...).childrenTagged("member") {
		out = append(out, strings.TrimSpace(m.text))
	}
	return out
}

func (n *node) childrenTagged(tag string) []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, c := range n.children {
		if c.tag == tag {
			out = append(out, c)
		}
	}
	return out
}

// ensure returns the child tag, creating it.
func (n *node) ensure(tag string) *node {
	if c := n.child(tag); c != nil {
		return c
	}
	c := elem(tag)
	n.children = append(n.children, c)
	return c
}

func (n *node) remove(target *node) bool {
	for i, c := range n.children {
		if c == target {
			n.children = append(n.children[:i], n.children[i+1:]...)
			return true
		}
	}
	return false
}

// same reports whether a and b name the same list item: same tag and, for entries, same name;
// members match on their text.
func same(a, b *node) bool {
	if a.tag != b.tag || a.hasName != b.hasName {
		return false
	}
	if a.hasName {
		return a.name == b.name
	}
	if a.tag == "member" {
		return strings.TrimSpace(a.text) == strings.TrimSpace(b.text)
	}
	return true
}

// merge is the set action: entries merge by name, members are added once, containers merge
// recursively, and a leaf takes the new value.
func (n *node) merge(src *node) {
	for _, s := range src.children {
		var match *node
		for _, c := range n.children {
			if same(c, s) {
				match = c
				break
			}
		}
		switch {
		case match == nil:
			n.children = append(n.children, s.clone())
		case s.tag == "member":
		case len(s.children) == 0 && !s.hasName:
			// An empty element set on a container changes nothing; on a leaf it is the new value.
			if len(match.children) == 0 || strings.TrimSpace(s.text) != "" {
				match.text, match.children = s.text, nil
			}
		default:
			match.merge(s)
		}
	}
}

// write serializes n.
func (n *node) write(b *strings.Builder) {
	b.WriteString("<" + n.tag)
	if n.hasName {
		b.WriteString(` name="` + escape(n.name) + `"`)
	}
	if len(n.children) == 0 && n.text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	if len(n.children) == 0 {
		b.WriteString(escape(n.text))
	}
	for _, c := range n.children {
		c.write(b)
	}
	b.WriteString("</" + n.tag + ">")
}

func (n *node) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// parseFragment parses the element parameter of set/edit or the cmd of op/commit: one or more
// elements. It refuses DTDs (no entity expansion) and text outside elements.
func parseFragment(s string) ([]*node, error) {
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	var roots, stack []*node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{tag: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Local == "name" {
					n.name, n.hasName = a.Value, true
				}
			}
			if len(stack) == 0 {
				roots = append(roots, n)
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return nil, errors.New("malformed XML: text outside an element")
				}
				continue
			}
			stack[len(stack)-1].text += string(t)
		case xml.Directive:
			return nil, errors.New("malformed XML: DTDs are not accepted")
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("malformed XML: no element")
	}
	// Whitespace between child elements is layout, not a value.
	var tidy func(n *node)
	tidy = func(n *node) {
		if len(n.children) > 0 {
			n.text = ""
			for _, c := range n.children {
				tidy(c)
			}
		}
	}
	for _, r := range roots {
		tidy(r)
	}
	return roots, nil
}

func parseElement(s string) (*node, error) {
	roots, err := parseFragment(s)
	if err != nil {
		return nil, err
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("malformed command: %d root elements, want 1", len(roots))
	}
	return roots[0], nil
}
