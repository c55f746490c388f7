package tests

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// TestEmailAbuse: CR/LF in a subject, a thread or a name never becomes a
// header (dave, named in the injected Bcc, gets nothing); a mail the
// trusted relay marks dmarc=fail is shown as unverified; a blocked sender
// is refused at RCPT (and shown in the form); send_per_hour and
// max_message_bytes give error stanzas naming the limit (send_per_hour
// still holds after the gateway is killed with -9 and restarted); listen_per_ip
// refuses the sixth connection from one untrusted address with 421.
func TestEmailAbuse(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{email: map[string]any{"send_per_hour": 4, "max_message_bytes": 8192}})
	alice := s.user("alice")
	if r := registerMail(t, alice, map[string][]string{"name": {"Alice\r\nBcc: dave@example.test"}}); r.Type != "error" {
		t.Errorf("a name with CR/LF: want an error, got %s", r.XML)
	}
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	carol, dave := "carol@"+outsideDom, "dave@"+outsideDom

	// Header injection from XMPP.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='i1'><subject>Hello&#13;&#10;Bcc: %s</subject><thread>t&#13;&#10;Bcc: %s</thread><body>injection attempt&#13;&#10;Bcc: %s</body></message>`,
		mailJID(carol), dave, dave, dave))
	got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "injection attempt") }, 20*time.Second)[0]
	hdrEnd := strings.Index(got, "\n\n")
	if i := strings.Index(got, "\r\n\r\n"); i >= 0 && (hdrEnd < 0 || i < hdrEnd) {
		hdrEnd = i
	}
	for _, line := range strings.Split(got[:hdrEnd], "\n") {
		if strings.HasPrefix(strings.ToLower(line), "bcc:") {
			t.Errorf("an injected Bcc header reached the mail:\n%s", got)
		}
	}
	time.Sleep(2 * time.Second)
	if n := len(s.dovecot.Messages(dave, "")); n != 0 {
		t.Errorf("dave got %d messages through header injection", n)
	}
	// A recipient address with CR/LF cannot even be a JID; one with a
	// space is refused with a sentence.
	alice.SendRaw(`<message type='chat' to='bad\20address\40example.test@` + mailDomain + `' id='i2'><body>x</body></message>`)
	if e := alice.Expect(t, byID("i2"), wait); e.Type != "error" || e.ErrorText() == "" {
		t.Errorf("an address with a space: want an error with a sentence, got %s", e.XML)
	}

	// Spoofed sender: the trusted MTA's verdict is shown.
	s.mustSend("ceo@bank.example", "alice@"+mailDomain, mail("ceo@bank.example", "alice@"+mailDomain, "Wire money", "s1@bank.example", "please wire money",
		"Authentication-Results: "+authservID+"; dmarc=fail header.from=bank.example"))
	sp := alice.Expect(t, bodyContains("please wire money"), 20*time.Second)
	if !strings.Contains(sp.Body(), "Unverified sender") {
		t.Errorf("spoofed sender: want an unverified marker, got %q", sp.Body())
	}
	// The same claim from a client that is not a trusted relay is not
	// believed either way (no marker from a header the sender wrote).
	if err := sendMail(s.listen, untrustedIP, "x@bank.example", []string{"alice@" + mailDomain},
		mail("x@bank.example", "alice@"+mailDomain, "hi", "s2@bank.example", "direct from outside",
			"Authentication-Results: "+authservID+"; dmarc=fail header.from=bank.example")); err != nil {
		t.Fatalf("direct mail: %v", err)
	}
	if d := alice.Expect(t, bodyContains("direct from outside"), 20*time.Second); strings.Contains(d.Body(), "Unverified") {
		t.Errorf("an Authentication-Results header from an untrusted client was believed: %q", d.Body())
	}

	// Blocked sender.
	if r := registerMail(t, alice, map[string][]string{"blocked": {"spam@" + outsideDom}}); r.Type != "result" {
		t.Fatalf("blocking: %s", r.XML)
	}
	form := alice.IQ(t, `<iq type='get' to='`+mailDomain+`'><query xmlns='jabber:iq:register'/></iq>`, wait)
	if !strings.Contains(form.XML, "spam@"+outsideDom) {
		t.Errorf("the block list is not shown in the form: %s", form.XML)
	}
	err := sendMail(s.listen, "127.0.0.1", "spam@"+outsideDom, []string{"alice@" + mailDomain}, mail("spam@"+outsideDom, "alice@"+mailDomain, "buy", "sp1@example.test", "buy now"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("blocked sender: want 550, got %v", err)
	}
	alice.ExpectNone(t, bodyContains("buy now"), 2*time.Second)

	// max_message_bytes.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='big'><body>%s</body></message>`, mailJID(carol), strings.Repeat("x", 9000)))
	if e := alice.Expect(t, byID("big"), wait); e.Type != "error" || !strings.Contains(e.ErrorText(), "max_message_bytes") {
		t.Errorf("too big: want an error naming max_message_bytes, got %s", e.XML)
	}
	// send_per_hour: 4 per hour, one used above.
	for i := 0; i < 3; i++ {
		alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='q%d'><body>quota %d</body></message>`, mailJID(carol), i, i))
	}
	// The count is durable: a gateway killed and started again does not
	// give a fresh quota.
	s.waitMailbox(carol, "", 3, func(m string) bool { return strings.Contains(m, "quota ") }, 20*time.Second)
	s.gw.Kill()
	<-s.gw.Done()
	s.gw.Start()
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='q3'><body>quota 3</body></message>`, mailJID(carol)))
	e := alice.Expect(t, func(st testbed.Stanza) bool { return st.Type == "error" && strings.HasPrefix(st.ID, "q") }, wait)
	if e.ID != "q3" || e.ErrorCondition() != "policy-violation" || !strings.Contains(e.ErrorText(), "send_per_hour") || !strings.Contains(e.ErrorText(), "UTC") {
		t.Errorf("quota: want policy-violation on q3 naming send_per_hour and when it resets, got %s", e.XML)
	}

	// listen_per_ip = 5 for untrusted clients.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 6; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(untrustedIP)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", s.listen)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		greet := string(buf[:n])
		if i < 5 && !strings.HasPrefix(greet, "220") {
			t.Errorf("connection %d: greeting %q", i+1, greet)
		}
		if i == 5 && !strings.HasPrefix(greet, "421") {
			t.Errorf("the sixth connection from one address: want 421, got %q", greet)
		}
	}
}
