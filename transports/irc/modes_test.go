package irc

import (
	"testing"

	"switchboard/mapping"
)

func TestISupport(t *testing.T) {
	is := defaultISupport()
	is.apply([]string{"CASEMAPPING=ascii", "PREFIX=(qaohv)~&@%+", "CHANTYPES=#&!", "NICKLEN=12", "STATUSMSG=@+", "CHANMODES=beI,k,l,imnpst", "NETWORK=Test", "TOPICLEN=300"})
	if is.cm != mapping.ASCII || is.prefixModes != "qaohv" || is.prefixChars != "~&@%+" || is.chantypes != "#&!" ||
		is.nickLen != 12 || is.statusmsg != "@+" || is.network != "Test" || is.topicLen != 300 {
		t.Fatalf("isupport = %+v", is)
	}
	is.apply([]string{"-CASEMAPPING", "PREFIX=broken"})
	if is.cm != mapping.RFC1459 || is.prefixModes != "qaohv" {
		t.Fatalf("after negation: %+v", is)
	}
	if !is.isChannel("!abc") || is.isChannel("nick") || is.isChannel("") {
		t.Fatal("isChannel")
	}
}

func TestParseNamesEntry(t *testing.T) {
	is := defaultISupport()
	is.apply([]string{"PREFIX=(qaohv)~&@%+"})
	for _, tc := range []struct {
		in                      string
		nick, user, host, modes string
	}{
		{"nick", "nick", "", "", ""},
		{"@op", "op", "", "", "o"},
		{"+@both", "both", "", "", "ov"}, // multi-prefix, any order, sorted highest first
		{"~&@%+all", "all", "", "", "qaohv"},
		{"@nick!user@host.example", "nick", "user", "host.example", "o"},
		{"plain!u@h", "plain", "u", "h", ""},
	} {
		e := is.parseNamesEntry(tc.in)
		if e.nick != tc.nick || e.user != tc.user || e.host != tc.host || e.modes != tc.modes {
			t.Errorf("parseNamesEntry(%q) = %+v", tc.in, e)
		}
	}
}

// TestRoleAffiliation pins Biboumi's mapping of channel modes to MUC roles
// and affiliations.
func TestRoleAffiliation(t *testing.T) {
	is := defaultISupport()
	is.apply([]string{"PREFIX=(Yqaohv)!~&@%+"})
	for modes, want := range map[string][2]string{
		"":   {"participant", "none"},
		"v":  {"participant", "member"},
		"h":  {"moderator", "member"},
		"hv": {"moderator", "member"},
		"o":  {"moderator", "admin"},
		"ov": {"moderator", "admin"},
		"a":  {"moderator", "owner"},
		"q":  {"moderator", "owner"},
		"Y":  {"moderator", "owner"}, // unknown, above o
	} {
		role, affil := is.roleAffiliation(modes)
		if role != want[0] || affil != want[1] {
			t.Errorf("roleAffiliation(%q) = %s/%s, want %s/%s", modes, role, affil, want[0], want[1])
		}
	}
}

func TestParseModes(t *testing.T) {
	is := defaultISupport()
	is.apply([]string{"PREFIX=(qaohv)~&@%+", "CHANMODES=beI,k,l,imnpst"})
	got := is.parseModes("+ol-v+kb-l+m", []string{"alice", "10", "bob", "key", "*!*@bad"})
	want := []modeChange{
		{true, 'o', "alice"}, {true, 'l', "10"}, {false, 'v', "bob"}, {true, 'k', "key"},
		{true, 'b', "*!*@bad"}, {false, 'l', ""}, {true, 'm', ""},
	}
	if len(got) != len(want) {
		t.Fatalf("parseModes = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if m := is.addMode("v", 'o'); m != "ov" {
		t.Errorf("addMode = %q", m)
	}
	if m := removeMode("ov", 'o'); m != "v" {
		t.Errorf("removeMode = %q", m)
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		mask, s string
		want    bool
	}{
		{"*!*@host", "nick!user@host", true},
		{"*!*@host", "nick!user@other", false},
		{"nick!*@*", "NICK!u@h", true},
		{"n?ck!*", "nick!u@h", true},
		{"[x]*", "{x}abc", true}, // rfc1459 folding
		{"*", "", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
	} {
		if got := wildcardMatch(tc.mask, tc.s, mapping.RFC1459); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tc.mask, tc.s, got)
		}
	}
}

func TestAlternativeNick(t *testing.T) {
	for _, tc := range []struct {
		nick, code string
		try, max   int
		want       string
	}{
		{"alice", "433", 1, 30, "alice_"},
		{"alice", "433", 2, 30, "alice__"},
		{"alice", "433", 1, 5, "alic_"},
		{"averyverylongnick", "432", 1, 0, "averyvery"},
		{"9lives", "432", 1, 30, "lives"},
	} {
		if got := alternativeNick(tc.nick, tc.code, tc.try, tc.max); got != tc.want {
			t.Errorf("alternativeNick(%q, %s, %d, %d) = %q, want %q", tc.nick, tc.code, tc.try, tc.max, got, tc.want)
		}
	}
	if got := alternativeNick("alice", "433", 7, 9); len(got) > 9 || got[:5] != "alice" {
		t.Errorf("late alternative = %q", got)
	}
}

// TestCasemappingKeys checks that channels and nicks are keyed with the
// server's casemapping.
func TestCasemappingKeys(t *testing.T) {
	_, n, _ := newTestNetwork(t, nil)
	n.is.cm = mapping.RFC1459
	if n.fold("#Chan[1]") != n.fold("#chan{1}") || !n.isMe("ALICE") {
		t.Fatal("rfc1459 folding")
	}
	n.is.apply([]string{"CASEMAPPING=ascii"})
	if n.fold("#chan[1]") == n.fold("#chan{1}") {
		t.Fatal("ascii folding treats [ as {")
	}
}
