package irc

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// A user's settings live in store.Account: global ones under their name
// ("nick"), per-network ones under "net.<network>.<name>" with the
// network's canonical name lowercased ("net.libera.nick"). Secrets
// (passwords, the client certificate) go to Account.Secrets with the same
// keys.
const (
	keyNick            = "nick"
	keyUsername        = "username"
	keyRealname        = "realname"
	keyBouncer         = "bouncer"          // "1": connections stay up while the user is away
	keyBouncerChannels = "bouncer_channels" // per network: channels kept joined (space-separated)
	keyCommands        = "commands"         // per network: raw commands after connecting, one a line
	keyAutojoin        = "autojoin"         // per network: channels joined after connecting
	keyPort            = "port"             // per server of an open gateway
	keyTLS             = "tls"
	keyTLSVerify       = "tls_verify"
	keyFingerprint     = "fingerprint"
	keySASLMechanism   = "sasl_mechanism" // "PLAIN", "EXTERNAL" or ""
	keySASLUsername    = "sasl_username"

	secretPassword     = "password"      // server password (PASS)
	secretSASLPassword = "sasl_password" // SASL PLAIN password
	secretClientCert   = "client_cert"   // PEM certificate and key (SASL EXTERNAL, CertFP)
)

// settings reads a user's settings.
type settings struct {
	fields  map[string]string
	secrets map[string]string
}

func settingsOf(a *store.Account) settings {
	if a == nil {
		return settings{}
	}
	return settings{fields: a.Fields, secrets: a.Secrets}
}

func netKey(netKey, name string) string { return "net." + netKey + "." + name }

// get returns a global setting.
func (s settings) get(name string) string { return s.fields[name] }

// net returns a network's own setting.
func (s settings) net(network, name string) string { return s.fields[netKey(network, name)] }

// netOr returns a network's setting, or the global one.
func (s settings) netOr(network, name string) string {
	if v := s.net(network, name); v != "" {
		return v
	}
	return s.get(name)
}

// secret returns a network's secret.
func (s settings) secret(network, name string) string { return s.secrets[netKey(network, name)] }

// bouncer reports whether the user keeps network connected while away.
func (s settings) bouncer(network string) bool {
	v := s.netOr(network, keyBouncer)
	return v == "1" || v == "true"
}

// bouncerChannel reports whether a channel (folded) is kept joined.
func (s settings) bouncerChannel(network, folded string) bool {
	for _, c := range strings.Fields(s.net(network, keyBouncerChannels)) {
		if c == folded {
			return true
		}
	}
	return false
}

// clientCert parses the network's client certificate, if any.
func (s settings) clientCert(network string) (*tls.Certificate, error) {
	pem := s.secret(network, secretClientCert)
	if pem == "" {
		return nil, nil
	}
	c, err := tls.X509KeyPair([]byte(pem), []byte(pem))
	if err != nil {
		return nil, fmt.Errorf("the client certificate saved for %s cannot be used: %w", network, err)
	}
	return &c, nil
}

// afterConnect returns a network's after-connect commands (sealed; an
// older plaintext copy is read too).
func (s settings) afterConnect(network string) string {
	if c := s.secret(network, keyCommands); c != "" {
		return c
	}
	return s.net(network, keyCommands)
}

// commandsLabel labels the after-connect commands field, which never
// shows the saved commands.
func commandsLabel(saved string) string {
	const l = "Commands sent after connecting (one per line, e.g. PRIVMSG NickServ :IDENTIFY secret)"
	if n := len(lines(saved)); n > 0 {
		return fmt.Sprintf("%s. %d saved (stored encrypted, not shown): leave empty to keep them, write new ones to replace them, or - to remove them", l, n)
	}
	return l + ". Stored encrypted and not shown back"
}

// ---------------------------------------------------------------- checks

// checkUsername validates an ident.
func checkUsername(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 32 {
		return bridge.Errorf(bridge.NotAcceptable, "The username %s is longer than 32 characters.", quote(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return bridge.Errorf(bridge.NotAcceptable, "The username %s may contain only ASCII letters, digits, '-', '_' and '.'.", quote(s))
		}
	}
	return nil
}

// checkLine validates a free-text single-line setting.
func checkLine(what, s string) error {
	if !safeParam(s) || hasControl(s) {
		return bridge.Errorf(bridge.NotAcceptable, "The %s may not contain line breaks or control characters.", what)
	}
	return checkText(what, s, maxSecret)
}

// checkSecret validates a password-like value (a single IRC parameter).
func checkSecret(what, s string) error {
	if !safeParam(s) || strings.ContainsAny(s, " ") || hasControl(s) {
		return bridge.Errorf(bridge.NotAcceptable, "The %s may not contain spaces, line breaks or control characters.", what)
	}
	return checkText(what, s, maxSecret)
}

// forbiddenRaw are commands a user may not send raw: they would break the
// gateway's own handling of the connection.
var forbiddenRaw = map[string]bool{"CAP": true, "AUTHENTICATE": true, "USER": true, "PASS": true, "WEBIRC": true, "SERVICE": true}

// ---------------------------------------------------------------- registration

// RegistrationForm is the XEP-0077 form: the global nick, username and
// realname, and bouncer mode. Per-network settings are in the configure
// command of each network (its server JID).
func (t *Transport) RegistrationForm(acct *store.Account) *bridge.Form {
	set := settingsOf(acct)
	return &bridge.Form{
		Type:  "form",
		Title: "IRC gateway settings",
		Instructions: "These apply on every IRC network unless a network's own settings (the configure command of " +
			"network@" + t.codec.Domain() + ") say otherwise. Leave a field empty to use the default.",
		Fields: []bridge.FormField{
			{Var: keyNick, Type: bridge.FieldTextSingle, Label: "Nick", Desc: "Used when connecting; by default the nick you join a room with.", Values: bridge.FieldValue(set.get(keyNick))},
			{Var: keyUsername, Type: bridge.FieldTextSingle, Label: "Username (ident)", Desc: "By default the local part of your address.", Values: bridge.FieldValue(set.get(keyUsername))},
			{Var: keyRealname, Type: bridge.FieldTextSingle, Label: "Real name", Values: bridge.FieldValue(set.get(keyRealname))},
			{Var: keyBouncer, Type: bridge.FieldBoolean, Label: "Stay connected to IRC while I am offline (bouncer)", Values: []string{bridge.BoolValue(set.bouncer(""))}},
		},
	}
}

// ApplyRegistration validates and stores the registration form.
func (t *Transport) ApplyRegistration(acct *store.Account, values bridge.FormValues) error {
	return t.applyGlobal(acct, values)
}

// applyGlobal writes the global settings of values into acct.
func (t *Transport) applyGlobal(acct *store.Account, values bridge.FormValues) error {
	nick := strings.TrimSpace(values.Get(keyNick))
	if err := checkNickSetting(nick); err != nil {
		return err
	}
	if nick != "" {
		if err := t.codec.ValidNick(nick); err != nil {
			return bridge.Errorf(bridge.NotAcceptable, "%s", capitalize(err.Error()))
		}
	}
	user := strings.TrimSpace(values.Get(keyUsername))
	if err := checkUsername(user); err != nil {
		return err
	}
	real := strings.TrimSpace(values.Get(keyRealname))
	if err := checkText("real name", real, maxRealname); err != nil {
		return err
	}
	if acct.Fields == nil {
		acct.Fields = map[string]string{}
	}
	setField(acct.Fields, keyNick, nick)
	setField(acct.Fields, keyUsername, user)
	setField(acct.Fields, keyRealname, real)
	if values.Has(keyBouncer) {
		setField(acct.Fields, keyBouncer, boolField(values.Bool(keyBouncer)))
	}
	return nil
}

func setField(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return ""
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// ---------------------------------------------------------------- commands

// Command nodes of the IRC transport.
const (
	// NodeConfigure edits settings: global ones on the gateway domain, a
	// network's on its server JID, bouncer mode on a room.
	NodeConfigure = "configure"
	// NodeDisconnect closes the user's connection to a network.
	NodeDisconnect = "disconnect"
)

// Commands are the transport's ad-hoc commands: configure on the gateway
// (global settings), on a network's server JID (that network's settings)
// and on a room (bouncer mode for the channel); disconnect on a server JID.
func (t *Transport) Commands() []bridge.Command {
	return []bridge.Command{
		{Node: NodeConfigure, Name: "Configure", On: []mapping.Kind{mapping.KindGateway, mapping.KindServer, mapping.KindRoom}, User: true, Run: t.configureCommand},
		{Node: NodeDisconnect, Name: "Disconnect from this network", On: []mapping.Kind{mapping.KindServer}, User: true, Run: t.disconnectCommand},
	}
}

// configureCommand shows and applies settings of the gateway, a network or
// a room, according to where it runs.
func (t *Transport) configureCommand(_ context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	var acct *store.Account
	if req.User != nil {
		acct = req.User.Account()
	}
	switch req.To.Kind {
	case mapping.KindServer:
		return t.configureNetwork(req, acct)
	case mapping.KindRoom:
		return t.configureRoom(req, acct)
	}
	if req.Step == 0 {
		return &bridge.CommandResponse{Form: t.RegistrationForm(acct)}, nil
	}
	next := cloneAccount(acct)
	if err := t.applyGlobal(next, req.Values); err != nil {
		return nil, err
	}
	return t.save(req, next)
}

// save writes the account (on the user's goroutine).
func (t *Transport) save(req *bridge.CommandRequest, acct *store.Account) (*bridge.CommandResponse, error) {
	if req.User == nil {
		return nil, bridge.Errorf(bridge.ServiceUnavailable, "Your session is not running; send presence to the gateway and try again.")
	}
	if err := req.User.SaveAccount(acct); err != nil {
		t.log.Error("saving IRC settings failed", "user", req.From.Bare().String(), "err", err)
		return nil, bridge.Errorf(bridge.InternalServerError, "The settings could not be saved; the administrator can find the reason in the log.")
	}
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "Saved. Settings for connecting apply from the next connection."}}}, nil
}

// cloneAccount copies acct (or makes a new one) so that a failed form
// changes nothing.
func cloneAccount(a *store.Account) *store.Account {
	n := &store.Account{Fields: map[string]string{}, Secrets: map[string]string{}}
	if a != nil {
		n.User, n.Transport, n.CreatedAt, n.UpdatedAt = a.User, a.Transport, a.CreatedAt, a.UpdatedAt
		for k, v := range a.Fields {
			n.Fields[k] = v
		}
		for k, v := range a.Secrets {
			n.Secrets[k] = v
		}
	}
	return n
}

// configureNetwork is the per-network configure form.
func (t *Transport) configureNetwork(req *bridge.CommandRequest, acct *store.Account) (*bridge.CommandResponse, error) {
	network := req.To.Network
	key := strings.ToLower(network)
	set := settingsOf(acct)
	_, configured := t.networks[key]
	if req.Step == 0 {
		f := &bridge.Form{
			Type:         "form",
			Title:        "Settings for " + network,
			Instructions: "Leave a field empty to use your global setting or the default. Passwords are stored encrypted; leave them empty to keep the saved one, or write - to remove it.",
			Fields: []bridge.FormField{
				{Var: keyNick, Type: bridge.FieldTextSingle, Label: "Nick", Values: bridge.FieldValue(set.net(key, keyNick))},
				{Var: keyUsername, Type: bridge.FieldTextSingle, Label: "Username (ident)", Values: bridge.FieldValue(set.net(key, keyUsername))},
				{Var: keyRealname, Type: bridge.FieldTextSingle, Label: "Real name", Values: bridge.FieldValue(set.net(key, keyRealname))},
				{Var: secretPassword, Type: bridge.FieldTextPrivate, Label: "Server password"},
				{Var: keySASLMechanism, Type: bridge.FieldListSingle, Label: "SASL login", Values: bridge.FieldValue(set.net(key, keySASLMechanism)),
					Options: []bridge.FormOption{{Label: "None", Value: ""}, {Label: "Account and password (PLAIN)", Value: "PLAIN"}, {Label: "Client certificate (EXTERNAL)", Value: "EXTERNAL"}}},
				{Var: keySASLUsername, Type: bridge.FieldTextSingle, Label: "SASL account (default: your nick)", Values: bridge.FieldValue(set.net(key, keySASLUsername))},
				{Var: secretSASLPassword, Type: bridge.FieldTextPrivate, Label: "SASL password"},
				{Var: secretClientCert, Type: bridge.FieldTextMulti, Label: "Client certificate and key (PEM)"},
				{Var: keyCommands, Type: bridge.FieldTextMulti, Label: commandsLabel(set.afterConnect(key))},
				{Var: keyAutojoin, Type: bridge.FieldTextMulti, Label: "Channels joined after connecting", Values: lines(set.net(key, keyAutojoin))},
				{Var: keyBouncer, Type: bridge.FieldBoolean, Label: "Stay connected to this network while I am offline (bouncer)", Values: []string{bridge.BoolValue(set.net(key, keyBouncer) == "1")}},
			},
		}
		if !configured {
			f.Fields = append(f.Fields,
				bridge.FormField{Var: keyPort, Type: bridge.FieldTextSingle, Label: fmt.Sprintf("Port (default %d)", t.cfg.OpenPort), Values: bridge.FieldValue(set.net(key, keyPort))},
				bridge.FormField{Var: keyTLS, Type: bridge.FieldListSingle, Label: "TLS", Values: bridge.FieldValue(set.net(key, keyTLS)),
					Options: []bridge.FormOption{{Label: "Default", Value: ""}, {Label: "On", Value: "1"}, {Label: "Off", Value: "0"}}},
				bridge.FormField{Var: keyTLSVerify, Type: bridge.FieldListSingle, Label: "Verify the server's certificate", Values: bridge.FieldValue(set.net(key, keyTLSVerify)),
					Options: []bridge.FormOption{{Label: "Yes", Value: ""}, {Label: "No (insecure)", Value: "0"}}},
				bridge.FormField{Var: keyFingerprint, Type: bridge.FieldTextSingle, Label: "Pin the certificate's SHA-256 fingerprint", Values: bridge.FieldValue(set.net(key, keyFingerprint))},
			)
		}
		return &bridge.CommandResponse{Form: f}, nil
	}
	next := cloneAccount(acct)
	v := req.Values
	if err := checkNickSetting(strings.TrimSpace(v.Get(keyNick))); err != nil {
		return nil, err
	}
	if nick := strings.TrimSpace(v.Get(keyNick)); nick != "" {
		if err := t.codec.ValidNick(nick); err != nil {
			return nil, bridge.Errorf(bridge.NotAcceptable, "%s", capitalize(err.Error()))
		}
	}
	if err := checkUsername(strings.TrimSpace(v.Get(keyUsername))); err != nil {
		return nil, err
	}
	if err := checkText("real name", strings.TrimSpace(v.Get(keyRealname)), maxRealname); err != nil {
		return nil, err
	}
	mech := strings.ToUpper(strings.TrimSpace(v.Get(keySASLMechanism)))
	if mech != "" && mech != "PLAIN" && mech != "EXTERNAL" {
		return nil, bridge.Errorf(bridge.NotAcceptable, "The SASL mechanism must be PLAIN, EXTERNAL or none.")
	}
	if err := checkSecret("SASL account", strings.TrimSpace(v.Get(keySASLUsername))); err != nil {
		return nil, err
	}
	if err := checkText("SASL account", strings.TrimSpace(v.Get(keySASLUsername)), maxAccount); err != nil {
		return nil, err
	}
	var cmds []string
	for _, l := range v[keyCommands] {
		for _, c := range strings.Split(l, "\n") {
			c = strings.TrimSpace(c)
			if c == "" {
				continue
			}
			if c == "-" {
				cmds = append(cmds, c)
				continue
			}
			if r, bad := badRune(c); bad {
				return nil, bridge.Errorf(bridge.NotAcceptable, "A command sent after connecting may not contain control characters (one holds U+%04X).", r)
			}
			m, err := parseRaw(c)
			if err != nil {
				return nil, err
			}
			if err := checkCommandLine(&m, c); err != nil {
				return nil, err
			}
			if m.Command == "QUIT" {
				return nil, bridge.Errorf(bridge.NotAcceptable, "QUIT cannot be a command sent after connecting.")
			}
			cmds = append(cmds, c)
		}
	}
	var chans []string
	for _, l := range v[keyAutojoin] {
		for _, c := range strings.FieldsFunc(l, func(r rune) bool { return r == '\n' || r == ' ' || r == ',' }) {
			if err := t.codec.ValidChannel(c); err != nil {
				return nil, bridge.Errorf(bridge.NotAcceptable, "%s", capitalize(err.Error()))
			}
			chans = append(chans, c)
		}
	}
	set2 := func(k, val string) { setField(next.Fields, netKey(key, k), val) }
	set2(keyNick, strings.TrimSpace(v.Get(keyNick)))
	set2(keyUsername, strings.TrimSpace(v.Get(keyUsername)))
	set2(keyRealname, strings.TrimSpace(v.Get(keyRealname)))
	set2(keySASLMechanism, mech)
	set2(keySASLUsername, strings.TrimSpace(v.Get(keySASLUsername)))
	// After-connect commands often hold a password (IDENTIFY): they are
	// sealed like one and never shown back. Empty keeps the saved ones,
	// "-" removes them.
	switch {
	case len(cmds) == 1 && cmds[0] == "-":
		delete(next.Secrets, netKey(key, keyCommands))
		set2(keyCommands, "")
	case len(cmds) > 0:
		if next.Secrets == nil {
			next.Secrets = map[string]string{}
		}
		next.Secrets[netKey(key, keyCommands)] = strings.Join(cmds, "\n")
		set2(keyCommands, "") // an older, plaintext copy
	}
	set2(keyAutojoin, strings.Join(chans, " "))
	if v.Has(keyBouncer) {
		set2(keyBouncer, boolField(v.Bool(keyBouncer)))
	}
	for _, s := range []struct{ k, what string }{{secretPassword, "server password"}, {secretSASLPassword, "SASL password"}} {
		val := v.Get(s.k)
		switch val {
		case "":
		case "-":
			delete(next.Secrets, netKey(key, s.k))
		default:
			// A SASL password travels base64-encoded and may hold spaces;
			// neither may hold a line break or NUL.
			check := checkSecret
			if s.k == secretSASLPassword {
				check = checkLine
			}
			if err := check(s.what, val); err != nil {
				return nil, err
			}
			next.Secrets[netKey(key, s.k)] = val
		}
	}
	if pem := strings.Join(v[secretClientCert], "\n"); strings.TrimSpace(pem) != "" {
		if strings.TrimSpace(pem) == "-" {
			delete(next.Secrets, netKey(key, secretClientCert))
		} else {
			if _, err := tls.X509KeyPair([]byte(pem), []byte(pem)); err != nil {
				return nil, bridge.Errorf(bridge.NotAcceptable, "The client certificate is not a PEM certificate with its key: %v.", err)
			}
			next.Secrets[netKey(key, secretClientCert)] = pem
		}
	}
	if !configured {
		port := strings.TrimSpace(v.Get(keyPort))
		if port != "" {
			var p int
			if _, err := fmt.Sscan(port, &p); err != nil || p < 1 || p > 65535 {
				return nil, bridge.Errorf(bridge.NotAcceptable, "%q is not a TCP port.", port)
			}
		}
		set2(keyPort, port)
		tlsv := v.Get(keyTLS)
		if tlsv != "" && tlsv != "0" && tlsv != "1" {
			return nil, bridge.Errorf(bridge.NotAcceptable, "TLS must be on, off or default.")
		}
		set2(keyTLS, tlsv)
		set2(keyTLSVerify, map[bool]string{true: "0", false: ""}[v.Get(keyTLSVerify) == "0"])
		fp := strings.TrimSpace(v.Get(keyFingerprint))
		if fp != "" {
			if _, err := parseFingerprint(fp); err != nil {
				return nil, bridge.Errorf(bridge.NotAcceptable, "%s.", capitalize(err.Error()))
			}
		}
		set2(keyFingerprint, fp)
	}
	return t.save(req, next)
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// configureRoom sets bouncer mode for one channel.
func (t *Transport) configureRoom(req *bridge.CommandRequest, acct *store.Account) (*bridge.CommandResponse, error) {
	key := strings.ToLower(req.To.Network)
	folded := mapping.RFC1459.Fold(req.To.Name)
	set := settingsOf(acct)
	if req.Step == 0 {
		return &bridge.CommandResponse{Form: &bridge.Form{
			Type:  "form",
			Title: "Settings for " + req.To.Name,
			Fields: []bridge.FormField{
				{Var: keyBouncer, Type: bridge.FieldBoolean, Label: "Stay in this channel while I am offline (history is kept)", Values: []string{bridge.BoolValue(set.bouncerChannel(key, folded))}},
			},
		}}, nil
	}
	next := cloneAccount(acct)
	var keep []string
	for _, c := range strings.Fields(set.net(key, keyBouncerChannels)) {
		if c != folded {
			keep = append(keep, c)
		}
	}
	if req.Values.Bool(keyBouncer) {
		keep = append(keep, folded)
	}
	setField(next.Fields, netKey(key, keyBouncerChannels), strings.Join(keep, " "))
	resp, err := t.save(req, next)
	if err != nil {
		return resp, err
	}
	// A room already joined follows the new setting at once: it is what
	// decides whether going offline PARTs it.
	if s, _ := req.Session.(*session); s != nil {
		if n := s.nets[key]; n != nil {
			if r := n.rooms[n.fold(req.To.Name)]; r != nil {
				r.bouncer = req.Values.Bool(keyBouncer)
				s.saveBouncerRooms()
			}
		}
	}
	return resp, nil
}

// disconnectCommand closes the user's connection to a network.
func (t *Transport) disconnectCommand(_ context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	s, _ := req.Session.(*session)
	if s == nil {
		return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "You are not connected to " + req.To.Network + "."}}}, nil
	}
	if !s.disconnect(req.To.Network, "Disconnected by the user.") {
		return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "You are not connected to " + req.To.Network + "."}}}, nil
	}
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "Disconnected from " + req.To.Network + "."}}}, nil
}
