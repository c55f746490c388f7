package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

// mailDomain is the email component's domain and its hosted mail domain.
const mailDomain = "mail.localhost"

// emailDemo is the email part of the demo: Postfix (the MTA in front of
// the gateway's listener, and its smarthost) and Dovecot (the outside
// world's mailboxes, and bob's own mailbox).
type emailDemo struct {
	tb      *testbed.Standalone
	secret  string
	listen  string
	postfix *testbed.Postfix
	dovecot *testbed.Dovecot
}

// startEmailDemo starts Dovecot and Postfix; the gateway's [email] section
// is extra(), and registered() signs alice and bob up once it runs.
// portOr gives a default port when it is free (0, a free one, otherwise).
func startEmailDemo(tb *testbed.Standalone, secret string, portOr func(port int, what string) int) *emailDemo {
	d := &emailDemo{tb: tb, secret: secret}
	d.listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(tb)))
	d.postfix = testbed.StartPostfix(tb, testbed.PostfixOptions{
		Port:          portOr(2525, "SMTP (Postfix)"),
		Transport:     map[string]string{mailDomain: "smtp:[127.0.0.1]:" + portOf(d.listen)},
		QueueLifetime: "1h",
	})
	d.dovecot = testbed.StartDovecot(tb, testbed.DovecotOptions{
		Users:     map[string]string{"carol@example.test": "carolpw", "bob@example.test": "bobpw"},
		RelayAddr: d.postfix.Addr(),
	})
	d.postfix.SetTransport(map[string]string{
		mailDomain:     "smtp:[127.0.0.1]:" + portOf(d.listen),
		"example.test": "lmtp:[127.0.0.1]:" + portOf(d.dovecot.LMTPAddr()),
	})
	return d
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// extra is the gateway's [email] section.
func (d *emailDemo) extra() map[string]any {
	return map[string]any{"email": map[string]any{
		"domain": mailDomain, "secret": d.secret, "hosted_domain": mailDomain,
		"listen": d.listen, "smarthost": d.postfix.Addr(), "smarthost_security": "none",
		"trusted_relays": []string{"127.0.0.1/32"}, "authserv_id": "mx.localhost",
	}}
}

// registered signs alice up for a hosted address and bob for his own
// Dovecot mailbox, then prints how to try it.
func (d *emailDemo) registered(p *testbed.Prosody, password string) {
	reg := func(user, fields string) {
		c := testbed.DialXMPP(d.tb, p.C2SAddr(), jid.MustParse(user+"@"+p.Domain+"/demo-setup"), password)
		defer c.Close()
		r := c.IQ(d.tb, `<iq type='set' to='`+mailDomain+`'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>`+fields+`</x></query></iq>`, 30*time.Second)
		if r.Type != "result" {
			d.tb.Fatalf("registering %s with the email gateway: %s", user, r.XML)
		}
	}
	f := func(k, v string) string { return "<field var='" + k + "'><value>" + v + "</value></field>" }
	reg("alice", f("name", "Alice"))
	reg("bob", f("email", "bob@example.test")+f("imap_server", d.dovecot.IMAPAddr())+f("imap_security", "none")+
		f("smtp_server", d.dovecot.SubmissionAddr())+f("smtp_security", "none")+f("password", "bobpw"))
	fmt.Printf(`
Email (Postfix %[1]s in front of the gateway and as its smarthost;
Dovecot IMAP %[2]s, submission %[3]s):
  alice has the hosted address alice@%[4]s; bob brings his own
  Dovecot mailbox bob@example.test (password bobpw).
  Mail alice from the shell:
    swaks --server %[1]s --from carol@example.test --to alice@%[4]s \
          --header 'Subject: hello' --body 'Hi Alice, from the shell'
  Mail bob (his Dovecot INBOX, watched with IMAP IDLE):
    swaks --server %[1]s --from carol@example.test --to bob@example.test --body 'Hi Bob'
  Reply from the XMPP client to carol\40example.test@%[4]s; replies land
  in carol's Dovecot mailbox, read them with:
    ls %[5]s/new %[5]s/cur && cat %[5]s/new/*
  or over IMAP: carol@example.test / carolpw at %[2]s (no TLS).
  Bob's copies of what he sent: %[6]s
  Block carol in alice's client (XEP-0191, "Block" on carol's contact):
  the swaks command above is then refused with 550 within 10 s.
`, d.postfix.Addr(), d.dovecot.IMAPAddr(), d.dovecot.SubmissionAddr(), mailDomain,
		d.dovecot.Maildir("carol@example.test", ""), d.dovecot.Maildir("bob@example.test", "Sent"))
}
