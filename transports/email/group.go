package email

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/transports/email/mailmsg"
)

// Group mail: a mail with several recipients is one conversation with
// several people. Inbound, the other recipients are shown (a first line
// and XEP-0033 addresses) and remembered with the thread; a reply in the
// thread goes to all of them (reply-all); a XEP-0033 multicast message to
// the gateway domain is a new mail to several people. See doc/email.md.

// person is one participant of a group conversation.
type person struct {
	Name string `json:"name,omitempty"`
	Addr string `json:"addr"`
	Cc   bool   `json:"cc,omitempty"` // was on Cc (else To, or the author)
}

// groupKey is the state key of the participants of one mail (by its
// Message-ID): a XEP-0461 reply to that mail goes to them.
func groupKey(messageID string) string { return "group:" + messageID }

// isOwn reports whether addr is one of the user's own addresses: the
// bring-your-own address, or the hosted address with any +tag.
func (t *Transport) isOwn(acct *store.Account, addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if addr == "" || acct == nil {
		return false
	}
	if own := strings.ToLower(t.ownAddress(acct)); own != "" && own == addr {
		return true
	}
	if e := strings.ToLower(acct.Fields["email"]); e != "" && e == addr {
		return true
	}
	lp := strings.ToLower(acct.Fields["address"])
	at := strings.LastIndexByte(addr, '@')
	if lp == "" || at < 0 || t.cfg.HostedDomain == "" || !strings.EqualFold(addr[at+1:], t.cfg.HostedDomain) {
		return false
	}
	local := addr[:at]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local == lp
}

// others returns who else a mail went to: its To and Cc without the
// user's own addresses and the author, each once, in header order.
func (t *Transport) others(acct *store.Account, m *mailmsg.Message, author string) []person {
	seen := map[string]bool{strings.ToLower(author): true}
	var out []person
	add := func(l []mailmsg.Address, cc bool) {
		for _, a := range l {
			k := strings.ToLower(a.Addr)
			if k == "" || seen[k] || t.isOwn(acct, k) {
				continue
			}
			if _, err := mapping.NormalizeMailbox(a.Addr); err != nil {
				continue
			}
			seen[k] = true
			out = append(out, person{Name: a.Name, Addr: a.Addr, Cc: cc})
		}
	}
	add(m.To, false)
	add(m.Cc, true)
	return out
}

// maxShown is how many participants the first line of a group mail
// names; the rest are counted ("and 12 more").
const maxShown = 8

// participantsLine is the first line of a group mail shown in XMPP:
// "To: Carol <carol@example.org>; Cc: dave@example.org".
func participantsLine(ps []person) string {
	var to, cc []string
	more := 0
	for i, p := range ps {
		if i == maxShown {
			more = len(ps) - maxShown
			break
		}
		s := p.Addr
		if n := strings.TrimSpace(oneLine(p.Name)); n != "" && !strings.EqualFold(n, p.Addr) {
			s = n + " <" + p.Addr + ">"
		}
		if p.Cc {
			cc = append(cc, s)
		} else {
			to = append(to, s)
		}
	}
	var parts []string
	if len(to) > 0 {
		parts = append(parts, "To: "+strings.Join(to, ", "))
	}
	if len(cc) > 0 {
		parts = append(parts, "Cc: "+strings.Join(cc, ", "))
	}
	line := strings.Join(parts, "; ")
	if more > 0 {
		line += fmt.Sprintf(" and %d more", more)
	}
	return line
}

// extAddresses renders participants as XEP-0033 addresses.
func (t *Transport) extAddresses(ps []person) []bridge.ExtAddress {
	var out []bridge.ExtAddress
	for _, p := range ps {
		a, err := t.codec.Mailbox(p.Addr)
		if err != nil {
			continue
		}
		typ := "to"
		if p.Cc {
			typ = "cc"
		}
		out = append(out, bridge.ExtAddress{Type: typ, Addr: a, Desc: p.Name})
	}
	return out
}

// recipients are the addresses of one outbound mail.
type recipients struct {
	To, Cc, Bcc []mailmsg.Address
}

func (r recipients) count() int { return len(r.To) + len(r.Cc) + len(r.Bcc) }

// envelope is every recipient's address (RCPT TO), Bcc included.
func (r recipients) envelope() []string {
	out := make([]string, 0, r.count())
	for _, l := range [][]mailmsg.Address{r.To, r.Cc, r.Bcc} {
		for _, a := range l {
			out = append(out, a.Addr)
		}
	}
	return out
}

// people are the participants a reply to this mail goes to (To and Cc,
// never Bcc).
func (r recipients) people() []person {
	var out []person
	for _, a := range r.To {
		out = append(out, person{Name: a.Name, Addr: a.Addr})
	}
	for _, a := range r.Cc {
		out = append(out, person{Name: a.Name, Addr: a.Addr, Cc: true})
	}
	return out
}

// replyAll addresses a reply to contact in a group conversation: To the
// contact (the author of what is answered), Cc everyone else, never the
// user's own addresses, each address once.
func (t *Transport) replyAll(acct *store.Account, contact string, ps []person) recipients {
	r := recipients{To: []mailmsg.Address{{Addr: contact}}}
	seen := map[string]bool{strings.ToLower(contact): true}
	for _, p := range ps {
		k := strings.ToLower(p.Addr)
		if k == strings.ToLower(contact) && r.To[0].Name == "" {
			r.To[0].Name = p.Name
		}
		if seen[k] || t.isOwn(acct, k) {
			continue
		}
		seen[k] = true
		r.Cc = append(r.Cc, mailmsg.Address{Name: p.Name, Addr: p.Addr})
	}
	return r
}

// multicastRecipients turns the XEP-0033 addresses of a message to the
// gateway domain into recipients. Each address must be a contact of this
// gateway; errors name the bad one.
func (t *Transport) multicastRecipients(as []bridge.ExtAddress) (recipients, error) {
	var r recipients
	seen := map[string]bool{}
	for _, a := range as {
		if a.Delivered {
			continue // a multicast service before us sent it there already
		}
		typ := strings.ToLower(a.Type)
		switch typ {
		case "to", "cc", "bcc":
		case "replyto", "replyroom", "noreply", "ofrom":
			continue // about replies, not recipients
		default:
			return r, bridge.Errorf(bridge.BadRequest, "The address type %q is not one of to, cc or bcc (XEP-0033).", a.Type)
		}
		var addr string
		switch {
		case a.JID == "" && a.URI != "":
			u := a.URI
			if len(u) < 7 || !strings.EqualFold(u[:7], "mailto:") {
				return r, bridge.Errorf(bridge.JIDMalformed, "The address %q is not a mailto: URI or a contact JID of %s.", u, t.codec.Domain())
			}
			addr = u[7:]
			if i := strings.IndexByte(addr, '?'); i >= 0 {
				addr = addr[:i]
			}
		case a.JID == "":
			return r, bridge.Errorf(bridge.BadRequest, "An address (type %s) has neither a jid nor a uri.", typ)
		case a.Err != "":
			return r, bridge.Errorf(bridge.JIDMalformed, "The address %s is not an email contact of this gateway: %s", a.JID, a.Err)
		case a.Addr.Kind != mapping.KindContact:
			return r, bridge.Errorf(bridge.JIDMalformed, `The address %s is not an email contact: write alice@example.com as alice\40example.com@%s.`, a.JID, t.codec.Domain())
		default:
			addr = a.Addr.Name
		}
		v, err := mailmsg.ValidateAddress(addr)
		if err != nil {
			who := a.JID
			if who == "" {
				who = a.URI
			}
			return r, bridge.Errorf(bridge.JIDMalformed, "The recipient %s is refused: %v", who, err)
		}
		k := strings.ToLower(v.Addr)
		if seen[k] {
			continue
		}
		seen[k] = true
		ma := mailmsg.Address{Name: oneLine(a.Desc), Addr: v.Addr}
		switch typ {
		case "to":
			r.To = append(r.To, ma)
		case "cc":
			r.Cc = append(r.Cc, ma)
		default:
			r.Bcc = append(r.Bcc, ma)
		}
	}
	if r.count() == 0 {
		return r, bridge.Errorf(bridge.BadRequest, "The message names no recipient: give <address type='to'/> (or cc, bcc) elements with contact JIDs.")
	}
	return r, nil
}

// groupPeople returns the participants of the group conversation a
// message to contact continues: those of the mail it replies to (XEP-0461)
// when that was a group mail, else those of its thread. nil means a
// one-to-one mail.
func (t *Transport) groupPeople(ctx context.Context, user, replyMsgID string, thread conv) []person {
	if replyMsgID != "" {
		if b, err := t.st.GetState(ctx, user, "email", groupKey(replyMsgID)); err == nil && len(b) > 0 {
			var ps []person
			if json.Unmarshal(b, &ps) == nil && len(ps) > 0 {
				return ps
			}
		}
	}
	return thread.People
}

// groupState is the stored participants of one mail (ok false for a
// one-to-one mail).
func groupState(user, messageID string, ps []person) (store.StateValue, bool) {
	if messageID == "" || len(ps) == 0 {
		return store.StateValue{}, false
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return store.StateValue{}, false
	}
	return store.StateValue{User: user, Transport: "email", Key: groupKey(messageID), Value: b}, true
}

// putGroup records the participants of one mail.
func (t *Transport) putGroup(ctx context.Context, user, messageID string, ps []person) {
	v, ok := groupState(user, messageID, ps)
	if !ok {
		return
	}
	if err := t.st.PutState(ctx, v.User, v.Transport, v.Key, v.Value); err != nil {
		t.log.Warn("saving the participants of a mail failed", "user", user, "err", err)
	}
}

// checkRecipients applies max_recipients.
func (t *Transport) checkRecipients(r recipients) error {
	if n := r.count(); t.cfg.MaxRecipients > 0 && n > t.cfg.MaxRecipients {
		return bridge.Errorf(bridge.PolicyViolation, "Too many recipients: this mail has %d, and max_recipients allows %d per message.", n, t.cfg.MaxRecipients)
	}
	return nil
}

// recipientList is "a, b and c" for messages.
func recipientList(l []string) string {
	switch len(l) {
	case 0:
		return "nobody"
	case 1:
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}

// describeRefusals is the sentence for recipients the server refused.
func describeRefusals(refused []refusal) string {
	parts := make([]string, 0, len(refused))
	for _, r := range refused {
		parts = append(parts, fmt.Sprintf("%s (%s)", r.Rcpt, r.Reply))
	}
	return strings.Join(parts, "; ")
}

// replyToOthers returns the mail's Reply-To addresses when they name
// someone other than the author (a Reply-To that is the From address
// changes nothing); at most maxRecipientsShown.
func replyToOthers(m *mailmsg.Message, author string) []person {
	var out []person
	differs := false
	seen := map[string]bool{}
	for _, a := range m.ReplyTo {
		addr := strings.ToLower(strings.TrimSpace(a.Addr))
		if addr == "" || seen[addr] {
			continue
		}
		if _, err := mailmsg.ValidateAddress(addr); err != nil {
			continue
		}
		seen[addr] = true
		if addr != strings.ToLower(author) {
			differs = true
		}
		out = append(out, person{Name: a.Name, Addr: addr})
		if len(out) == maxReplyTo {
			break
		}
	}
	if !differs {
		return nil
	}
	return out
}

// maxReplyTo bounds the Reply-To addresses a reply goes to.
const maxReplyTo = 8

// replyToLine names the Reply-To addresses for the message's first lines.
func replyToLine(ps []person) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		if p.Name != "" {
			parts[i] = p.Name + " <" + p.Addr + ">"
		} else {
			parts[i] = p.Addr
		}
	}
	return strings.Join(parts, ", ")
}

// replyToAddresses renders Reply-To addresses as XEP-0033 replyto.
func (t *Transport) replyToAddresses(ps []person) []bridge.ExtAddress {
	var out []bridge.ExtAddress
	for _, p := range ps {
		if a, err := t.codec.Mailbox(p.Addr); err == nil {
			out = append(out, bridge.ExtAddress{Type: "replyto", Addr: a, Desc: p.Name})
		}
	}
	return out
}
