package component

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"syscall"
)

// connectionClosed reports whether a read error means that the server
// closed (or reset) the TCP connection without ending the stream: the
// XML decoder reports that as a syntax error ("unexpected EOF"), which
// would send an operator looking for a malformed stanza.
func connectionClosed(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var se *xml.SyntaxError
	return errors.As(err, &se) && strings.Contains(se.Msg, "unexpected EOF")
}
