package sms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Command nodes of the SMS transport.
const (
	NodeConfigure = "configure"
	NodeAssign    = "assign-number"
	NodeUnassign  = "unassign-number"
	NodeUsage     = "usage"
)

// RegistrationForm is the XEP-0077 form: pick a pool number, and the
// settings (segments, reactions).
func (t *Transport) RegistrationForm(acct *store.Account) *bridge.Form {
	fields := map[string]string{}
	user := ""
	if acct != nil {
		fields, user = acct.Fields, acct.User
	}
	var fs []bridge.FormField
	current := ""
	if n := t.nums.ofUser(user); n != nil && user != "" {
		current = n.e164
	}
	free := t.nums.freePool()
	if current != "" || len(free) > 0 {
		f := bridge.FormField{Var: fieldNumber, Type: bridge.FieldListSingle, Label: "Your phone number",
			Desc: "The number your texts come from and go to."}
		if current != "" {
			f.Values = []string{current}
			f.Options = append(f.Options, bridge.FormOption{Label: current + " (yours)", Value: current})
		}
		for _, p := range free {
			f.Options = append(f.Options, bridge.FormOption{Label: p, Value: p})
		}
		fs = append(fs, f)
	}
	mode := fields[fieldSegments]
	if mode == "" {
		mode = "silent"
	}
	fs = append(fs,
		bridge.FormField{Var: fieldSegments, Type: bridge.FieldListSingle, Label: "Long texts", Values: []string{mode},
			Desc: "A text is billed per segment (160 GSM-7 characters, or 70 when it has emoji or other characters).",
			Options: []bridge.FormOption{
				{Label: "Send silently", Value: "silent"},
				{Label: "Send and tell me the segment count", Value: "tell"},
				{Label: "Ask me before sending a text above the number of segments below", Value: "ask"},
			}},
		bridge.FormField{Var: fieldAskAbove, Type: bridge.FieldTextSingle, Label: "Ask above this many segments", Values: bridge.FieldValue(fields[fieldAskAbove])},
		bridge.FormField{Var: fieldReacts, Type: bridge.FieldBoolean, Label: "Send my reactions (XEP-0444) as short texts", Values: []string{bridge.BoolValue(fields[fieldReacts] == "1")}},
	)
	return &bridge.Form{Type: "form", Title: "SMS gateway", Instructions: "Texts to phone numbers: +12025550123@" + t.codec.Domain() + ".", Fields: fs}
}

// ApplyRegistration checks and applies the form.
func (t *Transport) ApplyRegistration(acct *store.Account, values bridge.FormValues) error {
	mode := strings.TrimSpace(values.Get(fieldSegments))
	switch mode {
	case "", "silent", "tell", "ask":
	default:
		return bridge.Errorf(bridge.NotAcceptable, "%q is not a choice for long texts: silent, tell or ask.", mode)
	}
	above := strings.TrimSpace(values.Get(fieldAskAbove))
	if above != "" {
		if n, err := strconv.Atoi(above); err != nil || n < 1 || n > 100 {
			return bridge.Errorf(bridge.NotAcceptable, "%q is not a number of segments from 1 to 100.", above)
		}
	}
	if want := strings.TrimSpace(values.Get(fieldNumber)); want != "" {
		if cur := t.nums.ofUser(acct.User); cur == nil || cur.e164 != want {
			if !t.nums.inPool(want) {
				return bridge.Errorf(bridge.NotAcceptable, "%s is not a number of this gateway's pool.", want)
			}
			if err := t.nums.pick(want, acct.User); err != nil {
				return bridge.Errorf(bridge.Conflict, "%v; pick another.", err)
			}
			acct.Fields[fieldNumber] = want
		}
	}
	set := func(k, v string) {
		if v == "" {
			delete(acct.Fields, k)
		} else {
			acct.Fields[k] = v
		}
	}
	if mode != "" {
		set(fieldSegments, mode)
	}
	set(fieldAskAbove, above)
	if values.Has(fieldReacts) {
		set(fieldReacts, map[bool]string{true: "1", false: ""}[values.Bool(fieldReacts)])
	}
	return nil
}

// Commands are configure (users) and the admin's number and usage commands.
func (t *Transport) Commands() []bridge.Command {
	return []bridge.Command{
		{Node: NodeConfigure, Name: "Configure", User: true, Run: t.configureCommand},
		{Node: NodeAssign, Name: "Assign a number to a user", Admin: true, Run: t.assignCommand},
		{Node: NodeUnassign, Name: "Take a user's number back", Admin: true, Run: t.unassignCommand},
		{Node: NodeUsage, Name: "Texts and segments per user today", Admin: true, Run: t.usageCommand},
	}
}

func (t *Transport) configureCommand(_ context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	if req.User == nil {
		return nil, bridge.Errorf(bridge.ServiceUnavailable, "Your session is not running; try again.")
	}
	acct := req.User.Account()
	if req.Step == 0 {
		if acct == nil {
			acct = &store.Account{User: req.From.Bare().String()}
		}
		return &bridge.CommandResponse{Form: t.RegistrationForm(acct)}, nil
	}
	next := &store.Account{User: req.From.Bare().String(), Fields: map[string]string{}, Secrets: map[string]string{}}
	if acct != nil {
		next.Fields, next.Secrets = maps.Clone(acct.Fields), maps.Clone(acct.Secrets)
		if next.Fields == nil {
			next.Fields = map[string]string{}
		}
	}
	if err := t.ApplyRegistration(next, req.Values); err != nil {
		return nil, err
	}
	if err := req.User.SaveAccount(next); err != nil {
		t.log.Error("saving SMS settings failed", "user", next.User, "err", err)
		return nil, bridge.Errorf(bridge.InternalServerError, "The settings could not be saved; the administrator can find the reason in the log.")
	}
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: "Saved."}}}, nil
}

func (t *Transport) numberForm(title string, withNumber bool) *bridge.Form {
	f := &bridge.Form{Type: "form", Title: title, Fields: []bridge.FormField{
		{Var: "user", Type: bridge.FieldJIDSingle, Label: "User", Required: true},
	}}
	if withNumber {
		f.Fields = append(f.Fields, bridge.FormField{Var: "number", Type: bridge.FieldTextSingle, Label: "Number (E.164, e.g. +12025550123)", Required: true})
	}
	return f
}

func bareUser(v string) (string, error) {
	j, err := jid.Parse(strings.TrimSpace(v))
	if err != nil || j.Localpart() == "" {
		return "", bridge.Errorf(bridge.JIDMalformed, "%q is not a user's address like alice@example.org.", v)
	}
	return j.Bare().String(), nil
}

func (t *Transport) assignCommand(ctx context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	if req.Step == 0 {
		return &bridge.CommandResponse{Form: t.numberForm("Assign a number", true)}, nil
	}
	user, err := bareUser(req.Values.Get("user"))
	if err != nil {
		return nil, err
	}
	num := strings.TrimSpace(req.Values.Get("number"))
	if err := mapping.ValidE164(num); err != nil {
		return nil, bridge.Errorf(bridge.NotAcceptable, "%v", err)
	}
	if err := t.nums.assign(num, user); err != nil {
		return nil, bridge.Errorf(bridge.Conflict, "%v.", err)
	}
	if err := t.updateAccount(ctx, user, func(a *store.Account) { a.Fields[fieldNumber] = num }); err != nil {
		_, _ = t.nums.unassign(user)
		return nil, err
	}
	t.log.Info("number assigned", "user", user, "number", num, "by", req.From.Bare().String())
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: fmt.Sprintf("%s now texts from %s.", user, num)}}}, nil
}

func (t *Transport) unassignCommand(ctx context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	if req.Step == 0 {
		return &bridge.CommandResponse{Form: t.numberForm("Take a number back", false)}, nil
	}
	user, err := bareUser(req.Values.Get("user"))
	if err != nil {
		return nil, err
	}
	num, err := t.nums.unassign(user)
	if err != nil {
		return nil, bridge.Errorf(bridge.NotAllowed, "%v.", err)
	}
	if num == "" {
		return nil, bridge.Errorf(bridge.ItemNotFound, "%s has no assigned number.", user)
	}
	if err := t.updateAccount(ctx, user, func(a *store.Account) { delete(a.Fields, fieldNumber) }); err != nil {
		return nil, err
	}
	t.log.Info("number unassigned", "user", user, "number", num, "by", req.From.Bare().String())
	return &bridge.CommandResponse{Notes: []bridge.Note{{Type: "info", Text: fmt.Sprintf("%s no longer has %s.", user, num)}}}, nil
}

func (t *Transport) updateAccount(ctx context.Context, user string, f func(*store.Account)) error {
	a, err := t.st.GetAccount(ctx, user, Name)
	if errors.Is(err, store.ErrNotFound) {
		a = &store.Account{User: user, Transport: Name, CreatedAt: time.Now()}
	} else if err != nil {
		return bridge.Errorf(bridge.InternalServerError, "The account of %s could not be read.", user)
	}
	if a.Fields == nil {
		a.Fields = map[string]string{}
	}
	if a.Secrets == nil {
		a.Secrets = map[string]string{}
	}
	f(a)
	if err := t.st.PutAccount(ctx, a); err != nil {
		t.log.Error("saving an account failed", "user", user, "err", err)
		return bridge.Errorf(bridge.InternalServerError, "The account of %s could not be saved.", user)
	}
	return nil
}

// usageCommand shows every user's texts and segments today.
func (t *Transport) usageCommand(ctx context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
	users := map[string]bool{}
	for _, n := range t.cfg.Numbers {
		for _, o := range append([]string{n.Owner}, n.Owners...) {
			if o != "" {
				users[o] = true
			}
		}
	}
	accts, err := t.st.ListAccounts(ctx, Name)
	if err != nil {
		return nil, bridge.Errorf(bridge.InternalServerError, "The accounts could not be read.")
	}
	for _, a := range accts {
		users[a.User] = true
	}
	res := &bridge.Form{Type: "result", Title: "SMS use today (UTC)", Reported: []bridge.FormField{
		{Var: "user", Label: "User"}, {Var: "number", Label: "Number"}, {Var: "messages", Label: "Texts"}, {Var: "segments", Label: "Segments"},
	}}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		d, err := t.usage.today(ctx, u)
		if err != nil {
			return nil, bridge.Errorf(bridge.InternalServerError, "The use of %s could not be read.", u)
		}
		num := ""
		if n := t.nums.ofUser(u); n != nil {
			num = n.e164
		}
		res.Items = append(res.Items, []bridge.FormField{
			{Var: "user", Values: []string{u}}, {Var: "number", Values: []string{num}},
			{Var: "messages", Values: []string{strconv.Itoa(d.Messages)}}, {Var: "segments", Values: []string{strconv.Itoa(d.Segments)}},
		})
	}
	g, _ := t.usage.today(ctx, globalUser)
	note := fmt.Sprintf("All users: %d texts, %d segments today. Limits: %d texts and %d segments per user, %d segments for everyone (0: none).",
		g.Messages, g.Segments, *t.cfg.DailyMessages, *t.cfg.DailySegments, t.cfg.GlobalDailySegments)
	return &bridge.CommandResponse{Result: res, Notes: []bridge.Note{{Type: "info", Text: note}}}, nil
}

// HandleQuery answers disco, archive and ping queries to numbers and rooms.
func (s *session) HandleQuery(q bridge.Query) {
	reply := func(payload any, err error) {
		res := bridge.IQResult{To: q.From, From: q.To, ID: q.ID, Payload: payload}
		if err != nil {
			res.Err = bridge.AsStanzaError(err)
		}
		s.emit(res)
	}
	switch req := q.Request.(type) {
	case *bridge.DiscoInfoQuery:
		reply(s.discoInfo(q.To), nil)
	case *bridge.DiscoItemsQuery:
		reply(&bridge.DiscoItems{}, nil)
	case *bridge.ArchiveQuery:
		reply(s.queryArchive(q.To, req))
	case *bridge.PingQuery:
		if q.To.Kind == mapping.KindOccupant {
			r := s.rooms[mapping.PeerKey(q.To.Room())]
			if r == nil || r.resources[q.From.String()].String() == "" || q.To.Resource != nickOf(s.bare) {
				reply(nil, bridge.Errorf(bridge.NotAcceptable, "You are not in this room."))
				return
			}
		}
		reply(nil, nil)
	default:
		reply(nil, bridge.Errorf(bridge.ServiceUnavailable, "This query is not supported here."))
	}
}

func (s *session) discoInfo(to mapping.Address) *bridge.DiscoInfo {
	info := &bridge.DiscoInfo{Features: []string{"http://jabber.org/protocol/disco#info", "urn:xmpp:receipts"}}
	if *s.t.cfg.HistoryDays > 0 {
		info.Features = append(info.Features, "urn:xmpp:mam:2")
	}
	switch to.Kind {
	case mapping.KindRoom:
		info.Identities = []bridge.Identity{{Category: "conference", Type: "text", Name: to.Name + " (" + to.Network + ")"}}
		info.Features = append(info.Features, "http://jabber.org/protocol/muc", "muc_persistent", "muc_membersonly", "muc_nonanonymous", "urn:xmpp:sid:0")
	default:
		info.Identities = []bridge.Identity{{Category: "client", Type: "sms", Name: to.Name}}
		info.Features = append(info.Features, "urn:xmpp:reactions:0")
	}
	return info
}

// queryArchive answers XEP-0313 on a team inbox room or a number.
func (s *session) queryArchive(to mapping.Address, q *bridge.ArchiveQuery) (*bridge.ArchiveResult, error) {
	if *s.t.cfg.HistoryDays == 0 {
		return nil, bridge.Errorf(bridge.FeatureNotImplemented, "This gateway keeps no history of texts.")
	}
	to = to.Bare()
	if to.Kind == mapping.KindRoom {
		if n := s.t.nums.inbox(to.Network); n == nil || !n.hasOwner(s.bare) {
			return nil, bridge.Errorf(bridge.Forbidden, "Only the members of a team inbox may read its history.")
		}
	}
	sq, firstIndex, err := q.StoreQuery(s.bare, Name, mapping.PeerKey(to))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.u.Context(), 10*time.Second)
	defer cancel()
	page, err := s.t.st.QueryArchive(ctx, sq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bridge.Errorf(bridge.ItemNotFound, "That message is not in the archive.")
	}
	if err != nil {
		s.log.Warn("querying the SMS archive failed", "err", err)
		return nil, bridge.Errorf(bridge.InternalServerError, "The archive could not be read.")
	}
	return bridge.ArchiveResultOf(q, page, firstIndex, func(e store.ArchiveEntry) bridge.Message {
		if to.Kind == mapping.KindRoom {
			return archivedMessage(to, e)
		}
		m := bridge.Message{From: to, Type: bridge.Chat, StanzaID: e.ID, Body: e.Body, Time: e.Time, ID: e.OriginID}
		if e.Outgoing {
			m.To = s.u.JID()
		}
		return m
	}), nil
}

// Unregistered gives the number a user took from the pool (or an admin
// assigned) back when they unregister, so that the next user may pick it.
// A number from the config file stays where the config puts it.
func (t *Transport) Unregistered(bare string) {
	if num, err := t.nums.unassign(bare); err == nil && num != "" {
		t.log.Info("number freed: its owner unregistered", "user", bare, "number", num)
	}
}
