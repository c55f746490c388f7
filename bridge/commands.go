package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/mapping"
)

// Built-in command nodes every transport has.
const (
	NodeStatus         = "status"
	NodeUnregister     = "unregister"
	NodeUsers          = "users"
	NodeStats          = "stats"
	NodeDisconnectUser = "disconnect-user"
)

// builtinCommands are the commands of every transport, before the
// transport's own.
func (g *Gateway) builtinCommands(transport string) []Command {
	return []Command{
		{Node: NodeStatus, Name: "Status: what the gateway knows about me", User: true, Run: func(_ context.Context, req *CommandRequest) (*CommandResponse, error) {
			return g.statusCommand(transport, req), nil
		}},
		{Node: NodeUnregister, Name: "Unregister: delete my account and data", Run: func(ctx context.Context, req *CommandRequest) (*CommandResponse, error) {
			return g.unregisterCommand(ctx, transport, req)
		}},
		{Node: NodeUsers, Name: "List active users", Admin: true, Run: func(_ context.Context, req *CommandRequest) (*CommandResponse, error) {
			return g.usersCommand(transport), nil
		}},
		{Node: NodeStats, Name: "Gateway statistics", Admin: true, Run: func(_ context.Context, req *CommandRequest) (*CommandResponse, error) {
			return g.statsCommand(), nil
		}},
		{Node: NodeDisconnectUser, Name: "Disconnect a user", Admin: true, Run: func(_ context.Context, req *CommandRequest) (*CommandResponse, error) {
			return g.disconnectCommand(transport, req)
		}},
	}
}

// Commands lists the commands a user may see on an address of a transport.
func (g *Gateway) Commands(transport string, from jid.JID, to mapping.Address) []Command {
	te := g.transports[transport]
	if te == nil || !g.auth.Allowed(from) {
		return nil
	}
	admin := g.auth.IsAdmin(from)
	var out []Command
	for _, c := range append(g.builtinCommands(transport), te.t.Commands()...) {
		if c.Admin && !admin {
			continue
		}
		kinds := c.On
		if len(kinds) == 0 {
			kinds = []mapping.Kind{mapping.KindGateway}
		}
		if slices.Contains(kinds, to.Kind) {
			out = append(out, c)
		}
	}
	return out
}

// LookupCommand finds a command by node on an address. It fails with
// item-not-found for an unknown node and forbidden for an admin node run by
// a non-admin.
func (g *Gateway) LookupCommand(transport string, from jid.JID, to mapping.Address, node string) (Command, error) {
	te := g.transports[transport]
	if te == nil {
		return Command{}, Errorf(ServiceUnavailable, "The %s transport is not enabled on this gateway.", transport)
	}
	if err := g.checkAccess(from); err != nil {
		return Command{}, err
	}
	for _, c := range append(g.builtinCommands(transport), te.t.Commands()...) {
		if c.Node != node {
			continue
		}
		kinds := c.On
		if len(kinds) == 0 {
			kinds = []mapping.Kind{mapping.KindGateway}
		}
		if !slices.Contains(kinds, to.Kind) {
			continue
		}
		if c.Admin && !g.auth.IsAdmin(from) {
			return Command{}, Errorf(Forbidden, "Only administrators of this gateway may run %q.", c.Name)
		}
		return c, nil
	}
	return Command{}, Errorf(ItemNotFound, "There is no command %q here.", node)
}

// ExecuteCommand runs one step of a command. Commands that need the user's
// session run on the user's goroutine; done is called exactly once, from
// whichever goroutine ran the step. It never blocks the caller on a
// user's goroutine.
func (g *Gateway) ExecuteCommand(ctx context.Context, transport string, cmd Command, req *CommandRequest, done func(*CommandResponse, error)) {
	req.Gateway = g
	req.Admin = g.auth.IsAdmin(req.From)
	if !cmd.User {
		done(cmd.Run(ctx, req))
		return
	}
	u, err := g.user(transport, req.From, true)
	if err != nil {
		// A user who may not start a session (not registered) still
		// gets the command, without a session.
		if se := AsStanzaError(err); se.Condition == RegistrationRequired {
			done(cmd.Run(ctx, req))
			return
		}
		done(nil, err)
		return
	}
	ok := u.Do(func(u *User, s Session) {
		req.User = u
		req.Session = s
		done(cmd.Run(ctx, req))
	})
	if !ok {
		done(nil, Errorf(ServiceUnavailable, "Your session was stopping; run the command again."))
	}
}

func (g *Gateway) statusCommand(transport string, req *CommandRequest) *CommandResponse {
	lines := []string{fmt.Sprintf("You are %s, using the %s transport.", req.From.Bare(), transport)}
	if req.User == nil {
		lines = append(lines, "You have not registered, and have no active session.")
	} else {
		if req.User.Account() != nil {
			lines = append(lines, "You are registered since "+req.User.Account().CreatedAt.UTC().Format(time.RFC3339)+".")
		} else {
			lines = append(lines, "You are not registered; the gateway uses its defaults for you.")
		}
		lines = append(lines, fmt.Sprintf("Your session started %s ago.", time.Since(req.User.started).Round(time.Second)))
		if req.Session != nil {
			lines = append(lines, req.Session.Status()...)
		}
	}
	return &CommandResponse{Notes: []Note{{Type: "info", Text: strings.Join(lines, "\n")}}}
}

func (g *Gateway) unregisterCommand(ctx context.Context, transport string, req *CommandRequest) (*CommandResponse, error) {
	if req.Step == 0 {
		return &CommandResponse{Form: &Form{
			Type:         "form",
			Title:        "Unregister",
			Instructions: "This deletes your account on this gateway: your settings, saved passwords, history and queued messages, and closes your connections.",
			Fields: []FormField{{
				Var: "confirm", Type: FieldBoolean, Label: "Yes, delete my account", Required: true, Values: []string{"0"},
			}},
		}}, nil
	}
	if !req.Values.Bool("confirm") {
		return &CommandResponse{Notes: []Note{{Type: "info", Text: "Nothing was deleted."}}}, nil
	}
	if err := g.Unregister(ctx, transport, req.From); err != nil {
		return nil, err
	}
	return &CommandResponse{Notes: []Note{{Type: "info", Text: "Your account and data on this gateway are deleted."}}}, nil
}

func (g *Gateway) usersCommand(transport string) *CommandResponse {
	users := g.Users(transport)
	res := &Form{
		Type:  "result",
		Title: fmt.Sprintf("%d active users", len(users)),
		Reported: []FormField{
			{Var: "jid", Label: "User", Type: FieldJIDSingle},
			{Var: "since", Label: "Active since", Type: FieldTextSingle},
		},
	}
	for _, u := range users {
		res.Items = append(res.Items, []FormField{
			{Var: "jid", Values: []string{u.JID}},
			{Var: "since", Values: []string{u.Since.UTC().Format(time.RFC3339)}},
		})
	}
	return &CommandResponse{Result: res}
}

func (g *Gateway) statsCommand() *CommandResponse {
	st := g.Stats()
	res := &Form{Type: "result", Title: "Gateway statistics", Fields: []FormField{
		{Var: "uptime", Label: "Uptime", Type: FieldTextSingle, Values: []string{st.Uptime.Round(time.Second).String()}},
	}}
	for _, name := range g.order {
		res.Fields = append(res.Fields, FormField{
			Var: "users-" + name, Label: "Active " + name + " users", Type: FieldTextSingle,
			Values: []string{fmt.Sprint(st.ActiveUsers[name])},
		})
	}
	return &CommandResponse{Result: res}
}

func (g *Gateway) disconnectCommand(transport string, req *CommandRequest) (*CommandResponse, error) {
	if req.Step == 0 {
		return &CommandResponse{Form: &Form{
			Type:  "form",
			Title: "Disconnect a user",
			Fields: []FormField{
				{Var: "jid", Type: FieldJIDSingle, Label: "User (bare JID)", Required: true},
				{Var: "reason", Type: FieldTextSingle, Label: "Reason shown to the user", Values: []string{"Disconnected by the gateway administrator."}},
			},
		}}, nil
	}
	target, err := jid.Parse(strings.TrimSpace(req.Values.Get("jid")))
	if err != nil {
		return nil, Errorf(BadRequest, "%q is not a valid JID.", req.Values.Get("jid"))
	}
	reason := req.Values.Get("reason")
	if reason == "" {
		reason = "Disconnected by the gateway administrator."
	}
	if !g.DisconnectUser(transport, target.Bare().String(), reason) {
		return &CommandResponse{Notes: []Note{{Type: "warn", Text: fmt.Sprintf("%s has no active session.", target.Bare())}}}, nil
	}
	return &CommandResponse{Notes: []Note{{Type: "info", Text: fmt.Sprintf("%s was disconnected.", target.Bare())}}}, nil
}
