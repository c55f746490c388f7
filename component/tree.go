package component

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Limits on one incoming stanza. The XMPP server limits stanza size; these
// bound the work a pathological but well-formed stanza can cause.
const (
	maxDepth = 64
	maxNodes = 4096
)

// node is one element of a parsed stanza. Nodes live in the tree's arena
// and link to each other by index, so that a stanza costs no allocation
// per element once the arena has grown.
type node struct {
	space, local string
	attr         []xml.Attr
	text         string // character data directly inside the element
	firstChild   int32  // -1 when none
	lastChild    int32
	next         int32 // next sibling, -1 when none
}

// tree is one top-level stanza. The arena is reused for the next stanza:
// nothing may keep a *node or a tree after the handler returned (strings
// and attribute slices are fresh per stanza and may be kept).
type tree struct {
	nodes []node
	// tooBig is set when the stanza went past maxDepth or maxNodes: its
	// excess elements were skipped and it must be refused.
	tooBig bool
}

// root is the stanza element.
func (t *tree) root() *node { return &t.nodes[0] }

// child returns the first child of n with the namespace and local name
// (space "" matches any namespace), or nil.
func (t *tree) child(n *node, space, local string) *node {
	for i := n.firstChild; i >= 0; i = t.nodes[i].next {
		c := &t.nodes[i]
		if c.local == local && (space == "" || c.space == space) {
			return c
		}
	}
	return nil
}

// children calls fn for every child of n until fn returns false.
func (t *tree) children(n *node, fn func(c *node) bool) {
	for i := n.firstChild; i >= 0; i = t.nodes[i].next {
		if !fn(&t.nodes[i]) {
			return
		}
	}
}

// childCount counts the element children of n.
func (t *tree) childCount(n *node) int {
	k := 0
	for i := n.firstChild; i >= 0; i = t.nodes[i].next {
		k++
	}
	return k
}

// firstElem returns the first element child of n, or nil.
func (t *tree) firstElem(n *node) *node {
	if n.firstChild < 0 {
		return nil
	}
	return &t.nodes[n.firstChild]
}

// childText returns the text of the first matching child, and whether
// there was one.
func (t *tree) childText(n *node, space, local string) (string, bool) {
	c := t.child(n, space, local)
	if c == nil {
		return "", false
	}
	return c.text, true
}

// attrValue returns the value of the attribute with no namespace named
// local, or "".
func (n *node) attrValue(local string) string {
	for _, a := range n.attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// hasAttr reports whether the element has the attribute (even empty).
func (n *node) hasAttr(local string) bool {
	for _, a := range n.attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return true
		}
	}
	return false
}

// lang returns the xml:lang attribute.
func (n *node) lang() string {
	for _, a := range n.attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// errStreamText is returned for character data between stanzas.
var errStreamText = errors.New("text at the stream level")

// readStanza reads one top-level element from r into t, skipping
// whitespace between stanzas. The caller's reader sits inside
// <stream:stream>. Any error is a stream-level failure (the XML is broken or
// the connection ended): the stream cannot go on.
func readStanza(r xml.TokenReader, t *tree) error {
	t.nodes = t.nodes[:0]
	t.tooBig = false
	var start xml.StartElement
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			start = tt
		case xml.CharData:
			if !isSpace(tt) {
				return errStreamText
			}
			continue
		case xml.EndElement:
			if tt.Name.Local == "stream" {
				return io.EOF // the end of the stream (mellium's reader reports it as io.EOF already)
			}
			return fmt.Errorf("unexpected end element </%s> at the stream level", tt.Name.Local)
		default:
			continue // comments, proc insts: the stream reader refuses them already
		}
		break
	}
	t.push(start, -1)
	// stack of open element indices
	var stackBuf [16]int32
	stack := append(stackBuf[:0], 0)
	skipDepth := 0 // > 0 while skipping elements beyond the limits
	for len(stack) > 0 {
		tok, err := r.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the stream ended inside a stanza")
			}
			return err
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			if skipDepth > 0 {
				skipDepth++
				continue
			}
			if len(stack) >= maxDepth || len(t.nodes) >= maxNodes {
				t.tooBig = true
				skipDepth = 1
				continue
			}
			idx := t.push(tt, stack[len(stack)-1])
			stack = append(stack, idx)
		case xml.EndElement:
			if skipDepth > 0 {
				skipDepth--
				continue
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if skipDepth > 0 {
				continue
			}
			n := &t.nodes[stack[len(stack)-1]]
			if n.text == "" {
				n.text = string(tt)
			} else if len(n.text) < 1<<20 {
				n.text += string(tt)
			}
		}
	}
	return nil
}

// push appends an element under parent (-1 for the root) and returns its
// index.
func (t *tree) push(se xml.StartElement, parent int32) int32 {
	idx := int32(len(t.nodes))
	t.nodes = append(t.nodes, node{
		space: se.Name.Space, local: se.Name.Local, attr: se.Attr,
		firstChild: -1, lastChild: -1, next: -1,
	})
	if parent >= 0 {
		p := &t.nodes[parent]
		if p.lastChild < 0 {
			p.firstChild = idx
		} else {
			t.nodes[p.lastChild].next = idx
		}
		p.lastChild = idx
	}
	return idx
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
