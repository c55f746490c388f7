package email

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/transports/email/mailmsg"
)

// Command nodes of the email transport.
const (
	NodeConfigure     = "configure"
	NodeAssignAddress = "assign-address"
)

// loginTimeout bounds each server login made while registering.
const loginTimeout = 20 * time.Second

// addrRefresh is how old the hosted address index may be before a lookup
// that misses reloads it.
const addrRefresh = time.Second

// addrMaxAge is how old the index may get at all (an unregistered user's
// address stops being accepted within it).
const addrMaxAge = 30 * time.Second

var securityOptions = []bridge.FormOption{
	{Label: "TLS (implicit, e.g. IMAP 993, SMTP 465)", Value: "tls"},
	{Label: "STARTTLS (e.g. IMAP 143, SMTP 587)", Value: "starttls"},
	{Label: "None (unencrypted: loopback or testing only)", Value: "none"},
}

// RegistrationForm is the XEP-0077 form (also the configure command's).
func (t *Transport) RegistrationForm(acct *store.Account) *bridge.Form {
	get := func(k string) []string {
		if acct == nil || acct.Fields[k] == "" {
			return nil
		}
		return []string{acct.Fields[k]}
	}
	f := &bridge.Form{Type: "form", Title: "Email gateway registration"}
	if t.cfg.HostedDomain != "" {
		f.Instructions = fmt.Sprintf("Either take an address at %s (fill in address, or leave everything empty to get your XMPP name), "+
			"or bring your own mailbox (fill in email, imap_server, smtp_server, username and password).", t.cfg.HostedDomain)
		f.Fields = append(f.Fields, bridge.FormField{Var: "address", Type: bridge.FieldTextSingle,
			Label: "Address at " + t.cfg.HostedDomain + " (the part before the @)", Values: get("address")})
	} else {
		f.Instructions = "Bring your own mailbox: the gateway reads its INBOX over IMAP and sends through its SMTP submission server."
	}
	secVal := func(k, def string) []string {
		if v := get(k); v != nil {
			return v
		}
		return []string{def}
	}
	f.Fields = append(f.Fields,
		bridge.FormField{Var: "name", Type: bridge.FieldTextSingle, Label: "Your name on outgoing mail", Values: get("name")},
		bridge.FormField{Var: "email", Type: bridge.FieldTextSingle, Label: "Your email address (bring your own)", Values: get("email")},
		bridge.FormField{Var: "imap_server", Type: bridge.FieldTextSingle, Label: "IMAP server (host:port)", Values: get("imap_server")},
		bridge.FormField{Var: "imap_security", Type: bridge.FieldListSingle, Label: "IMAP security", Values: secVal("imap_security", "tls"), Options: securityOptions},
		bridge.FormField{Var: "smtp_server", Type: bridge.FieldTextSingle, Label: "SMTP submission server (host:port)", Values: get("smtp_server")},
		bridge.FormField{Var: "smtp_security", Type: bridge.FieldListSingle, Label: "SMTP security", Values: secVal("smtp_security", "starttls"), Options: securityOptions},
		bridge.FormField{Var: "username", Type: bridge.FieldTextSingle, Label: "Login name (default: the email address)", Values: get("username")},
		bridge.FormField{Var: "password", Type: bridge.FieldTextPrivate, Label: "Password (leave empty to keep the saved one)"},
		bridge.FormField{Var: "fold_quotes", Type: bridge.FieldListSingle, Label: "Quoted history under a reply",
			Values: secVal("fold_quotes", t.cfg.FoldQuotes), Options: []bridge.FormOption{
				{Label: "Fold it into a quote", Value: "fold"}, {Label: "Leave it out", Value: "drop"}, {Label: "Keep it as written", Value: "keep"}}},
		bridge.FormField{Var: "blocked", Type: bridge.FieldTextMulti, Label: "Blocked senders (one address per line; their mail is refused)",
			Values: blockedList(acct)},
	)
	return f
}

// blockedList returns the account's blocked senders.
func blockedList(a *store.Account) []string {
	if a == nil || a.Fields["blocked"] == "" {
		return nil
	}
	return strings.Split(a.Fields["blocked"], "\n")
}

// ApplyRegistration validates the form and writes it into acct. For a
// bring-your-own mailbox it logs in to the IMAP and SMTP servers first;
// a failure names the server and nothing is saved.
func (t *Transport) ApplyRegistration(acct *store.Account, v bridge.FormValues) error {
	next := cloneAccount(acct)
	if v.Has("name") {
		name := strings.TrimSpace(v.Get("name"))
		if strings.ContainsAny(name, "\r\n\x00") || len(name) > 200 {
			return bridge.Errorf(bridge.NotAcceptable, "The name must be one line of at most 200 bytes.")
		}
		setField(next, "name", name)
	}
	if v.Has("fold_quotes") {
		switch fq := v.Get("fold_quotes"); fq {
		case "", "fold", "drop", "keep":
			setField(next, "fold_quotes", fq)
		default:
			return bridge.Errorf(bridge.NotAcceptable, "fold_quotes must be fold, drop or keep, not %q.", fq)
		}
	}
	if v.Has("blocked") {
		var list []string
		for _, line := range v["blocked"] {
			for _, s := range strings.Split(line, "\n") {
				s = strings.TrimSpace(s)
				if s == "" {
					continue
				}
				a, err := mailmsg.ValidateAddress(s)
				if err != nil {
					return bridge.Errorf(bridge.NotAcceptable, "Blocked sender %q: %v", s, err)
				}
				if !slices.Contains(list, strings.ToLower(a.Addr)) {
					list = append(list, strings.ToLower(a.Addr))
				}
			}
		}
		setField(next, "blocked", strings.Join(list, "\n"))
	}
	if strings.TrimSpace(v.Get("imap_server")) != "" || (isBYO(acct) && !v.Has("imap_server") && !v.Has("address")) {
		if err := t.applyBYO(next, v); err != nil {
			return err
		}
	} else {
		if err := t.applyHosted(next, v.Get("address"), false); err != nil {
			return err
		}
	}
	*acct = *next
	t.addrMu.Lock()
	if t.blocked == nil {
		t.blocked = map[string]string{}
	}
	if b := next.Fields["blocked"]; b != "" {
		t.blocked[next.User] = b
	} else {
		delete(t.blocked, next.User)
	}
	t.addrMu.Unlock()
	t.imap.changed()
	return nil
}

func setField(a *store.Account, k, v string) {
	if v == "" {
		delete(a.Fields, k)
		return
	}
	a.Fields[k] = v
}

func cloneAccount(a *store.Account) *store.Account {
	n := *a
	n.Fields = map[string]string{}
	n.Secrets = map[string]string{}
	for k, v := range a.Fields {
		n.Fields[k] = v
	}
	for k, v := range a.Secrets {
		n.Secrets[k] = v
	}
	return &n
}

// applyHosted gives the account the hosted address local (default: the
// XMPP local part).
func (t *Transport) applyHosted(a *store.Account, local string, admin bool) error {
	if t.cfg.HostedDomain == "" {
		return bridge.Errorf(bridge.NotAcceptable, "This gateway hosts no addresses: bring your own mailbox (fill in email, imap_server, smtp_server, username and password).")
	}
	local = strings.ToLower(strings.TrimSpace(local))
	if local == "" {
		if cur := a.Fields["address"]; cur != "" {
			local = cur
		} else if j, err := jid.Parse(a.User); err == nil {
			local = strings.ToLower(j.Localpart())
		}
	}
	if local == "" {
		return bridge.Errorf(bridge.NotAcceptable, "Choose an address (the part before @%s).", t.cfg.HostedDomain)
	}
	if strings.Contains(local, "+") {
		return bridge.Errorf(bridge.NotAcceptable, "The address cannot contain '+': %s+anything@%s already reaches %s@%s.", strings.Split(local, "+")[0], t.cfg.HostedDomain, strings.Split(local, "+")[0], t.cfg.HostedDomain)
	}
	full := local + "@" + t.cfg.HostedDomain
	if _, err := mapping.NormalizeMailbox(full); err != nil {
		return bridge.Errorf(bridge.NotAcceptable, "%s", mapping.AsError(err).Text)
	}
	switch local {
	case "postmaster", "abuse", "mailer-daemon", "root", "hostmaster", "webmaster":
		if !admin {
			return bridge.Errorf(bridge.NotAcceptable, "The address %s is reserved; choose another.", full)
		}
	}
	t.addrLock.Lock()
	defer t.addrLock.Unlock()
	owner, err := t.lookupAddress(context.Background(), local, true)
	if err != nil {
		return bridge.Errorf(bridge.InternalServerError, "The address index could not be read; try again.")
	}
	if owner != "" && owner != a.User {
		return bridge.Errorf(bridge.Conflict, "The address %s is taken; choose another.", full)
	}
	for _, k := range []string{"email", "imap_server", "imap_security", "smtp_server", "smtp_security", "username"} {
		delete(a.Fields, k)
	}
	delete(a.Secrets, "password")
	a.Fields["address"] = local
	// Reserve it now; the store has it once the caller saves the account.
	t.addrMu.Lock()
	for k, v := range t.addrs {
		if v == a.User {
			delete(t.addrs, k)
		}
	}
	t.addrs[local] = a.User
	t.addrMu.Unlock()
	return nil
}

// lookupAddress returns the bare JID owning a hosted local part ("" for
// none). The index is reloaded when a miss finds it older than
// addrRefresh, or always with fresh.
func (t *Transport) lookupAddress(ctx context.Context, local string, fresh bool) (string, error) {
	local = strings.ToLower(local)
	t.addrMu.Lock()
	owner, ok := t.addrs[local]
	age := t.now().Sub(t.addrsAt)
	stale := fresh || t.addrs == nil || age > addrMaxAge || (!ok && age > addrRefresh)
	t.addrMu.Unlock()
	if !stale {
		return owner, nil
	}
	accts, err := t.st.ListAccounts(ctx, "email")
	if err != nil {
		return "", fmt.Errorf("listing email accounts: %w", err)
	}
	m := make(map[string]string, len(accts))
	blocked := map[string]string{}
	for _, a := range accts {
		if lp := a.Fields["address"]; lp != "" && !isBYO(&a) {
			m[strings.ToLower(lp)] = a.User
			if b := a.Fields["blocked"]; b != "" {
				blocked[a.User] = b
			}
		}
	}
	t.addrMu.Lock()
	t.addrs, t.addrsAt, t.blocked = m, t.now(), blocked
	owner = m[local]
	t.addrMu.Unlock()
	return owner, nil
}

// applyBYO validates and checks a bring-your-own mailbox.
func (t *Transport) applyBYO(a *store.Account, v bridge.FormValues) error {
	val := func(k string) string {
		if v.Has(k) {
			return strings.TrimSpace(v.Get(k))
		}
		return a.Fields[k]
	}
	email := val("email")
	addr, err := mailmsg.ValidateAddress(email)
	if err != nil {
		return bridge.Errorf(bridge.NotAcceptable, "email: %v", err)
	}
	if _, err := mapping.NormalizeMailbox(addr.Addr); err != nil {
		return bridge.Errorf(bridge.NotAcceptable, "email: %s", mapping.AsError(err).Text)
	}
	s := mailbox{
		Email:        addr.Addr,
		IMAPServer:   val("imap_server"),
		IMAPSecurity: val("imap_security"),
		SMTPServer:   val("smtp_server"),
		SMTPSecurity: val("smtp_security"),
		Username:     val("username"),
		Password:     v.Get("password"),
	}
	if s.IMAPSecurity == "" {
		s.IMAPSecurity = "tls"
	}
	if s.SMTPSecurity == "" {
		s.SMTPSecurity = "starttls"
	}
	if s.Username == "" {
		s.Username = s.Email
	}
	if s.Password == "" {
		s.Password = a.Secrets["password"]
	}
	for _, c := range []struct{ key, val string }{{"imap_server", s.IMAPServer}, {"smtp_server", s.SMTPServer}} {
		if c.val == "" {
			return bridge.Errorf(bridge.NotAcceptable, "%s is required for your own mailbox (host:port).", c.key)
		}
		if _, port, err := net.SplitHostPort(c.val); err != nil || port == "" {
			return bridge.Errorf(bridge.NotAcceptable, "%s: %q is not host:port.", c.key, c.val)
		}
	}
	for _, c := range []struct{ key, val string }{{"imap_security", s.IMAPSecurity}, {"smtp_security", s.SMTPSecurity}} {
		switch c.val {
		case "tls", "starttls", "none":
		default:
			return bridge.Errorf(bridge.NotAcceptable, "%s must be tls, starttls or none, not %q.", c.key, c.val)
		}
	}
	if strings.ContainsAny(s.Username+s.Password, "\r\n\x00") {
		return bridge.Errorf(bridge.NotAcceptable, "The login name and password cannot contain line breaks.")
	}
	if s.Password == "" {
		return bridge.Errorf(bridge.NotAcceptable, "password is required for your own mailbox.")
	}
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	if err := s.checkIMAP(ctx); err != nil {
		t.log.Info("registration: IMAP login failed", "user", a.User, "server", s.IMAPServer, "err", err)
		return bridge.Errorf(bridge.NotAuthorized, "IMAP server %s: %s. Nothing was saved.", s.IMAPServer, strings.TrimRight(err.Error(), ". "))
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel2()
	if err := s.checkSMTP(ctx2); err != nil {
		t.log.Info("registration: SMTP login failed", "user", a.User, "server", s.SMTPServer, "err", err)
		return bridge.Errorf(bridge.NotAuthorized, "SMTP server %s: %s. Nothing was saved.", s.SMTPServer, strings.TrimRight(err.Error(), ". "))
	}
	delete(a.Fields, "address")
	a.Fields["email"] = s.Email
	a.Fields["imap_server"] = s.IMAPServer
	a.Fields["imap_security"] = s.IMAPSecurity
	a.Fields["smtp_server"] = s.SMTPServer
	a.Fields["smtp_security"] = s.SMTPSecurity
	a.Fields["username"] = s.Username
	a.Secrets["password"] = s.Password
	t.addrMu.Lock()
	for k, u := range t.addrs {
		if u == a.User {
			delete(t.addrs, k)
		}
	}
	t.addrMu.Unlock()
	return nil
}

// mailboxOf returns the bring-your-own settings of an account.
func mailboxOf(a *store.Account) mailbox {
	return mailbox{
		Email:        a.Fields["email"],
		IMAPServer:   a.Fields["imap_server"],
		IMAPSecurity: a.Fields["imap_security"],
		SMTPServer:   a.Fields["smtp_server"],
		SMTPSecurity: a.Fields["smtp_security"],
		Username:     a.Fields["username"],
		Password:     a.Secrets["password"],
	}
}

// Commands are configure (everyone) and assign-address (admins).
func (t *Transport) Commands() []bridge.Command {
	cmds := []bridge.Command{
		{Node: NodeConfigure, Name: "Configure: address, mailbox, blocked senders", Run: t.configureCommand},
	}
	if t.cfg.HostedDomain != "" {
		cmds = append(cmds, bridge.Command{Node: NodeAssignAddress, Name: "Assign or change a user's hosted address", Admin: true, Run: t.assignCommand})
	}
	return cmds
}

func (t *Transport) configureCommand(ctx context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	if req.Step == 0 {
		acct, err := t.st.GetAccount(ctx, req.From.Bare().String(), "email")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, bridge.Errorf(bridge.InternalServerError, "Your settings could not be read.")
		}
		if err != nil {
			acct = nil
		}
		return &bridge.CommandResponse{Form: t.RegistrationForm(acct)}, nil
	}
	vals := bridge.FormValues{}
	for k, v := range req.Values {
		if k != "FORM_TYPE" {
			vals[k] = v
		}
	}
	if err := req.Gateway.Register(ctx, "email", req.From, vals); err != nil {
		return nil, err
	}
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "Saved."}}}, nil
}

func (t *Transport) assignCommand(ctx context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	if req.Step == 0 {
		return &bridge.CommandResponse{Form: &bridge.Form{Type: "form", Title: "Assign a hosted address",
			Instructions: "The user's address at " + t.cfg.HostedDomain + " becomes the one given; their old one is freed.",
			Fields: []bridge.FormField{
				{Var: "jid", Type: bridge.FieldJIDSingle, Label: "User (bare JID)", Required: true},
				{Var: "address", Type: bridge.FieldTextSingle, Label: "Address (the part before @" + t.cfg.HostedDomain + ")", Required: true},
			}}}, nil
	}
	u, err := jid.Parse(strings.TrimSpace(req.Values.Get("jid")))
	if err != nil || u.Localpart() == "" {
		return nil, bridge.Errorf(bridge.JIDMalformed, "%q is not a user's JID.", req.Values.Get("jid"))
	}
	bare := u.Bare().String()
	acct, err := t.st.GetAccount(ctx, bare, "email")
	if errors.Is(err, store.ErrNotFound) {
		acct = &store.Account{User: bare, Transport: "email", Fields: map[string]string{}, Secrets: map[string]string{}}
	} else if err != nil {
		return nil, bridge.Errorf(bridge.InternalServerError, "The account of %s could not be read.", bare)
	}
	next := cloneAccount(acct)
	if err := t.applyHosted(next, req.Values.Get("address"), true); err != nil {
		return nil, err
	}
	if err := t.st.PutAccount(ctx, next); err != nil {
		return nil, bridge.Errorf(bridge.InternalServerError, "The account of %s could not be saved.", bare)
	}
	t.log.Info("hosted address assigned", "user", bare, "address", next.Fields["address"], "by", req.From.Bare().String())
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: fmt.Sprintf("%s now has %s@%s.", bare, next.Fields["address"], t.cfg.HostedDomain)}}}, nil
}
