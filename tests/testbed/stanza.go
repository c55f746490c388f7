package testbed

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// nsXML is the namespace of the xml: prefix (xml:lang).
const nsXML = "http://www.w3.org/XML/1998/namespace"

// nsStanzas is the namespace of stanza error conditions.
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// Node is one XML element of a received stanza, with namespaces resolved:
// Name.Space is the namespace URI, whatever prefix the sender used.
type Node struct {
	// Name is the element's namespace and local name.
	Name xml.Name
	// Attr holds the attributes, without namespace declarations.
	Attr []xml.Attr
	// Text is the character data directly inside the element (not inside
	// its children), concatenated.
	Text string
	// Children are the child elements in document order.
	Children []*Node

	content []any // *Node or string, in order, for serialisation
}

// AttrValue returns the value of the attribute with the given local name
// ("" if absent).
func (n *Node) AttrValue(local string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Find returns the first descendant reached by path, or nil. A path is a
// list of steps separated by "/", each step matching one level of child
// elements:
//
//	body                      a child named body, any namespace
//	{urn:xmpp:receipts}received   namespace and local name
//	*                         any child
//	item[@affiliation='owner']    with an attribute value (one test per step)
//
// For example "x/item[@role='moderator']" or
// "error/{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found".
func (n *Node) Find(path string) *Node {
	all := n.findAll(path, true)
	if len(all) == 0 {
		return nil
	}
	return all[0]
}

// FindAll returns every descendant reached by path (see Find).
func (n *Node) FindAll(path string) []*Node { return n.findAll(path, false) }

func (n *Node) findAll(path string, first bool) []*Node {
	if n == nil {
		return nil
	}
	steps := splitPath(path)
	cur := []*Node{n}
	for i, s := range steps {
		var next []*Node
		for _, c := range cur {
			for _, ch := range c.Children {
				if s.match(ch) {
					next = append(next, ch)
					if first && i == len(steps)-1 {
						return next
					}
				}
			}
		}
		cur = next
	}
	return cur
}

// XML serialises the element: attributes in double quotes, xmlns written
// only where the namespace changes from the parent's.
func (n *Node) XML() string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	n.write(&b, "")
	return b.String()
}

type pathStep struct {
	space, local string
	spaceSet     bool
	attr, value  string
	attrSet      bool
}

func splitPath(path string) []pathStep {
	var steps []pathStep
	depth, from := 0, 0
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '/':
			if depth == 0 {
				steps = append(steps, parseStep(path[from:i]))
				from = i + 1
			}
		}
	}
	if from < len(path) {
		steps = append(steps, parseStep(path[from:]))
	}
	return steps
}

func parseStep(raw string) pathStep {
	var s pathStep
	if i := strings.Index(raw, "[@"); i >= 0 && strings.HasSuffix(raw, "]") {
		pred := raw[i+2 : len(raw)-1]
		raw = raw[:i]
		name, value, _ := strings.Cut(pred, "=")
		s.attr, s.value, s.attrSet = name, strings.Trim(value, `'"`), true
	}
	if strings.HasPrefix(raw, "{") {
		if i := strings.IndexByte(raw, '}'); i > 0 {
			s.space, s.spaceSet = raw[1:i], true
			raw = raw[i+1:]
		}
	}
	s.local = raw
	return s
}

func (s pathStep) match(n *Node) bool {
	if s.local != "*" && s.local != n.Name.Local {
		return false
	}
	if s.spaceSet && s.space != n.Name.Space {
		return false
	}
	if s.attrSet {
		for _, a := range n.Attr {
			if a.Name.Local == s.attr && a.Value == s.value {
				return true
			}
		}
		return false
	}
	return true
}

func newNode(start xml.StartElement) *Node {
	n := &Node{Name: start.Name}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		n.Attr = append(n.Attr, a)
	}
	return n
}

// readTree builds the tree of the element that start opened, reading its
// content and end element from r (which may return io.EOF after the end).
func readTree(start xml.StartElement, r xml.TokenReader) (*Node, error) {
	root := newNode(start)
	stack := []*Node{root}
	for len(stack) > 0 {
		tok, err := r.Token()
		if tok == nil && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("element <%s> ended early", start.Name.Local)
			}
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			n := newNode(t.Copy())
			top.Children = append(top.Children, n)
			top.content = append(top.content, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.Text += string(t)
			top.content = append(top.content, string(t))
		}
	}
	return root, nil
}

func (n *Node) write(b *strings.Builder, parentNS string) {
	b.WriteByte('<')
	b.WriteString(n.Name.Local)
	if n.Name.Space != parentNS {
		b.WriteString(` xmlns="`)
		_ = xml.EscapeText(b, []byte(n.Name.Space))
		b.WriteByte('"')
	}
	prefixes := 0
	for _, a := range n.Attr {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case nsXML, "xml":
			b.WriteString("xml:")
		default:
			prefixes++
			p := fmt.Sprintf("ns%d", prefixes)
			fmt.Fprintf(b, `xmlns:%s="`, p)
			_ = xml.EscapeText(b, []byte(a.Name.Space))
			b.WriteString(`" ` + p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString(`="`)
		_ = xml.EscapeText(b, []byte(a.Value))
		b.WriteByte('"')
	}
	if len(n.content) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, c := range n.content {
		switch c := c.(type) {
		case string:
			_ = xml.EscapeText(b, []byte(c))
		case *Node:
			c.write(b, n.Name.Space)
		}
	}
	b.WriteString("</")
	b.WriteString(n.Name.Local)
	b.WriteByte('>')
}

// Stanza is one element received on an XMPP stream: the top-level
// attributes, the parsed tree and its re-serialised XML.
type Stanza struct {
	// Name is the local name: message, presence or iq.
	Name string
	// Type, ID, From and To are the top-level attributes ("" if absent).
	// Note that mellium clears a from equal to the client's own bare JID.
	Type, ID, From, To string
	// XML is the stanza re-serialised (attributes in double quotes, xmlns
	// only where it changes), so compare content, not exact text.
	XML string
	// Root is the parsed stanza element.
	Root *Node
}

func newStanza(root *Node) Stanza {
	return Stanza{
		Name: root.Name.Local,
		Type: root.AttrValue("type"),
		ID:   root.AttrValue("id"),
		From: root.AttrValue("from"),
		To:   root.AttrValue("to"),
		XML:  root.XML(),
		Root: root,
	}
}

// ParseStanza parses one XML element (for tests of the helpers themselves
// and for building expectations).
func ParseStanza(raw string) (Stanza, error) {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return Stanza{}, fmt.Errorf("parsing stanza: %w", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			root, err := readTree(start.Copy(), d)
			if err != nil {
				return Stanza{}, fmt.Errorf("parsing stanza: %w", err)
			}
			return newStanza(root), nil
		}
	}
}

// String returns the stanza's XML.
func (s Stanza) String() string { return s.XML }

// Contains reports whether the stanza's XML contains substr.
func (s Stanza) Contains(substr string) bool { return strings.Contains(s.XML, substr) }

// Find returns the first element reached by path from the stanza element
// (see Node.Find), or nil.
func (s Stanza) Find(path string) *Node { return s.Root.Find(path) }

// FindAll returns every element reached by path (see Node.Find).
func (s Stanza) FindAll(path string) []*Node { return s.Root.FindAll(path) }

// Text returns the character data of the element reached by path ("" if
// there is none).
func (s Stanza) Text(path string) string {
	if n := s.Find(path); n != nil {
		return n.Text
	}
	return ""
}

// Body returns the text of the <body/> child.
func (s Stanza) Body() string { return s.Text("body") }

// IsError reports whether the stanza has type="error".
func (s Stanza) IsError() bool { return s.Type == "error" }

// ErrorCondition returns the defined condition of an error stanza, such as
// "item-not-found" or "service-unavailable" ("" if there is none).
func (s Stanza) ErrorCondition() string {
	e := s.Find("error")
	if e == nil {
		return ""
	}
	for _, c := range e.Children {
		if c.Name.Space == nsStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// ErrorText returns the human-readable <text/> of an error stanza.
func (s Stanza) ErrorText() string {
	return s.Text("error/{" + nsStanzas + "}text")
}
