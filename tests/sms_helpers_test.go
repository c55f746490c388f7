package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

const (
	smsDomain  = "sms.localhost"
	smsSecret  = "sms-secret"
	smsAccount = "AC0123456789abcdef0123456789abcdef"
	smsToken   = "0123456789abcdef0123456789abcdef"
	aliceNum   = "+15005550006"
	salesNum   = "+15005550007"
	remoteNum  = "+12025550123"
)

// smsStack is Prosody, the Twilio stand-in and the gateway with the SMS
// transport: alice owns aliceNum, bob and carol the team inbox "sales".
type smsStack struct {
	t       *testing.T
	prosody *testbed.Prosody
	tw      *twilio.Server
	gw      *testbed.Gateway
	public  string // the gateway's public_url (its HTTP listener)
}

type smsOptions struct {
	sms   map[string]any // merged into [sms]
	extra map[string]any // merged into the config
}

func newSMSStack(t *testing.T, opts smsOptions) *smsStack {
	t.Helper()
	p := testbed.StartProsody(t, testbed.ProsodyOptions{
		Components:   map[string]string{smsDomain: smsSecret},
		ExtraModules: []string{"offline", "blocklist"},
	})
	registerUsers(t, p, []string{"alice", "bob", "carol", "dave", "admin"})
	tw, err := twilio.Start(smsAccount, smsToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tw.Close)
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	public := "http://" + listen
	sms := map[string]any{
		"domain": smsDomain, "secret": smsSecret, "account_sid": smsAccount, "auth_token": smsToken,
		"api_url": tw.URL, "default_region": "US", "queue_lease": "3s",
		"number": []map[string]any{
			{"number": aliceNum, "owner": "alice@localhost"},
			{"number": salesNum, "name": "sales", "owners": []string{"bob@localhost", "carol@localhost"}},
		},
	}
	for k, v := range opts.sms {
		sms[k] = v
	}
	extra := map[string]any{
		"sms":         sms,
		"http":        map[string]any{"listen": listen, "public_url": public},
		"attachments": map[string]any{"allow_private_fetch": true},
	}
	for k, v := range opts.extra {
		extra[k] = v
	}
	cfg := testbed.WriteGatewayConfig(t.TempDir(), testbed.GatewayConfig{
		XMPPServer: p.ComponentAddr(),
		HTTPListen: listen,
		Allow:      []string{"localhost"},
		Admins:     []string{"admin@localhost"},
		Extra:      extra,
	})
	gw := testbed.StartGateway(t, testbed.BuildGateway(t), cfg)
	return &smsStack{t: t, prosody: p, tw: tw, gw: gw, public: public}
}

func (s *smsStack) user(t *testing.T, name string) *testbed.XMPPClient {
	t.Helper()
	return testbed.DialXMPP(t, s.prosody.C2SAddr(), jid.MustParse(name+"@localhost/sms"), password)
}

// inbound posts a signed "A message comes in" webhook and returns the
// status, body and MessageSid.
func (s *smsStack) inbound(t *testing.T, in twilio.Inbound) (int, string, string) {
	t.Helper()
	if in.MessageSID == "" {
		in.MessageSID = twilio.NewSID("SM")
	}
	if in.From == "" {
		in.From = remoteNum
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	code, body, err := s.tw.SendInbound(ctx, s.gw.URL("/sms/incoming"), s.public+"/sms/incoming", in)
	if err != nil {
		t.Fatalf("posting the webhook: %v", err)
	}
	return code, body, in.MessageSID
}

// smsJID is the JID of a phone number.
func smsJID(num string) string { return num + "@" + smsDomain }

// salesRoom is the team inbox room of a remote number.
func salesRoom(num string) string { return num + "%sales@" + smsDomain }

// textFrom matches a chat message from num with body.
func textFrom(num, body string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool {
		return st.Name == "message" && st.Type != "error" && st.From == smsJID(num) && st.Body() == body
	}
}

// sendText sends a chat message to a number with a receipt request.
func sendText(c *testbed.XMPPClient, to, id, body, extra string) {
	c.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='%s'><body>%s</body><request xmlns='urn:xmpp:receipts'/>%s</message>`, to, id, xmlText(body), extra))
}

// receiptFor matches a XEP-0184 receipt for id.
func receiptFor(id string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool {
		r := st.Find("{urn:xmpp:receipts}received")
		return st.Name == "message" && st.Type != "error" && r != nil && r.AttrValue("id") == id
	}
}

// errorOn matches an error stanza on id.
func errorOn(id string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool { return st.Name == "message" && st.Type == "error" && st.ID == id }
}

// waitCreates waits until n messages to a number were created.
func (s *smsStack) waitCreates(t *testing.T, to string, n int) []twilio.Message {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ms := s.tw.MessagesTo(to)
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages to %s created, want %d; API calls: %s", len(ms), to, n, s.callLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *smsStack) callLog() string {
	var b strings.Builder
	for _, c := range s.tw.Calls() {
		fmt.Fprintf(&b, "\n  %s %s %d To=%s", c.Method, c.Path, c.Status, c.Form.Get("To"))
	}
	return b.String()
}

// forged posts a webhook with a signature that does not fit it.
func (s *smsStack) post(t *testing.T, form url.Values, sig string) int {
	t.Helper()
	req, _ := httpPost(s.gw.URL("/sms/incoming"), form.Encode(), sig)
	return req
}

func httpPost(u, body, sig string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
