package component

import (
	"strings"

	"switchboard/bridge"
)

// XEP-0356: the server's advertisement of the component's permissions,
// and messages sent on a user's behalf with the outgoing message
// permission.

const (
	nsPrivilege = "urn:xmpp:privilege:2"
)

// privilegeAdvert handles a <message/> from a server domain carrying
// <privilege/>: it records the permissions and reports true (the stanza
// is consumed; it is not a user's).
func (l *Link) privilegeAdvert(t *tree) bool {
	root := t.root()
	if root.local != "message" || root.attrValue("type") == "error" {
		return false
	}
	from := root.attrValue("from")
	if from == "" || strings.ContainsAny(from, "@/") {
		return false
	}
	p := t.child(root, nsPrivilege, "privilege")
	if p == nil {
		return false
	}
	perms := map[string]string{}
	t.children(p, func(c *node) bool {
		if c.space == nsPrivilege && c.local == "perm" && c.attrValue("access") != "" {
			perms[c.attrValue("access")] = c.attrValue("type")
			if c.attrValue("access") == "iq" {
				// XEP-0356 v0.4: IQ permission is per namespace.
				t.children(c, func(n *node) bool {
					if n.space == nsPrivilege && n.local == "namespace" && n.attrValue("ns") != "" {
						perms[bridge.PrivilegeIQ(n.attrValue("ns"))] = n.attrValue("type")
					}
					return true
				})
			}
		}
		return true
	})
	l.gw.SetPrivilege(l.cfg.Transport, strings.ToLower(from), perms)
	l.log.Info("the XMPP server granted privileges (XEP-0356)", "server", from, "perms", perms)
	return true
}

// renderOwnMessage wraps the user's message in <privilege><forwarded>
// and sends it to the user's server, which sends it from the user.
func (l *Link) renderOwnMessage(o *out, e *bridge.OwnMessage) error {
	to, _, err := l.jidString(e.To)
	if err != nil {
		return err
	}
	user := e.User.Bare()
	b := o.b
	b = append(b, "<message"...)
	b = attr(b, "id", l.newID())
	b = attr(b, "from", l.domainStr)
	b = attr(b, "to", user.Domainpart())
	b = append(b, "><privilege xmlns='"+nsPrivilege+"'><forwarded xmlns='"+nsForward+"'><message xmlns='jabber:client' type='chat'"...)
	b = attr(b, "id", e.ID)
	b = attr(b, "from", user.String())
	b = attr(b, "to", to)
	b = append(b, '>')
	if e.Body != "" {
		b = textElem(b, "body", "", Sanitize(e.Body))
	}
	if e.Subject != "" {
		b = textElem(b, "subject", "", Sanitize(e.Subject))
	}
	if e.Thread != "" {
		b = textElem(b, "thread", "", Sanitize(e.Thread))
	}
	b = append(b, "</message></forwarded></privilege></message>"...)
	o.b = b
	o.count(kMessage)
	return nil
}
