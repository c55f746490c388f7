package mailmsg

import (
	"strings"
)

// attributionWords are found in the line that introduces quoted history
// ("On Mon, 1 Jan 2024, Bob <bob@example.com> wrote:"), in the languages
// mail clients use most.
var attributionWords = []string{
	"wrote", "writes", "schrieb", "a écrit", "escribió", "scrisse", "schreef", "skrev",
	"kirjoitti", "napisał", "написал", "napsal", "escreveu", "yazdı", "írta", "έγραψε",
	"寫道", "写道", "のメッセージ", "書きました", "wrote:",
}

// attributionOpeners start an attribution line that a client wrapped over
// two lines.
var attributionOpeners = []string{"On ", "Le ", "Am ", "El ", "Il ", "Op ", "Den ", "Em ", "W dniu ", "Dne "}

// isQuoteLine reports whether a line is part of a ">" quote.
func isQuoteLine(l string) bool { return strings.HasPrefix(l, ">") }

func isAttribution(l string) bool {
	l = strings.TrimSpace(l)
	if !strings.HasSuffix(l, ":") && !strings.HasSuffix(l, "：") {
		return false
	}
	low := strings.ToLower(l)
	for _, w := range attributionWords {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

func hasOpener(l string) bool {
	for _, o := range attributionOpeners {
		if strings.HasPrefix(l, o) {
			return true
		}
	}
	return false
}

// isSignatureSeparator reports the RFC 3676 "-- " line (also "--", as
// clients that strip trailing spaces send it).
func isSignatureSeparator(l string) bool { return l == "-- " || l == "--" }

// isOutlookHeader reports the line above an Outlook-style forwarded or
// replied-to message, which is not prefixed with ">".
func isOutlookHeader(lines []string, i int) bool {
	l := strings.TrimSpace(lines[i])
	low := strings.ToLower(l)
	if strings.HasPrefix(low, "-----") && strings.Contains(low, "original message") {
		return true
	}
	if strings.HasPrefix(l, "________________________________") && i+1 < len(lines) {
		next := strings.ToLower(strings.TrimSpace(lines[i+1]))
		return strings.HasPrefix(next, "from:") || strings.HasPrefix(next, "de :") ||
			strings.HasPrefix(next, "de:") || strings.HasPrefix(next, "von:")
	}
	return false
}

// foldQuotes finds the quoted history at the end of text (see the package
// documentation) and returns the text to show, per mode, and the history
// as found ("" when there is none). text has "\n" line ends.
func foldQuotes(text, mode string) (shown, history string) {
	text = strings.TrimRight(text, "\n \t")
	lines := strings.Split(text, "\n")
	end := len(lines) // history is searched in lines[:end]; lines[end:] is a trailing signature
	for i := len(lines) - 1; i >= 0; i-- {
		if isSignatureSeparator(lines[i]) {
			sigHasQuote := false
			for _, l := range lines[i+1:] {
				if isQuoteLine(l) {
					sigHasQuote = true
				}
			}
			if !sigHasQuote {
				end = i
			}
			break
		}
	}
	start, attrib := historyStart(lines[:end])
	if start < 0 {
		return text, ""
	}
	histLines := lines[start:end]
	history = strings.Trim(strings.Join(histLines, "\n"), "\n")
	head := strings.TrimRight(strings.Join(lines[:start], "\n"), "\n \t")
	sig := strings.Join(lines[end:], "\n")
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if strings.TrimSpace(p) != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, "\n\n")
	}
	switch mode {
	case "drop":
		return join(head, sig), history
	case "keep":
		return text, history
	}
	return join(head, compactQuote(histLines, attrib), sig), history
}

// historyStart returns the index of the first line of the quoted history at
// the end of lines, or -1, and how many of its first lines are the
// attribution ("On … wrote:", 1 or 2 lines when wrapped).
func historyStart(lines []string) (start, attrib int) {
	n := len(lines)
	for n > 0 && strings.TrimSpace(lines[n-1]) == "" {
		n--
	}
	// Outlook style: everything from the separator down is history.
	for i := 0; i < n; i++ {
		if isOutlookHeader(lines, i) {
			if strings.TrimSpace(strings.Join(lines[:i], "")) == "" {
				return -1, 0 // nothing above it: a forward, not a reply
			}
			return i, 0
		}
	}
	i := n
	quotes := 0
	for i > 0 {
		l := lines[i-1]
		if isQuoteLine(l) {
			quotes++
		} else if strings.TrimSpace(l) != "" {
			break
		}
		i--
	}
	if quotes == 0 {
		return -1, 0
	}
	for i < n && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	// The attribution just above (blank lines between allowed), maybe
	// wrapped over two lines.
	j := i
	for j > 0 && strings.TrimSpace(lines[j-1]) == "" {
		j--
	}
	switch {
	case j > 1 && !hasOpener(strings.TrimSpace(lines[j-1])) && hasOpener(strings.TrimSpace(lines[j-2])) &&
		isAttribution(lines[j-2]+" "+lines[j-1]):
		i, attrib = j-2, 2
	case j > 0 && isAttribution(lines[j-1]):
		i, attrib = j-1, 1
	}
	if strings.TrimSpace(strings.Join(lines[:i], "")) == "" {
		// Nothing of the author's own above it: not a reply's history.
		return -1, 0
	}
	return i, attrib
}

// compactQuote renders history lines as XEP-0393 block quotes: ">" depth
// kept ("> > x" and ">>x" both become ">> x"), empty quoted lines and blank
// lines dropped. The attribution (the first attrib lines) stays one plain
// line above the quote; other unquoted lines (an Outlook header block) are
// quoted once.
func compactQuote(lines []string, attrib int) string {
	var out []string
	if attrib > 0 {
		var a []string
		for _, l := range lines[:attrib] {
			a = append(a, strings.TrimSpace(l))
		}
		out = append(out, strings.Join(a, " "))
	}
	for _, l := range lines[attrib:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if !isQuoteLine(l) {
			out = append(out, "> "+strings.TrimSpace(l))
			continue
		}
		depth := 0
		rest := l
		for {
			t := strings.TrimLeft(rest, " ")
			if !strings.HasPrefix(t, ">") || (depth > 0 && len(rest)-len(t) > 1) {
				break
			}
			depth++
			rest = t[1:]
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			continue
		}
		out = append(out, strings.Repeat(">", depth)+" "+rest)
	}
	return strings.Join(out, "\n")
}
