package sms

import (
	"slices"
	"sort"
	"sync"
)

// number is one Twilio number and who may use it.
type number struct {
	e164   string
	owners []string // bare JIDs
	// inbox is the team inbox name ("" for a number of one owner).
	inbox  string
	static bool // from the config file (not assignable by command)
}

// team reports whether the number is a team inbox.
func (n *number) team() bool { return n.inbox != "" }

// numbers is the ownership table: the config's numbers, and the numbers
// assigned at run time (admin command, pick from the pool at
// registration), which are kept in the owner's account (Fields["number"]).
type numbers struct {
	mu       sync.RWMutex
	byNumber map[string]*number
	byUser   map[string]*number // the user's own (one-owner) number
	byInbox  map[string]*number
	pool     []string
}

func newNumbers(cfg []NumberConfig, pool []string) *numbers {
	ns := &numbers{byNumber: map[string]*number{}, byUser: map[string]*number{}, byInbox: map[string]*number{}, pool: pool}
	for _, c := range cfg {
		n := &number{e164: c.Number, static: true}
		if c.Owner != "" {
			n.owners = []string{c.Owner}
		} else {
			n.owners = slices.Clone(c.Owners)
		}
		if len(c.Owners) > 0 {
			n.inbox = c.Name
		}
		ns.byNumber[n.e164] = n
		if n.inbox != "" {
			ns.byInbox[n.inbox] = n
		} else if _, has := ns.byUser[c.Owner]; !has {
			ns.byUser[c.Owner] = n
		}
	}
	return ns
}

// lookup returns the number's entry (nil when the gateway has no such
// number or nobody owns it).
func (ns *numbers) lookup(e164 string) *number {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.byNumber[e164]
}

// ofUser returns the user's own number, or nil.
func (ns *numbers) ofUser(bare string) *number {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.byUser[bare]
}

// inbox returns the team inbox of that name, or nil.
func (ns *numbers) inbox(name string) *number {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.byInbox[name]
}

// inboxesOf lists the team inboxes the user belongs to.
func (ns *numbers) inboxesOf(bare string) []*number {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	var out []*number
	for _, n := range ns.byInbox {
		if slices.Contains(n.owners, bare) {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].inbox < out[j].inbox })
	return out
}

// assign gives e164 to user as their own number. It fails when the
// number is owned by someone else or is a configured number, or when the
// user already has another number.
func (ns *numbers) assign(e164, user string) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if n := ns.byNumber[e164]; n != nil {
		if n.static {
			return errf("%s is configured in the config file; change it there", e164)
		}
		if len(n.owners) == 1 && n.owners[0] == user {
			return nil
		}
		return errf("%s already belongs to %s", e164, n.owners[0])
	}
	if n := ns.byUser[user]; n != nil {
		return errf("%s already has the number %s; unassign it first", user, n.e164)
	}
	n := &number{e164: e164, owners: []string{user}}
	ns.byNumber[e164] = n
	ns.byUser[user] = n
	return nil
}

// pick gives user the pool number want instead of the number they have
// (if any, and not from the config), in one step: nothing changes when
// want is taken.
func (ns *numbers) pick(want, user string) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	cur := ns.byUser[user]
	if cur != nil && cur.e164 == want {
		return nil
	}
	if cur != nil && cur.static {
		return errf("your number %s is set by the administrator", cur.e164)
	}
	if n := ns.byNumber[want]; n != nil {
		return errf("%s is taken", want)
	}
	if cur != nil {
		delete(ns.byNumber, cur.e164)
	}
	n := &number{e164: want, owners: []string{user}}
	ns.byNumber[want] = n
	ns.byUser[user] = n
	return nil
}

// unassign takes the user's assigned number back; it returns the number
// ("" when the user had none assigned).
func (ns *numbers) unassign(user string) (string, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := ns.byUser[user]
	if n == nil {
		return "", nil
	}
	if n.static {
		return "", errf("%s is given to %s in the config file; change it there", n.e164, user)
	}
	delete(ns.byUser, user)
	delete(ns.byNumber, n.e164)
	return n.e164, nil
}

// freePool lists the pool numbers nobody owns.
func (ns *numbers) freePool() []string {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	var out []string
	for _, p := range ns.pool {
		if ns.byNumber[p] == nil {
			out = append(out, p)
		}
	}
	return out
}

// inPool reports whether e164 is a pool number.
func (ns *numbers) inPool(e164 string) bool { return slices.Contains(ns.pool, e164) }

type numberError string

func (e numberError) Error() string { return string(e) }
