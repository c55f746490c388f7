package mapping

import "strings"

// PeerKey returns the key of a peer for store rows (message ids, archive,
// queue): the bare form of the room or contact, lowercased:
//
//	IRC room or occupant   "#chan%libera"      (an occupant keys as its room)
//	IRC contact            "nick%libera"
//	IRC server             "libera"
//	email                  "alice@example.com"
//	SMS                    "+12025550123"
//	gateway                ""
//
// Addresses built by a Codec have the network in its canonical spelling,
// so the key is stable. IRC names are lowercased with Unicode rules, not
// folded with the network's casemapping; PeerKeyFolded does that.
func PeerKey(a Address) string {
	a = a.Bare()
	switch a.Kind {
	case KindGateway:
		return ""
	case KindServer:
		return strings.ToLower(a.Network)
	}
	if a.Network == "" {
		return strings.ToLower(a.Name)
	}
	return strings.ToLower(a.Name) + "%" + strings.ToLower(a.Network)
}

// PeerKeyFolded is PeerKey with IRC names folded by cm (so "#a[b" and
// "#A{B" share a key under RFC1459). For email and SMS addresses it is
// PeerKey.
func PeerKeyFolded(a Address, cm Casemapping) string {
	if a.Network == "" {
		return PeerKey(a)
	}
	return ircKey(a.Bare(), a.Network, cm)
}
