package component

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"switchboard/bridge"
	"switchboard/mapping"
	"time"
)

// XEP-0050 sessions live this long after their last step.
const (
	cmdSessionTTL  = 10 * time.Minute
	maxCmdSessions = 1000
)

// cmdSession is one multi-step ad-hoc command run.
type cmdSession struct {
	id    string
	node  string
	owner string // full JID that started it
	// ownerBare is its bare JID (the per-user limit counts by it).
	ownerBare string
	addr      mapping.Address
	cmd       bridge.Command
	step      int
	state     map[string]string
	busy      bool // a step is running
	expires   time.Time
}

// Application-specific XEP-0050 error elements.
const (
	appBadSessionID   = "<bad-sessionid xmlns='" + nsCommands + "'/>"
	appSessionExpired = "<session-expired xmlns='" + nsCommands + "'/>"
	appMalformed      = "<malformed-action xmlns='" + nsCommands + "'/>"
	appBadAction      = "<bad-action xmlns='" + nsCommands + "'/>"
)

// handleCommand runs one step of a XEP-0050 command on any address. The
// step runs on the worker pool (or the user's goroutine for commands that
// need the session); the answer goes through the send queue.
func (l *Link) handleCommand(s *stanza, p *node) {
	node := p.attrValue("node")
	action := p.attrValue("action")
	sid := p.attrValue("sessionid")
	if node == "" {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "The command has no node."), "")
		return
	}
	switch action {
	case "", "execute", "next", "prev", "complete", "cancel":
	default:
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "%q is not a command action.", action), appMalformed)
		return
	}
	reply := l.detach(s)
	owner := s.from.String()
	now := l.now()

	var sess *cmdSession
	req := &bridge.CommandRequest{From: s.from, To: s.addr}
	if sid == "" {
		if action == "cancel" {
			l.result(s, commandStatus(node, "", "canceled"))
			return
		}
		if action != "" && action != "execute" {
			l.replyErr(s, bridge.Errorf(bridge.BadRequest, "A command starts with the execute action."), appBadAction)
			return
		}
		cmd, err := l.gw.LookupCommand(l.cfg.Transport, s.from, s.addr, node)
		if err != nil {
			l.refuse(s, err)
			return
		}
		sess = &cmdSession{
			id: newSessionID(), node: node, owner: owner, ownerBare: s.from.Bare().String(), addr: s.addr, cmd: cmd,
			state: map[string]string{}, busy: true, expires: now.Add(cmdSessionTTL),
		}
		admin := l.gw.IsAdmin(s.from)
		l.mu.Lock()
		refused := l.admitSession(sess, admin, now)
		l.mu.Unlock()
		if refused != nil {
			l.replyErr(s, refused, "")
			return
		}
		req.Action = "execute"
		req.Step = 0
	} else {
		l.mu.Lock()
		sess = l.cmdSessions[sid]
		var fail *bridge.StanzaError
		app := ""
		switch {
		case sess == nil || sess.owner != owner || sess.node != node:
			fail, app = bridge.Errorf(bridge.BadRequest, "There is no such command session."), appBadSessionID
		case now.After(sess.expires) && !sess.busy:
			delete(l.cmdSessions, sid)
			fail, app = bridge.Errorf(bridge.NotAllowed, "This command session expired; start the command again."), appSessionExpired
		case sess.busy:
			fail = bridge.Errorf(bridge.ResourceConstraint, "The previous step of this command is still running.")
		case action == "cancel":
			delete(l.cmdSessions, sid)
		default:
			sess.busy = true
		}
		l.mu.Unlock()
		if fail != nil {
			l.replyErr(s, fail, app)
			return
		}
		if action == "cancel" {
			l.result(s, commandStatus(node, sid, "canceled"))
			return
		}
		switch action {
		case "prev":
			req.Action = "prev"
			req.Step = max(sess.step-1, 0)
		case "complete":
			req.Action = "complete"
			req.Step = sess.step + 1
		default:
			req.Action = "next"
			req.Step = sess.step + 1
		}
		if req.Action != "prev" {
			if x := s.t.child(p, nsData, "x"); x != nil {
				typ, values, _ := parseForm(s.t, x)
				if typ == "cancel" {
					l.mu.Lock()
					delete(l.cmdSessions, sid)
					l.mu.Unlock()
					l.result(s, commandStatus(node, sid, "canceled"))
					return
				}
				req.Values = values
			} else {
				req.Values = bridge.FormValues{}
			}
		}
	}
	req.State = sess.state
	ok := l.slow(s, func(ctx context.Context) {
		l.gw.ExecuteCommand(ctx, l.cfg.Transport, sess.cmd, req, func(resp *bridge.CommandResponse, err error) {
			l.commandDone(reply, sess, req, resp, err)
		})
	})
	if !ok {
		l.mu.Lock()
		sess.busy = false
		if req.Step == 0 {
			delete(l.cmdSessions, sess.id)
		}
		l.mu.Unlock()
	}
}

// commandDone answers one step; it may run on any goroutine.
func (l *Link) commandDone(r replyTo, sess *cmdSession, req *bridge.CommandRequest, resp *bridge.CommandResponse, err error) {
	executing := err == nil && resp != nil && resp.Form != nil
	l.mu.Lock()
	sess.busy = false
	if executing {
		sess.step = req.Step
		sess.expires = l.now().Add(cmdSessionTTL)
	} else {
		delete(l.cmdSessions, sess.id)
	}
	l.mu.Unlock()
	if err != nil {
		r.refuse(l, err)
		return
	}
	if resp == nil {
		resp = &bridge.CommandResponse{}
	}
	r.result(l, func(b []byte) []byte {
		b = append(b, "<command xmlns='"+nsCommands+"'"...)
		b = attr(b, "node", sess.node)
		b = attr(b, "sessionid", sess.id)
		if executing {
			b = append(b, " status='executing'><actions execute='next'>"...)
			if req.Step > 0 {
				b = append(b, "<prev/>"...)
			}
			b = append(b, "<next/><complete/></actions>"...)
		} else {
			b = append(b, " status='completed'>"...)
		}
		for _, n := range resp.Notes {
			typ := n.Type
			switch typ {
			case "info", "warn", "error":
			default:
				typ = "info"
			}
			b = append(b, "<note"...)
			b = attr(b, "type", typ)
			b = append(b, '>')
			b = appendText(b, n.Text)
			b = append(b, "</note>"...)
		}
		if executing {
			f := *resp.Form
			if f.Type == "" {
				f.Type = "form"
			}
			b = appendForm(b, &f, "")
		} else if resp.Result != nil {
			f := *resp.Result
			if f.Type == "" {
				f.Type = "result"
			}
			b = appendForm(b, &f, "")
		}
		return append(b, "</command>"...)
	})
}

// commandStatus renders a bare <command status=…/> answer.
func commandStatus(node, sid, status string) func([]byte) []byte {
	return func(b []byte) []byte {
		b = append(b, "<command xmlns='"+nsCommands+"'"...)
		b = attr(b, "node", node)
		b = attr(b, "sessionid", sid)
		b = attr(b, "status", status)
		return append(b, "/>"...)
	}
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
