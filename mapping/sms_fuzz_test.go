package mapping

import (
	"testing"

	"mellium.im/xmpp/jid"
)

// FuzzSMSParse: a JID of the SMS domain parses to a contact (E.164 or a
// short code), a team inbox room or occupant, or an *Error, and what
// parses builds the same JID back.
func FuzzSMSParse(f *testing.F) {
	for _, s := range []string{"+12025550123", "12345", "+12025550123%sales", "+12025550123%Sales", "%sales", "+1%", "+12025550123%sales%x", "012345", "+112"} {
		f.Add(s, "")
	}
	f.Add("+12025550123%sales", "bob")
	c, err := NewSMSCodec("sms.example.org", "US")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, local, res string) {
		j, err := jid.New(local, "sms.example.org", res)
		if err != nil {
			return
		}
		a, err := c.Parse(j)
		if err != nil {
			if AsError(err) == nil {
				t.Fatalf("Parse(%s): %v is not an *Error", j, err)
			}
			return
		}
		back, err := c.JID(a)
		if err != nil {
			t.Fatalf("JID(%+v) of a parsed %s: %v", a, j, err)
		}
		if back.String() != j.String() {
			t.Fatalf("%s → %+v → %s", j, a, back)
		}
	})
}
