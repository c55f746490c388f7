package mapping

import "testing"

func TestPeerKey(t *testing.T) {
	for _, tc := range []struct {
		a          Address
		plain      string
		rfc1459    string
		ircFolding bool
	}{
		{Address{Kind: KindRoom, Network: "libera", Name: "#Chan[1]"}, "#chan[1]%libera", "#chan{1}%libera", true},
		{Address{Kind: KindOccupant, Network: "OFTC", Name: "#chan", Resource: "Nick"}, "#chan%oftc", "#chan%oftc", true},
		{Address{Kind: KindContact, Network: "libera", Name: "Nick~"}, "nick~%libera", "nick^%libera", true},
		{Address{Kind: KindServer, Network: "Libera"}, "libera", "libera", true},
		{Address{Kind: KindContact, Name: "alice@example.com"}, "alice@example.com", "alice@example.com", false},
		{Address{Kind: KindContact, Name: "+12025550123"}, "+12025550123", "+12025550123", false},
		{Address{Kind: KindGateway, Domain: "irc.example.org"}, "", "", false},
	} {
		if got := PeerKey(tc.a); got != tc.plain {
			t.Errorf("PeerKey(%+v) = %q, want %q", tc.a, got, tc.plain)
		}
		if got := PeerKeyFolded(tc.a, RFC1459); got != tc.rfc1459 {
			t.Errorf("PeerKeyFolded(%+v) = %q, want %q", tc.a, got, tc.rfc1459)
		}
	}
	// The codec's Key and PeerKeyFolded agree on bare addresses.
	c := newIRC(t, false)
	a := Address{Kind: KindRoom, Network: "libera", Name: "#A[b]"}
	if c.Key(a, RFC1459) != PeerKeyFolded(a, RFC1459) {
		t.Errorf("Key %q != PeerKeyFolded %q", c.Key(a, RFC1459), PeerKeyFolded(a, RFC1459))
	}
}
