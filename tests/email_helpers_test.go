package tests

import (
	"bytes"
	"fmt"
	"net"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

// This file holds the helpers of the email end-to-end tests
// (email_*_test.go): Prosody, Dovecot (the outside world's mailboxes,
// bob's own mailbox), Postfix (the MTA in front of the gateway's listener
// and its smarthost) and the gateway with an [email] section.

const (
	mailDomain   = "mail.localhost"
	mailSecret   = "mailsecret"
	outsideDom   = "example.test"
	nsReceipts   = "urn:xmpp:receipts"
	nsNick       = "http://jabber.org/protocol/nick"
	dovecotPass  = "mailpw"
	authservID   = "mx.localhost"
	untrustedIP  = "127.0.0.3"
	trustedRelay = "127.0.0.1/32"
)

type emailStackOptions struct {
	// email is merged into the gateway's [email] section.
	email map[string]any
	// access is Postfix's recipient access map.
	access map[string]string
	// extra is merged into the gateway config (other sections).
	extra map[string]any
	// lmtp makes the listener speak LMTP and Postfix use lmtp: to it.
	lmtp bool
	// privilege grants the component XEP-0356 outgoing message permission
	// (Prosody's mod_privilege).
	privilege bool
	// blocklist loads Prosody's mod_blocklist (XEP-0191) for the users;
	// blockingPerm also grants the component IQ "get" permission on
	// urn:xmpp:blocking (XEP-0356 v0.4), so it can read their lists.
	blocklist, blockingPerm bool
}

// emailStack is Prosody, Dovecot, Postfix and the gateway.
type emailStack struct {
	t        *testing.T
	prosody  *testbed.Prosody
	dovecot  *testbed.Dovecot
	postfix  *testbed.Postfix
	gw       *testbed.Gateway
	listen   string // the gateway's SMTP listener
	cfgPath  string
	dovecotU map[string]string
}

func newEmailStack(t *testing.T, opts emailStackOptions) *emailStack {
	t.Helper()
	s := &emailStack{t: t}
	po := testbed.ProsodyOptions{
		Components:   map[string]string{mailDomain: mailSecret},
		ExtraModules: []string{"offline"},
	}
	if opts.privilege || opts.blockingPerm {
		perms := `message = "outgoing"`
		if opts.blockingPerm {
			perms += `, iq = { ["urn:xmpp:blocking"] = "get" }`
		}
		po.ExtraModules = append(po.ExtraModules, "privilege")
		po.ExtraGlobal = `privileged_entities = { ["` + mailDomain + `"] = { ` + perms + ` } }`
		// Appended after the last Component section: the mail component's.
		po.ExtraConfig = `modules_enabled = { "privilege" }`
	}
	if opts.blocklist || opts.blockingPerm {
		po.ExtraModules = append(po.ExtraModules, "blocklist")
	}
	s.prosody = testbed.StartProsody(t, po)
	registerUsers(t, s.prosody, []string{"alice", "bob", "admin"})
	s.dovecotU = map[string]string{}
	for _, u := range []string{"carol", "dave", "bob", "list"} {
		s.dovecotU[u+"@"+outsideDom] = dovecotPass
	}
	s.listen = "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t))
	// Postfix first (Dovecot's submission relays to it); it learns the
	// Dovecot LMTP port after Dovecot is up.
	s.postfix = testbed.StartPostfix(t, testbed.PostfixOptions{
		Transport: map[string]string{mailDomain: "smtp:[127.0.0.1]:" + port(s.listen)},
		Access:    opts.access,
	})
	s.dovecot = testbed.StartDovecot(t, testbed.DovecotOptions{Users: s.dovecotU, RelayAddr: s.postfix.Addr()})
	hop := "smtp"
	if opts.lmtp {
		hop = "lmtp"
	}
	s.postfix.SetTransport(map[string]string{
		mailDomain: hop + ":[127.0.0.1]:" + port(s.listen),
		outsideDom: "lmtp:[127.0.0.1]:" + port(s.dovecot.LMTPAddr()),
	})
	email := map[string]any{
		"domain":             mailDomain,
		"secret":             mailSecret,
		"hosted_domain":      mailDomain,
		"listen":             s.listen,
		"smarthost":          s.postfix.Addr(),
		"smarthost_security": "none",
		"retry_initial":      "500ms",
		"queue_lifetime":     "5m",
		"trusted_relays":     []string{trustedRelay},
		"authserv_id":        authservID,
		"listen_per_ip":      5,
		"spool_dir":          t.TempDir() + "/spool",
		"lmtp":               opts.lmtp,
	}
	for k, v := range opts.email {
		email[k] = v
	}
	s.cfgPath = testbed.WriteGatewayConfig(t.TempDir(), testbed.GatewayConfig{
		XMPPServer: s.prosody.ComponentAddr(),
		Allow:      []string{"localhost"},
		Admins:     []string{"admin@localhost"},
		Extra:      extraConfig(email, opts.extra),
	})
	s.gw = testbed.StartGateway(t, testbed.BuildGateway(t), s.cfgPath)
	if err := testbed.WaitPort(s.listen, 10*time.Second); err != nil {
		t.Fatalf("the gateway's SMTP listener: %v\n%s", err, s.gw.LogTail())
	}
	return s
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// user logs a Prosody user in.
func (s *emailStack) user(name string) *testbed.XMPPClient {
	s.t.Helper()
	return testbed.DialXMPP(s.t, s.prosody.C2SAddr(), jid.MustParse(name+"@localhost/e2e"), password)
}

// registerMail submits the email gateway's registration form.
func registerMail(t *testing.T, c *testbed.XMPPClient, fields map[string][]string) testbed.Stanza {
	t.Helper()
	return c.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`,
		mailDomain, submitForm("jabber:iq:register", fields)), 30*time.Second)
}

// mailJID is the gateway JID of an email address.
func mailJID(addr string) string { return strings.Replace(addr, "@", `\40`, 1) + "@" + mailDomain }

// sendMail sends a raw message through an SMTP server from a given local
// address (so a test can be an untrusted client), returning the error.
func sendMail(addr, localIP, from string, to []string, raw string) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// mail builds a simple text/plain message.
func mail(from, to, subject, msgID, body string, extra ...string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
		from, to, subject, msgID, time.Now().Format(time.RFC1123Z))
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + strings.ReplaceAll(body, "\n", "\r\n") + "\r\n")
	return b.String()
}

// mustSend sends through Postfix (the MTA in front of the gateway).
func (s *emailStack) mustSend(from, to, raw string) {
	s.t.Helper()
	if err := sendMail(s.postfix.Addr(), "", from, []string{to}, raw); err != nil {
		s.t.Fatalf("sending a mail from %s to %s through Postfix: %v", from, to, err)
	}
}

// waitMailbox waits until a Dovecot user's folder holds n messages that
// match pred and returns them.
func (s *emailStack) waitMailbox(user, folder string, n int, pred func(string) bool, timeout time.Duration) []string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []string
		for _, m := range s.dovecot.Messages(user, folder) {
			if pred == nil || pred(m) {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s: %d matching messages after %s, want %d\npostfix:\n%s\ngateway:\n%s", user, folder, len(got), timeout, n, s.postfix.LogTail(), s.gw.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// header returns the unfolded value of a header of a raw message.
func header(raw, name string) string {
	hdr := raw
	if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
		hdr = raw[:i]
	} else if i := strings.Index(raw, "\n\n"); i >= 0 {
		hdr = raw[:i]
	}
	re := regexp.MustCompile(`(?im)^` + regexp.QuoteMeta(name) + `:[ \t]*(.*(?:\r?\n[ \t].*)*)`)
	m := re.FindStringSubmatch(hdr)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(regexp.MustCompile(`\r?\n[ \t]+`).ReplaceAllString(m[1], " "))
}

// chatFrom matches a chat message with a body from a JID.
func chatFrom(from string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool {
		return st.Name == "message" && st.Type != "error" && strings.EqualFold(st.From, from) && st.Body() != ""
	}
}

// bodyContains matches a message whose body contains text.
func bodyContains(text string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool { return st.Name == "message" && strings.Contains(st.Body(), text) }
}

func extraConfig(email, extra map[string]any) map[string]any {
	out := map[string]any{"email": email}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// mailBody returns what follows the header of a raw message (CRLF or LF).
func mailBody(raw string) string {
	if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
		return raw[i+4:]
	}
	if i := strings.Index(raw, "\n\n"); i >= 0 {
		return raw[i+2:]
	}
	return ""
}

// takeOutcomes takes the error stanzas and XEP-0184 receipts waiting at
// c without waiting for more: an error's stanza id goes into errs, a
// receipt into acked as label + its id without idPrefix (the body the
// test sent with that id).
func takeOutcomes(t *testing.T, c *testbed.XMPPClient, errs, acked map[string]bool, label, idPrefix string) {
	t.Helper()
	for {
		st, err := c.Take(func(st testbed.Stanza) bool {
			return st.Type == "error" || st.Find("{"+nsReceipts+"}received") != nil
		}, 10*time.Millisecond)
		if err != nil {
			return
		}
		if st.Type == "error" {
			errs[st.ID] = true
			t.Logf("error for %s: %s", st.ID, st.ErrorText())
			continue
		}
		acked[label+strings.TrimPrefix(st.Find("{"+nsReceipts+"}received").AttrValue("id"), idPrefix)] = true
	}
}

// mailedOnce reads who's Dovecot INBOX and returns, for every mail whose
// body holds marker followed by a number and a full stop, that text →
// its Message-ID, and how many were copies of one already seen (a copy
// with another Message-ID fails the test: a mail sent twice must be the
// same mail).
func (s *emailStack) mailedOnce(who, marker string) (map[string]string, int) {
	s.t.Helper()
	got, dups := map[string]string{}, 0
	for _, m := range s.dovecot.Messages(who, "") {
		b := mailBody(m) // the Subject may repeat another message's text
		i := strings.Index(b, marker)
		if i < 0 {
			continue
		}
		body := b[i : i+strings.IndexByte(b[i:], '.')]
		mid := header(m, "Message-ID")
		if prev, ok := got[body]; ok {
			dups++
			if prev != mid {
				s.t.Fatalf("%s: %q sent twice with different Message-IDs %s and %s", who, body, prev, mid)
			}
		}
		got[body] = mid
	}
	return got, dups
}
