package component

import (
	"time"

	"switchboard/bridge"
)

// Limits of XEP-0050 sessions. One user cannot hold more than
// maxCmdSessionsPerUser (a new one ends their oldest idle one), and the
// last cmdAdminReserve places are kept for admins, so that nobody can
// lock everyone out of commands; a user's sessions end when the resource
// that started them goes offline.
const (
	maxCmdSessionsPerUser = 8
	cmdAdminReserve       = 50
)

// admitSession makes room for a new session of sess.ownerBare and adds
// it; it returns an error for the user when there is none. l.mu held.
func (l *Link) admitSession(sess *cmdSession, admin bool, now time.Time) *bridge.StanzaError {
	for k, v := range l.cmdSessions {
		if now.After(v.expires) && !v.busy {
			delete(l.cmdSessions, k)
		}
	}
	var oldest *cmdSession
	n := 0
	for _, v := range l.cmdSessions {
		if v.ownerBare != sess.ownerBare {
			continue
		}
		n++
		if !v.busy && (oldest == nil || v.expires.Before(oldest.expires)) {
			oldest = v
		}
	}
	if n >= maxCmdSessionsPerUser {
		if oldest == nil {
			return bridge.Errorf(bridge.ResourceConstraint, "You already have %d commands running; wait for one to finish.", n)
		}
		delete(l.cmdSessions, oldest.id) // abandoned, most likely
	}
	limit := maxCmdSessions - cmdAdminReserve
	if admin {
		limit = maxCmdSessions
	}
	if len(l.cmdSessions) >= limit {
		return bridge.Errorf(bridge.ResourceConstraint, "Too many commands are running on this gateway; try again later.")
	}
	l.cmdSessions[sess.id] = sess
	return nil
}

// endCommandSessions ends the sessions a resource started (it went
// offline). Steps under way finish; their sessions are not kept.
func (l *Link) endCommandSessions(owner string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.cmdSessions {
		if v.owner == owner {
			delete(l.cmdSessions, k)
		}
	}
}
