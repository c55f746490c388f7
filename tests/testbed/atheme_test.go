package testbed

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ergochat/irc-go/ircmsg"
)

// TestAtheme: Atheme links to an InspIRCd started with Services; an
// account registered with the helper can IDENTIFY, which InspIRCd reports
// (900) and WHOIS shows (330); a fingerprint can be added; the TLS port
// presents the certificate whose fingerprint CertFingerprint holds.
func TestAtheme(t *testing.T) {
	t.Parallel()
	insp := StartInspIRCd(t, InspOptions{Services: "services.test", TLS: true})
	a := StartAtheme(t, insp, AthemeOptions{})
	if !a.Running() {
		t.Fatal("atheme is not running")
	}
	a.RegisterAccount("athacct", "secretpw")
	a.AddCertFP("athacct", "secretpw", strings.Repeat("ab", 32))
	if err := a.registerAccount("athacct", "otherpw"); err == nil {
		t.Error("registering an account twice did not fail")
	}

	c := DialIRC(t, insp.Addr(), "athuser")
	c.Send("PRIVMSG NickServ :IDENTIFY athacct secretpw")
	c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "900" }, wait)
	c.Send("WHOIS athuser")
	m := c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "330" }, wait)
	if m.Params[2] != "athacct" {
		t.Errorf("WHOIS account: %v", m.Params)
	}

	conn, err := tls.Dial("tcp", insp.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS port: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	if got := hex.EncodeToString(sum[:]); got != insp.CertFingerprint {
		t.Errorf("TLS certificate fingerprint %s, CertFingerprint %s", got, insp.CertFingerprint)
	}
}
