package component

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzStanzaParse feeds random bytes to the read loop's parser and
// handler as the content of a stream. It must never panic; whatever the
// link writes must be well-formed XML; and every IQ request with a from
// address must get exactly one answer (a result or an error), however
// broken the rest of it is.
func FuzzStanzaParse(f *testing.F) {
	h := newHarness(f, LinkConfig{})
	h.l.repanic = true
	h.tr.answerAdmin = true
	f.Fuzz(func(t *testing.T, data []byte) {
		want := countIQRequests(string(data))
		_ = feed(h.l, string(data))
		got := 0
		deadline := time.After(5 * time.Second)
		for {
			select {
			case it := <-h.l.queue:
				got += checkOutput(t, it.b)
				continue
			default:
			}
			if got >= want {
				break
			}
			select {
			case it := <-h.l.queue:
				got += checkOutput(t, it.b)
			case <-deadline:
				t.Fatalf("%d IQ requests, %d answers", want, got)
			}
		}
		// Late answers (none expected) would show up in the next run.
		if got != want {
			t.Fatalf("%d IQ requests, %d answers", want, got)
		}
	})
}

// countIQRequests counts the IQs with a from address that are neither
// results nor errors in the well-formed prefix of s: the ones the link
// must answer (an IQ of no or an unknown type gets bad-request).
func countIQRequests(s string) int {
	d := xml.NewDecoder(strings.NewReader(streamOpen + s + "</stream:stream>"))
	if _, err := d.Token(); err != nil {
		return 0
	}
	n := 0
	var t tree
	for {
		if err := readStanza(d, &t); err != nil {
			return n
		}
		r := t.root()
		if r.local != "iq" || (r.space != nsAccept && r.space != nsClient && r.space != "jabber:server") {
			continue
		}
		typ := r.attrValue("type")
		if typ != "result" && typ != "error" && r.attrValue("from") != "" {
			n++
		}
	}
}

// checkOutput checks that b is well-formed and returns how many IQ answers
// it holds.
func checkOutput(t *testing.T, b []byte) int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(streamOpen + string(b) + "</stream:stream>"))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	n := 0
	var tr tree
	for {
		err := readStanza(d, &tr)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("output is not well-formed: %v\n%s", err, b)
		}
		r := tr.root()
		if r.local == "iq" && (r.attrValue("type") == "result" || r.attrValue("type") == "error") {
			n++
		}
	}
}
