package panosclient

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Element is a parsed XML element. PAN-OS answers with free-form XML whose shape depends on the
// xpath or command asked, so results are walked as a small tree instead of fixed structs.
type Element struct {
	Name     string
	Attrs    map[string]string
	Text     string
	Children []*Element
}

// ParseElement parses one XML document into an Element tree. Character data (CDATA included) of
// an element is concatenated into Text; comments, processing instructions and directives are
// skipped, and no entity beyond the XML built-ins is expanded.
func ParseElement(data []byte) (*Element, error) {
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	dec.Strict = true
	var root *Element
	var stack []*Element
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &Element{Name: t.Name.Local}
			for _, a := range t.Attr {
				if e.Attrs == nil {
					e.Attrs = make(map[string]string, len(t.Attr))
				}
				e.Attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("parse XML: more than one root element")
				}
				root = e
			} else {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			}
		}
	}
	if root == nil {
		return nil, errors.New("parse XML: no element")
	}
	return root, nil
}

// Attr returns the named attribute, "" when absent.
func (e *Element) Attr(name string) string {
	if e == nil {
		return ""
	}
	return e.Attrs[name]
}

// Child returns the first child called name, or nil. A nil Element has no children, so lookups chain.
func (e *Element) Child(name string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Path follows children by name: e.Path("a", "b") is e.Child("a").Child("b").
func (e *Element) Path(names ...string) *Element {
	for _, n := range names {
		e = e.Child(n)
	}
	return e
}

// All returns every child called name.
func (e *Element) All(name string) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Value is the trimmed text of the element at path below e, "" when absent.
func (e *Element) Value(path ...string) string {
	if n := e.Path(path...); n != nil {
		return strings.TrimSpace(n.Text)
	}
	return ""
}

// Members lists the <member> texts of the element at path below e.
func (e *Element) Members(path ...string) []string {
	var out []string
	for _, m := range e.Path(path...).All("member") {
		out = append(out, strings.TrimSpace(m.Text))
	}
	return out
}

// Lines collects the texts of <line> elements below e, depth first, including e itself when it
// is a line without line children: PAN-OS nests lines (<line><line>…</line></line>).
func (e *Element) Lines() []string {
	if e == nil {
		return nil
	}
	var out []string
	var walk func(n *Element)
	walk = func(n *Element) {
		nested := false
		for _, c := range n.Children {
			if c.Name == "line" {
				nested = true
				walk(c)
			}
		}
		if !nested && n.Name == "line" {
			if s := strings.TrimSpace(n.Text); s != "" {
				out = append(out, s)
			}
		}
	}
	walk(e)
	return out
}
