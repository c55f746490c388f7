package irc

import "testing"

// TestMemberAccountAndAway: ACCOUNT * logs a member out, an away message
// survives an account change, and a member with neither holds no extra.
func TestMemberAccountAndAway(t *testing.T) {
	m := &member{nick: intern("Bob")}
	m.setAccount("bobacct")
	if m.account() != "bobacct" {
		t.Fatalf("account = %q", m.account())
	}
	m.setAway(true, "lunch")
	m.setAccount("*")
	if m.account() != "" || m.awayText() != "lunch" || !m.away {
		t.Fatalf("after ACCOUNT *: account %q, away %v %q", m.account(), m.away, m.awayText())
	}
	m.setAway(false, "")
	if m.more != nil || m.awayText() != "" {
		t.Fatalf("a member without account or away message keeps %+v", m.more)
	}
	if intern("x") != intern(string([]byte{'x'})) || intern("") != (istr{}) || (istr{}).String() != "" {
		t.Fatal("interned strings do not compare by value")
	}
}
