package component

import (
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// XEP-0033 Extended Stanza Addressing: multicast messages from users to a
// transport that takes them (bridge.Multicaster), and the addresses of a
// remote message (who else got a mail) rendered for the user.

// maxAddresses bounds the <address/> elements read from one message (the
// transport applies its own, smaller limit and names it).
const maxAddresses = 1000

// parseAddresses reads the children of an <addresses/> element. The JIDs
// are resolved later (resolveAddresses), with the link's codec.
func parseAddresses(t *tree, p *node) []bridge.ExtAddress {
	out := []bridge.ExtAddress{}
	t.children(p, func(c *node) bool {
		if c.space != bridge.NSAddress || c.local != "address" {
			return true
		}
		if len(out) == maxAddresses {
			return false
		}
		d := c.attrValue("delivered")
		out = append(out, bridge.ExtAddress{
			Type:      c.attrValue("type"),
			JID:       c.attrValue("jid"),
			URI:       c.attrValue("uri"),
			Desc:      c.attrValue("desc"),
			Delivered: d == "true" || d == "1",
		})
		return true
	})
	return out
}

// resolveAddresses parses each address's JID with the link's codec,
// setting Addr, or Err with a sentence.
func (l *Link) resolveAddresses(as []bridge.ExtAddress) {
	for i := range as {
		a := &as[i]
		if a.JID == "" {
			continue
		}
		j, err := jid.Parse(a.JID)
		if err != nil {
			a.Err = "it is not a valid XMPP address: " + err.Error()
			continue
		}
		addr, err := l.codec.Parse(j)
		if err != nil {
			if me := mapping.AsError(err); me != nil {
				a.Err = me.Text
			} else {
				a.Err = err.Error()
			}
			continue
		}
		a.Addr = addr
	}
}

// multicast reports whether the link's transport takes XEP-0033
// multicast messages.
func (l *Link) multicast() bool {
	m, ok := l.gw.Transport(l.cfg.Transport).(bridge.Multicaster)
	return ok && m.Multicast()
}

// appendAddresses renders Message.Addresses as XEP-0033 <addresses/>;
// an address the codec cannot render is left out.
func (l *Link) appendAddresses(b []byte, as []bridge.ExtAddress) []byte {
	if len(as) == 0 {
		return b
	}
	b = append(b, "<addresses xmlns='"+bridge.NSAddress+"'>"...)
	for _, a := range as {
		j := ""
		if a.Addr.Kind == mapping.KindContact {
			s, _, err := l.jidString(a.Addr)
			if err != nil {
				continue
			}
			j = s
		}
		if j == "" && a.URI == "" {
			continue
		}
		b = append(b, "<address"...)
		b = attr(b, "type", a.Type)
		b = attr(b, "jid", j)
		b = attr(b, "uri", a.URI)
		b = attr(b, "desc", a.Desc)
		b = append(b, "/>"...)
	}
	return append(b, "</addresses>"...)
}
