package mapping

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// IRC JIDs follow Biboumi's scheme (local parts shown unescaped):
//
//	irc.example.org                         the gateway (KindGateway)
//	libera@irc.example.org                  a network's server (KindServer)
//	#chan%libera@irc.example.org            a channel (KindRoom)
//	#chan%libera@irc.example.org/Nick       a channel occupant (KindOccupant)
//	nick%libera@irc.example.org             a nick, for private messages (KindContact)
//
// The local part is split at its last '%': channel names may contain '%',
// network names and host names never do. "&chan" travels as `\26chan` and
// an IPv6 host as `\3a\3a1` (XEP-0106); Parse unescapes, JID escapes.
//
// Case: mellium's jid.Parse applies PRECIS (RFC 7622) to every JID. The
// localpart goes through the UsernameCaseMapped profile, which lowercases it
// (Unicode lowercase, so "#Chan%Libera" arrives as "#chan%libera") and maps
// fullwidth characters to their ASCII forms (a fullwidth comma becomes ','
// before Parse sees it, so it is refused like any comma). Channel and nick
// names taken from a JID are therefore always lowercase, and JID lowercases
// whatever name it is given. The resourcepart (an occupant's nick) goes
// through the OpaqueString profile, which keeps case. IRC matches names
// case-insensitively, so a lowercased name reaches the same channel or nick;
// the only loss is on servers whose casemapping does not fold a non-ASCII
// letter that PRECIS folds (such a channel cannot be addressed), and the
// spelling the remote side used, which the transport may show in a room's
// name or subject.

// ircMaxChannel and ircMaxNick bound the names the gateway accepts, in bytes.
const (
	ircMaxChannel = 200
	ircMaxNick    = 64
)

// IRCNetwork is one IRC network the admin configured.
type IRCNetwork struct {
	// Name is the alias used in JIDs, e.g. "libera" in
	// "#chan%libera@irc.example.org". ASCII letters, digits, '-', '.' and
	// '_' only; matched case-insensitively.
	Name string
	// Host is the server's host name or IP address, without a port, e.g.
	// "irc.libera.chat". A JID may name the network by its host too.
	Host string
}

// IRCCodec maps JIDs of the IRC component domain to Addresses and back. It
// is safe for concurrent use: it never changes after NewIRCCodec.
type IRCCodec struct {
	domain   string
	networks []IRCNetwork
	// byKey maps a lowercased network name or host to the network's Name.
	byKey map[string]string
	open  bool
	desc  string
}

var _ Codec = (*IRCCodec)(nil)

// NewIRCCodec returns the codec for the IRC component domain. networks are
// the configured networks, the first being the default one (the network of
// "#chan" typed without "%network"). With open true, a JID may also name
// any other IRC server by host name or IP address (so that users can reach
// networks the admin did not list); with open false only the configured
// networks exist, and at least one is needed.
//
// It fails when domain is not a valid domain, a network has an invalid Name
// or Host, or two networks share a name or host.
func NewIRCCodec(domain string, networks []IRCNetwork, open bool) (*IRCCodec, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("irc gateway: %w", err)
	}
	if !open && len(networks) == 0 {
		return nil, fmt.Errorf("irc gateway %s: no network is configured and the gateway is not open to other servers, so it could reach nothing", d)
	}
	c := &IRCCodec{
		domain:   d,
		networks: make([]IRCNetwork, 0, len(networks)),
		byKey:    make(map[string]string, 2*len(networks)),
		open:     open,
	}
	for _, n := range networks {
		if p := networkNameProblem(n.Name); p != "" {
			return nil, fmt.Errorf("irc gateway %s: %q is not a valid network name: %s", d, n.Name, p)
		}
		host, p := normalizeHost(n.Host)
		if p != "" {
			return nil, fmt.Errorf("irc gateway %s: network %q: %q is not a valid host name or IP address (without a port): %s", d, n.Name, n.Host, p)
		}
		for _, k := range []string{strings.ToLower(n.Name), host} {
			if other, ok := c.byKey[k]; ok && other != n.Name {
				return nil, fmt.Errorf("irc gateway %s: networks %q and %q both use the name or host %q", d, other, n.Name, k)
			}
			c.byKey[k] = n.Name
		}
		c.networks = append(c.networks, IRCNetwork{Name: n.Name, Host: host})
	}
	c.desc = c.describe()
	return c, nil
}

// networkNameProblem says why s cannot be a network alias, or returns "".
func networkNameProblem(s string) string {
	if s == "" {
		return "it is empty"
	}
	if len(s) > 63 {
		return "it is longer than 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_':
		default:
			return "it may contain only ASCII letters, digits, '-', '.' and '_'"
		}
	}
	return ""
}

// describe builds the XEP-0100 description.
func (c *IRCCodec) describe() string {
	var b strings.Builder
	b.WriteString("Type an IRC channel (#chan) or a nick. ")
	if def := c.DefaultNetwork(); def != "" {
		fmt.Fprintf(&b, "Add %%network to choose the network, as in #chan%%%s or nick%%%s; without it, %s is used. ", def, def, def)
	} else {
		b.WriteString("Add %network to choose the server, as in #chan%irc.example.net or nick%irc.example.net. ")
	}
	if len(c.networks) > 0 {
		b.WriteString("Networks: ")
		b.WriteString(c.networkList())
		b.WriteString(".")
	}
	if c.open && len(c.networks) > 0 {
		b.WriteString(" Any other IRC server can be named by its host name, as in #chan%irc.example.net.")
	}
	return b.String()
}

// networkList is "libera (irc.libera.chat), oftc (irc.oftc.net)".
func (c *IRCCodec) networkList() string {
	parts := make([]string, len(c.networks))
	for i, n := range c.networks {
		parts[i] = n.Name + " (" + n.Host + ")"
	}
	return strings.Join(parts, ", ")
}

// Domain returns the component domain.
func (c *IRCCodec) Domain() string { return c.domain }

// Networks returns a copy of the configured networks, hosts normalised.
func (c *IRCCodec) Networks() []IRCNetwork {
	return append([]IRCNetwork(nil), c.networks...)
}

// DefaultNetwork returns the Name of the first configured network, or ""
// when none is configured.
func (c *IRCCodec) DefaultNetwork() string {
	if len(c.networks) == 0 {
		return ""
	}
	return c.networks[0].Name
}

// Open reports whether JIDs may name IRC servers that are not configured.
func (c *IRCCodec) Open() bool { return c.open }

// Host returns the host to connect to for a network as it appears in an
// Address: the configured Host for a configured Name, the network itself
// for a host of an open gateway. ok is false for an unknown network.
func (c *IRCCodec) Host(network string) (host string, ok bool) {
	name, err := c.resolveNetwork(network)
	if err != nil {
		return "", false
	}
	for _, n := range c.networks {
		if n.Name == name {
			return n.Host, true
		}
	}
	return name, true
}

// resolveNetwork turns what follows '%' (or a server local part) into the
// network's canonical spelling.
func (c *IRCCodec) resolveNetwork(net string) (string, error) {
	if name, ok := c.byKey[strings.ToLower(net)]; ok {
		return name, nil
	}
	if net == "" {
		return "", ErrMalformed("the IRC network is missing: write #chan%%network or nick%%network")
	}
	if c.open {
		host, p := normalizeHost(net)
		if p != "" {
			return "", ErrMalformed("%q is neither a known IRC network nor a valid server host name: %s", net, p)
		}
		if name, ok := c.byKey[host]; ok {
			return name, nil
		}
		return host, nil
	}
	return "", &Error{
		Condition: "item-not-found",
		Text:      fmt.Sprintf("there is no IRC network %q on this gateway; the networks are %s", net, c.networkList()),
	}
}

// IsChannel reports whether name starts with a channel prefix (# & + !).
// It says nothing about the rest of the name; see ValidChannel.
func (c *IRCCodec) IsChannel(name string) bool { return isChannel(name) }

func isChannel(name string) bool {
	return name != "" && strings.IndexByte("#&+!", name[0]) >= 0
}

// ValidChannel checks an IRC channel name and returns a jid-malformed
// *Error with a sentence when the gateway refuses it. A valid name:
//
//   - starts with a channel prefix (# & + !) and has at least one more
//     character;
//   - is at most 200 bytes of valid UTF-8 (RFC 1459's limit);
//   - contains no space, comma or colon, and no control character (C0,
//     DEL, C1 — so no NUL, BEL, CR, LF, nor IRC formatting codes).
//
// RFC 2812's chanstring excludes NUL, BEL, CR, LF, space, comma and ':'.
// The colon is refused because RFC 2812 reads "#chan:mask" as a channel
// mask; other control characters are refused too because IRC formatting
// codes in a name only serve to make one channel look like another. The
// comma matters most: IRC reads "#a,#b" as two targets.
func (c *IRCCodec) ValidChannel(name string) error { return validChannel(name) }

func validChannel(name string) error {
	switch {
	case name == "":
		return ErrMalformed("an IRC channel name cannot be empty")
	case !isChannel(name):
		return ErrMalformed("%q is not a valid IRC channel name: it must start with #, &, + or !", name)
	case len(name) == 1:
		return ErrMalformed("%q is not a valid IRC channel name: it has nothing after the %s", name, name)
	case len(name) > ircMaxChannel:
		return ErrMalformed("%q is not a valid IRC channel name: it is longer than %d bytes", name, ircMaxChannel)
	case !utf8.ValidString(name):
		return ErrMalformed("%q is not a valid IRC channel name: it is not valid UTF-8", name)
	}
	for _, r := range name {
		if r == ' ' || r == ',' || r == ':' || isControl(r) {
			return ErrMalformed("%q is not a valid IRC channel name: it contains %s", name, describeRune(r))
		}
	}
	return nil
}

// isControl reports C0 controls, DEL and C1 controls.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
}

// ValidNick checks an IRC nick (a private message target or an occupant's
// nick) and returns a jid-malformed *Error with a sentence when the gateway
// refuses it. A valid nick:
//
//   - is 1 to 64 bytes of valid UTF-8;
//   - contains no space, comma, '!', '@', '*', '?', ':', '%' and no control
//     character;
//   - does not start with a digit or '-' (RFC 2812; TS6 and P10 servers
//     give clients internal IDs that start with a digit, which a user must
//     not be able to target), nor with # & + ! ~ $ (channel prefixes,
//     STATUSMSG prefixes such as "+#chan" or "~#chan" that reach a channel's
//     voiced or owner members, '$' server masks).
//
// These are the characters that make IRC read one target as another: "a,b"
// is two targets, "nick@server" and "nick%host" are RFC 2812 routed targets,
// '*' and '?' are masks. Other characters (including non-ASCII letters and
// '.') are left to the IRC server to accept or refuse.
func (c *IRCCodec) ValidNick(name string) error { return validNick(name) }

func validNick(name string) error {
	switch {
	case name == "":
		return ErrMalformed("an IRC nick cannot be empty")
	case len(name) > ircMaxNick:
		return ErrMalformed("%q is not a valid IRC nick: it is longer than %d bytes", name, ircMaxNick)
	case !utf8.ValidString(name):
		return ErrMalformed("%q is not a valid IRC nick: it is not valid UTF-8", name)
	}
	switch first := name[0]; {
	case first >= '0' && first <= '9':
		return ErrMalformed("%q is not a valid IRC nick: it starts with a digit", name)
	case first == '-':
		return ErrMalformed("%q is not a valid IRC nick: it starts with a hyphen", name)
	case strings.IndexByte("#&+!~$", first) >= 0:
		return ErrMalformed("%q is not a valid IRC nick: it starts with %q, which IRC reads as a channel or a mask", name, string(first))
	}
	for _, r := range name {
		switch {
		case r == ' ' || r == ',' || isControl(r):
			return ErrMalformed("%q is not a valid IRC nick: it contains %s", name, describeRune(r))
		case r == '!' || r == '@' || r == '*' || r == '?' || r == ':' || r == '%':
			return ErrMalformed("%q is not a valid IRC nick: it contains %q", name, string(r))
		}
	}
	return nil
}

// Parse takes apart a JID of the IRC domain (see the scheme above). Errors
// are *Error: item-not-found for another domain or an unknown network,
// jid-malformed for anything else.
func (c *IRCCodec) Parse(j jid.JID) (Address, error) {
	if j.Domainpart() != c.domain {
		return Address{}, errNotOurs(j, c.domain)
	}
	res := j.Resourcepart()
	local := j.Localpart()
	if local == "" {
		return Address{Kind: KindGateway, Domain: c.domain, Resource: res}, nil
	}
	s, err := unescapeName(local)
	if err != nil {
		return Address{}, err
	}
	i := strings.LastIndexByte(s, '%')
	if i < 0 {
		if isChannel(s) {
			return Address{}, ErrMalformed("%q has no network: write %s%%network@%s, e.g. %s%%%s@%s",
				s, s, c.domain, s, c.exampleNetwork(), c.domain)
		}
		net, err := c.resolveNetwork(s)
		if err != nil {
			if me := AsError(err); me != nil && validNick(s) == nil {
				return Address{}, &Error{Condition: me.Condition, Text: fmt.Sprintf("%s; to write to the nick %s, use %s%%%s@%s",
					me.Text, s, s, c.exampleNetwork(), c.domain)}
			}
			return Address{}, err
		}
		return Address{Kind: KindServer, Domain: c.domain, Network: net, Resource: res}, nil
	}
	name, net := s[:i], s[i+1:]
	net, err = c.resolveNetwork(net)
	if err != nil {
		return Address{}, err
	}
	if isChannel(name) {
		if err := validChannel(name); err != nil {
			return Address{}, err
		}
		if res == "" {
			return Address{Kind: KindRoom, Domain: c.domain, Network: net, Name: name}, nil
		}
		if err := validNick(res); err != nil {
			return Address{}, err
		}
		return Address{Kind: KindOccupant, Domain: c.domain, Network: net, Name: name, Resource: res}, nil
	}
	if err := validNick(name); err != nil {
		return Address{}, err
	}
	return Address{Kind: KindContact, Domain: c.domain, Network: net, Name: name, Resource: res}, nil
}

// exampleNetwork is a network to show in error sentences.
func (c *IRCCodec) exampleNetwork() string {
	if def := c.DefaultNetwork(); def != "" {
		return def
	}
	return "irc.example.net"
}

// JID builds the gateway JID of a. The network is written in its canonical
// spelling (a configured host becomes its Name). Names are first mapped as
// the JID package maps a localpart (PRECIS: lowercase, NFC, fullwidth to
// ASCII) and then checked as Parse checks them, so JID never builds a JID
// that Parse refuses, and Parse(JID(a)) is a with its names so mapped: the
// JID of {Name: "#Chan"} is "#chan%net@domain". An occupant's nick keeps
// its case but is normalised by PRECIS OpaqueString (NFC, non-ASCII spaces
// to ASCII); Occupant returns the Address as it will be seen. Domain may be
// empty (the codec's domain is used).
func (c *IRCCodec) JID(a Address) (jid.JID, error) {
	if a.Domain != "" && a.Domain != c.domain {
		return jid.JID{}, &Error{Condition: "item-not-found", Text: fmt.Sprintf("%s is not the IRC gateway %s", a.Domain, c.domain)}
	}
	var local string
	switch a.Kind {
	case KindGateway:
	case KindServer:
		net, err := c.resolveNetwork(a.Network)
		if err != nil {
			return jid.JID{}, err
		}
		local = EscapeLocal(strings.ToLower(net))
	case KindRoom, KindOccupant, KindContact:
		name, err := precisLocal(a.Name)
		if err != nil {
			return jid.JID{}, ErrMalformed("%s cannot be written as an XMPP address: %v", describeAddress(a), err)
		}
		if a.Kind == KindContact {
			err = validNick(name)
		} else {
			err = validChannel(name)
		}
		if err != nil {
			return jid.JID{}, err
		}
		if a.Kind == KindRoom && a.Resource != "" {
			return jid.JID{}, ErrMalformed("a room address cannot have a resource (%q); use an occupant", a.Resource)
		}
		net, err := c.resolveNetwork(a.Network)
		if err != nil {
			return jid.JID{}, err
		}
		local = EscapeLocal(name + "%" + strings.ToLower(net))
	default:
		return jid.JID{}, ErrMalformed("cannot build an IRC address of kind %s", a.Kind)
	}
	j, err := jid.New(local, c.domain, a.Resource)
	if err != nil {
		return jid.JID{}, ErrMalformed("%s cannot be written as an XMPP address: %v", describeAddress(a), err)
	}
	if j.Localpart() != local {
		return jid.JID{}, ErrMalformed("%s cannot be written as an XMPP address: PRECIS changes its escaped form", describeAddress(a))
	}
	if a.Kind == KindOccupant {
		if err := validNick(j.Resourcepart()); err != nil {
			return jid.JID{}, err
		}
	}
	return j, nil
}

// describeAddress names an Address in error sentences.
func describeAddress(a Address) string {
	switch a.Kind {
	case KindRoom:
		return fmt.Sprintf("the channel %q", a.Name)
	case KindOccupant:
		return fmt.Sprintf("the nick %q in %q", a.Resource, a.Name)
	case KindContact:
		return fmt.Sprintf("%q", a.Name)
	case KindServer:
		return fmt.Sprintf("the network %q", a.Network)
	}
	return "the gateway"
}

// canonical returns a as Parse would return it for JID(a): network
// resolved, local part lowercased by PRECIS, resource normalised.
func (c *IRCCodec) canonical(a Address) (Address, error) {
	j, err := c.JID(a)
	if err != nil {
		return Address{}, err
	}
	return c.Parse(j)
}

// Room returns the canonical room Address of channel on network, for
// names that come from the IRC side. It compares equal (==) to the Address
// Parse returns for the same room.
func (c *IRCCodec) Room(network, channel string) (Address, error) {
	return c.canonical(Address{Kind: KindRoom, Domain: c.domain, Network: network, Name: channel})
}

// Occupant returns the canonical occupant Address of nick in channel on
// network. The nick keeps its case.
func (c *IRCCodec) Occupant(network, channel, nick string) (Address, error) {
	return c.canonical(Address{Kind: KindOccupant, Domain: c.domain, Network: network, Name: channel, Resource: nick})
}

// Contact returns the canonical contact Address of nick on network.
func (c *IRCCodec) Contact(network, nick string) (Address, error) {
	return c.canonical(Address{Kind: KindContact, Domain: c.domain, Network: network, Name: nick})
}

// Server returns the canonical server Address of network.
func (c *IRCCodec) Server(network string) (Address, error) {
	return c.canonical(Address{Kind: KindServer, Domain: c.domain, Network: network})
}

// Translate turns what a user typed in the XEP-0100 prompt into an Address:
// "#chan" (a room on the default network), "#chan%libera",
// "#chan%irc.libera.chat", "nick" (a contact on the default network),
// "nick%libera", or a full JID of this gateway pasted as is. Surrounding
// space is ignored. The result is canonical (see Room).
func (c *IRCCodec) Translate(typed string) (Address, error) {
	s := strings.TrimSpace(typed)
	if s == "" {
		return Address{}, &Error{Condition: "bad-request", Text: "type an IRC channel (#chan) or a nick, optionally followed by %network"}
	}
	if strings.IndexByte(s, '@') >= 0 {
		j, err := jid.Parse(s)
		if err == nil && j.Domainpart() == c.domain && j.Localpart() != "" {
			return c.Parse(j)
		}
		if err == nil && j.Localpart() != "" {
			return Address{}, ErrMalformed("%q is an address of another service, not of this IRC gateway; type #chan%%network or nick%%network", s)
		}
		return Address{}, ErrMalformed("%q is not an IRC channel or nick: it contains '@'", s)
	}
	name, net := s, ""
	if i := strings.LastIndexByte(s, '%'); i >= 0 {
		name, net = s[:i], s[i+1:]
		if net == "" {
			return Address{}, ErrMalformed("%q names no network after the %%: write #chan%%%s or nick%%%s", s, c.exampleNetwork(), c.exampleNetwork())
		}
	} else {
		net = c.DefaultNetwork()
		if net == "" {
			return Address{}, ErrMalformed("%q names no network, and this gateway has no default one: write %s%%irc.example.net", s, s)
		}
	}
	a := Address{Domain: c.domain, Network: net, Name: name, Kind: KindContact}
	if isChannel(name) {
		a.Kind = KindRoom
	}
	return c.canonical(a)
}

// Prompt returns the XEP-0100 prompt and description.
func (c *IRCCodec) Prompt() (prompt, desc string) {
	return "IRC channel or nick", c.desc
}

// Key returns a stable key for a, folded with cm, for store rows and maps:
// "#chan%libera" (room), "nick%libera" (contact), "#chan%libera/nick"
// (occupant), "libera" (server), "" (gateway). The network is written in
// its canonical spelling and lowercased; names are folded with cm.
func (c *IRCCodec) Key(a Address, cm Casemapping) string {
	net := a.Network
	if n, err := c.resolveNetwork(net); err == nil {
		net = n
	}
	return ircKey(a, net, cm)
}

// ircKey builds the key of an IRC Address for an already resolved network.
func ircKey(a Address, net string, cm Casemapping) string {
	net = strings.ToLower(net)
	switch a.Kind {
	case KindGateway:
		return ""
	case KindServer:
		return net
	case KindOccupant:
		return cm.Fold(a.Name) + "%" + net + "/" + cm.Fold(a.Resource)
	}
	return cm.Fold(a.Name) + "%" + net
}
