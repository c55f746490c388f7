package irc

import (
	"strings"
	"testing"
)

func TestParseRaw(t *testing.T) {
	for _, tc := range []struct {
		in      string
		command string
		params  []string
		ok      bool
	}{
		{"PRIVMSG NickServ :identify secret", "PRIVMSG", []string{"NickServ", "identify secret"}, true},
		{"/msg NickServ identify secret", "PRIVMSG", []string{"NickServ", "identify secret"}, true},
		{"/quote MODE me +i", "MODE", []string{"me", "+i"}, true},
		{"mode me +i", "MODE", []string{"me", "+i"}, true},
		{"CAP REQ :sasl", "", nil, false},
		{"AUTHENTICATE PLAIN", "", nil, false},
		{"PRIVMSG x :a\r\nQUIT", "", nil, false},
		{"PRIVMSG x :a\x00", "", nil, false},
		{"@tag=1 PRIVMSG x :y", "", nil, false},
		{":src PRIVMSG x :y", "", nil, false},
		{"/msg bad,target hi", "", nil, false},
		{"", "", nil, false},
	} {
		m, err := parseRaw(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseRaw(%q): err %v", tc.in, err)
			continue
		}
		if tc.ok && (m.Command != tc.command || strings.Join(m.Params, "|") != strings.Join(tc.params, "|")) {
			t.Errorf("parseRaw(%q) = %s %q", tc.in, m.Command, m.Params)
		}
	}
}
