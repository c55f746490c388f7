package mapping

import "strings"

// Casemapping is how an IRC server compares nicks and channel names, as
// announced by the CASEMAPPING token of RPL_ISUPPORT (005).
//
// The zero value is RFC1459, the IRC default that applies until (or unless)
// the server says otherwise.
type Casemapping int

const (
	// RFC1459 folds A-Z to a-z and also [ ] \ ~ to { } | ^ (the
	// "Scandinavian" lowercase letters of RFC 1459). It is the default.
	RFC1459 Casemapping = iota
	// ASCII folds only A-Z to a-z.
	ASCII
	// RFC1459Strict folds A-Z and [ ] \ to a-z and { } |, but not ~ to ^.
	RFC1459Strict
)

// String returns the ISUPPORT spelling of c.
func (c Casemapping) String() string {
	switch c {
	case ASCII:
		return "ascii"
	case RFC1459Strict:
		return "rfc1459-strict"
	}
	return "rfc1459"
}

// ParseCasemapping reads the value of an ISUPPORT CASEMAPPING token
// ("ascii", "rfc1459", "rfc1459-strict"), ignoring case and surrounding
// space. An empty or unknown value gives RFC1459, the IRC default.
//
// "rfc7613" and "precis" (Ergo's Unicode casemapping) give ASCII: Fold then
// folds ASCII letters only, so two non-ASCII nicks that such a server holds
// equal (say "É" and "é") get different keys here. Names that reach the
// gateway through a JID are already lowercased by PRECIS, so this only shows
// for names that come from the IRC side.
func ParseCasemapping(isupportValue string) Casemapping {
	switch strings.ToLower(strings.TrimSpace(isupportValue)) {
	case "ascii", "rfc7613", "precis":
		return ASCII
	case "rfc1459-strict", "strict-rfc1459":
		return RFC1459Strict
	}
	return RFC1459
}

// foldTables holds one byte-to-byte table per Casemapping.
var foldTables = func() [3][256]byte {
	var t [3][256]byte
	for m := range t {
		for i := range t[m] {
			t[m][i] = byte(i)
		}
		for c := 'A'; c <= 'Z'; c++ {
			t[m][c] = byte(c - 'A' + 'a')
		}
	}
	for _, m := range []Casemapping{RFC1459, RFC1459Strict} {
		t[m]['['] = '{'
		t[m][']'] = '}'
		t[m]['\\'] = '|'
	}
	t[RFC1459]['~'] = '^'
	return t
}()

// table returns the fold table of c (RFC1459 for values out of range).
func (c Casemapping) table() *[256]byte {
	if c < 0 || int(c) >= len(foldTables) {
		c = RFC1459
	}
	return &foldTables[c]
}

// Fold returns s folded to lowercase under c, for comparing or keying IRC
// nicks and channel names. It works byte by byte (non-ASCII bytes are kept)
// and returns s itself, without allocating, when s is already folded.
func (c Casemapping) Fold(s string) string {
	t := c.table()
	i := 0
	for i < len(s) && t[s[i]] == s[i] {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, len(s))
	copy(b, s[:i])
	for ; i < len(s); i++ {
		b[i] = t[s[i]]
	}
	return string(b)
}

// Equal reports whether a and b are the same name under c.
func (c Casemapping) Equal(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	t := c.table()
	for i := 0; i < len(a); i++ {
		if t[a[i]] != t[b[i]] {
			return false
		}
	}
	return true
}
