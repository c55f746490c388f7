package irc

// This file is capability negotiation (CAP LS/REQ/ACK, IRCv3) and SASL.

import (
	"fmt"
	"strings"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/ergochat/irc-go/ircutils"
)

// capsWanted are the IRCv3 capabilities the gateway uses when the server
// offers them (sasl is added when the user configured a login).
var capsWanted = []string{
	"server-time", "echo-message", "message-tags", "multi-prefix", "away-notify",
	"account-notify", "extended-join", "chghost", "batch", "labeled-response",
	"userhost-in-names", "invite-notify", "cap-notify",
}

func (n *network) onCap(m *ircmsg.Message) {
	switch strings.ToUpper(param(m, 1)) {
	case "LS":
		more := len(m.Params) >= 4 && m.Params[2] == "*"
		if n.capLS == nil {
			n.capLS = map[string]string{}
		}
		for _, tok := range strings.Fields(last(m)) {
			k, v, _ := strings.Cut(strings.Clone(tok), "=")
			n.capLS[k] = v
		}
		if more || n.capEnded {
			return
		}
		n.requestCaps(n.capLS)
	case "ACK":
		for _, tok := range strings.Fields(last(m)) {
			if strings.HasPrefix(tok, "-") {
				delete(n.caps, tok[1:])
			} else {
				n.caps[strings.Clone(tok)] = true
			}
		}
		n.capReplied()
	case "NAK":
		n.capReplied()
	case "NEW":
		offered := map[string]string{}
		for _, tok := range strings.Fields(last(m)) {
			k, v, _ := strings.Cut(tok, "=")
			offered[k] = v
		}
		if n.capEnded {
			delete(offered, "sasl")
			n.requestCaps(offered)
		}
	case "DEL":
		for _, tok := range strings.Fields(last(m)) {
			delete(n.caps, tok)
		}
	}
}

// requestCaps asks for the wanted capabilities among offered; it ends
// negotiation when there are none (during registration).
func (n *network) requestCaps(offered map[string]string) {
	var want []string
	for _, c := range capsWanted {
		if _, ok := offered[c]; ok && !n.caps[c] {
			want = append(want, c)
		}
	}
	if v, ok := offered["sasl"]; ok && !n.capEnded {
		if mech := n.saslMechanism(); mech != "" && (v == "" || containsWord(v, mech)) {
			want = append(want, "sasl")
		}
	}
	if len(want) == 0 {
		if !n.capEnded {
			n.capEnd()
		}
		return
	}
	var line []string
	size := 0
	for _, c := range want {
		if size+len(c)+1 > 400 {
			n.send(ircmsg.MakeMessage(nil, "", "CAP", "REQ", strings.Join(line, " ")))
			n.capPending++
			line, size = nil, 0
		}
		line = append(line, c)
		size += len(c) + 1
	}
	n.send(ircmsg.MakeMessage(nil, "", "CAP", "REQ", strings.Join(line, " ")))
	n.capPending++
}

func containsWord(list, w string) bool {
	for _, x := range strings.Split(list, ",") {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

// capReplied counts an ACK or NAK; when all are in, SASL runs or
// negotiation ends.
func (n *network) capReplied() {
	n.capPending--
	if n.capPending > 0 || n.capEnded {
		return
	}
	if n.caps["sasl"] && n.sasl == "" {
		if mech := n.saslMechanism(); mech != "" {
			n.sasl = mech
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", mech))
			return
		}
	}
	n.capEnd()
}

// capEnd ends capability negotiation once.
func (n *network) capEnd() {
	if !n.capEnded {
		n.saslNotTried()
		n.capEnded = true
		n.capLS = nil // only needed during negotiation (CAP NEW refills it)
		n.send(ircmsg.MakeMessage(nil, "", "CAP", "END"))
	}
}

// saslMechanism is the configured SASL mechanism if it can be used.
func (n *network) saslMechanism() string {
	set := n.settings()
	switch strings.ToUpper(set.net(n.key, keySASLMechanism)) {
	case "PLAIN":
		if set.secret(n.key, secretSASLPassword) != "" {
			return "PLAIN"
		}
	case "EXTERNAL":
		if set.secret(n.key, secretClientCert) != "" && n.info.tls {
			return "EXTERNAL"
		}
	}
	return ""
}

// saslNotTried tells the user why they are not logged in when a SASL
// login is configured but negotiation ends without trying it (a failed
// try has told them already). It runs before capLS is cleared: what the
// server offered is the reason.
func (n *network) saslNotTried() {
	set := n.settings()
	want := strings.ToUpper(set.net(n.key, keySASLMechanism))
	if n.sasl != "" || want == "" {
		return
	}
	offer, offered := n.capLS["sasl"]
	var why string
	switch {
	case want == "PLAIN" && set.secret(n.key, secretSASLPassword) == "":
		why = "no SASL password is saved"
	case want == "EXTERNAL" && set.secret(n.key, secretClientCert) == "":
		why = "no client certificate is saved"
	case want == "EXTERNAL" && (n.info == nil || !n.info.tls):
		why = "a client certificate needs TLS and this network is reached without it"
	case n.capLS == nil:
		why = "the server does not support IRCv3 capability negotiation"
	case !offered:
		why = "the server does not offer SASL"
	case offer != "" && !containsWord(offer, want):
		why = "the server offers SASL with " + strings.ReplaceAll(offer, ",", ", ") + " only"
	default:
		why = "the server refused the sasl capability"
	}
	n.serverNotice(fmt.Sprintf("Not logging in to %s with SASL %s: %s. Connecting without logging in; %s", n.name, want, why, n.saslSettingsHint()))
}

// saslSettingsHint says where the SASL settings are changed.
func (n *network) saslSettingsHint() string {
	return fmt.Sprintf("the SASL settings are in the configure command of %s@%s.", n.name, n.s.t.codec.Domain())
}

func (n *network) onAuthenticate(m *ircmsg.Message) {
	if param(m, 0) != "+" || n.sasl == "" {
		return
	}
	switch n.sasl {
	case "EXTERNAL":
		n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", "+"))
	case "PLAIN":
		set := n.settings()
		user := set.net(n.key, keySASLUsername)
		if user == "" {
			user = n.wantNick
		}
		pass := set.secret(n.key, secretSASLPassword)
		if strings.ContainsRune(user+pass, 0) {
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", "*"))
			return
		}
		for _, chunk := range ircutils.EncodeSASLResponse([]byte(user + "\x00" + user + "\x00" + pass)) {
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", chunk))
		}
	}
}
