package mailmsg

import (
	"strings"

	"github.com/k3a/html2text"
)

// Markers for the start and end of a <blockquote>, carried through
// html2text as text (private-use characters, removed from the input first).
const (
	quoteOpen  = "\uE000"
	quoteClose = "\uE001"
)

// htmlToText turns HTML into readable text with html2text: links kept as
// "text <url>" (just "url" when the text is the URL), lists as " - item",
// block elements on their own lines, <blockquote> as "> " quotes (so that
// quoted history in HTML-only mail is found like in plain text), at most
// one blank line in a row.
func htmlToText(h string) string {
	h = strings.NewReplacer(quoteOpen, "", quoteClose, "").Replace(h)
	s := html2text.HTML2TextWithOptions(blockTags(h), html2text.WithLinksInnerText(), html2text.WithUnixLineBreaks(), html2text.WithListSupport())
	s = normalizeNewlines(s)
	s = dedupeLinks(s)
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := 0
	depth := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\u00a0")
		// A marker may share a line with text when html2text did not
		// break around it; handle every marker in the line.
		for strings.Contains(l, quoteOpen) || strings.Contains(l, quoteClose) {
			i := strings.Index(l, quoteOpen)
			j := strings.Index(l, quoteClose)
			if i < 0 || (j >= 0 && j < i) {
				i = j
			}
			before := strings.TrimSpace(l[:i])
			if before != "" {
				out, blank = appendLine(out, blank, quotePrefix(depth)+before)
			}
			if l[i:i+len(quoteOpen)] == quoteOpen {
				depth++
			} else if depth > 0 {
				depth--
			}
			l = strings.TrimLeft(l[i+len(quoteOpen):], " \t\u00a0")
		}
		if depth > 0 {
			l = strings.TrimLeft(l, " \t\u00a0")
			if l == "" {
				continue
			}
			l = quotePrefix(depth) + l
		} else if strings.TrimSpace(l) == "" {
			l = ""
		}
		out, blank = appendLine(out, blank, l)
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

func quotePrefix(depth int) string {
	if depth == 0 {
		return ""
	}
	return strings.Repeat(">", depth) + " "
}

func appendLine(out []string, blank int, l string) ([]string, int) {
	if l == "" {
		blank++
		if blank > 1 {
			return out, blank
		}
	} else {
		blank = 0
	}
	return append(out, l), blank
}

// blockTags rewrites the tags html2text does not break lines for: <br />
// and <p class=…> become <br> and <p>, block elements end with a line
// break, table cells are spaced, <blockquote> becomes quote markers.
func blockTags(h string) string {
	var b strings.Builder
	b.Grow(len(h) + len(h)/8)
	for {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			b.WriteString(h)
			return b.String()
		}
		b.WriteString(h[:i])
		h = h[i:]
		if strings.HasPrefix(h, "<!--") {
			end := strings.Index(h, "-->")
			if end < 0 {
				return b.String()
			}
			h = h[end+3:]
			continue
		}
		j := strings.IndexByte(h, '>')
		if j < 0 {
			b.WriteString(h)
			return b.String()
		}
		tag := h[:j+1]
		h = h[j+1:]
		name := strings.ToLower(tag[1:])
		closing := strings.HasPrefix(name, "/")
		name = strings.TrimPrefix(name, "/")
		if k := strings.IndexAny(name, " \t\r\n/>"); k >= 0 {
			name = name[:k]
		}
		switch {
		case name == "br":
			b.WriteString("<br>")
		case name == "p":
			if closing {
				b.WriteString("</p>")
			} else {
				b.WriteString("<p>")
			}
		case name == "blockquote":
			if closing {
				b.WriteString("<br>" + quoteClose + "<br>")
			} else {
				b.WriteString("<br>" + quoteOpen + "<br>")
			}
		case name == "hr":
			b.WriteString("<br>")
		case closing && (name == "div" || name == "tr" || name == "table" || name == "pre" || name == "address" ||
			name == "section" || name == "article" || name == "header" || name == "footer" || name == "center" ||
			name == "dd" || name == "dt" || name == "h1" || name == "h2" || name == "h3" || name == "h4" ||
			name == "h5" || name == "h6"):
			b.WriteString(tag + "<br>")
		case closing && (name == "td" || name == "th"):
			b.WriteString(tag + " ")
		default:
			b.WriteString(tag)
		}
	}
}
