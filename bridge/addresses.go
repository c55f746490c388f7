package bridge

import "switchboard/mapping"

// NSAddress is the XEP-0033 (Extended Stanza Addressing) namespace.
const NSAddress = "http://jabber.org/protocol/address"

// ExtAddress is one XEP-0033 <address/>. On a SendMessage it is what the
// user's client sent (a multicast message to the gateway); on a Message it
// tells the user who else received a remote message (a mail's To and Cc).
type ExtAddress struct {
	// Type is "to", "cc", "bcc" (or another XEP-0033 type, as given).
	Type string
	// JID is the jid attribute as the client sent it (inbound only).
	JID string
	// Addr is the address: inbound, JID parsed by the transport's codec
	// (valid when Err is empty); outbound, what the component renders as
	// the jid attribute.
	Addr mapping.Address
	// Err says why JID is not an address of this gateway (inbound only;
	// "" when it is, or when the address had no jid).
	Err string
	// URI and Desc are the uri and desc attributes (may be empty).
	URI, Desc string
	// Delivered is the delivered='true' attribute: a multicast service
	// upstream has already sent the message to this address.
	Delivered bool
}

// Multicaster is implemented by a transport that takes XEP-0033 multicast
// messages at its component domain (a message to the domain with
// <addresses/>, e.g. one mail to several people). The component
// advertises the feature in the domain's disco#info and passes such
// messages to the user's session as a SendMessage with To of
// KindGateway and Addresses set. Other transports answer them with
// feature-not-implemented.
type Multicaster interface {
	Multicast() bool
}
