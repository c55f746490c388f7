package twilio

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	tw "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "0123456789abcdef0123456789abcdef"
)

type rewrite struct{ base *url.URL }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.base.Scheme, r.base.Host
	return http.DefaultTransport.RoundTrip(req)
}

// The real twilio-go client against the stand-in: create, errors, list,
// and status callbacks signed so that twilio-go's validator accepts them.
func TestRealClient(t *testing.T) {
	s, err := Start(sid, token)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	callbacks := make(chan url.Values, 4)
	v := client.NewRequestValidator(token)
	var cbURL string
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !v.ValidateBody(cbURL, b, r.Header.Get("X-Twilio-Signature")) {
			t.Errorf("a callback failed twilio-go's signature check")
		}
		f, _ := url.ParseQuery(string(b))
		callbacks <- f
	}))
	defer cb.Close()
	cbURL = cb.URL + "/status?ref=1"

	base, _ := url.Parse(s.URL)
	c := &client.Client{Credentials: client.NewCredentials(sid, token), HTTPClient: &http.Client{Transport: rewrite{base}}}
	c.SetAccountSid(sid)
	api := tw.NewRestClientWithParams(tw.ClientParams{Client: c}).Api

	p := &openapi.CreateMessageParams{}
	p.SetTo("+12025550123")
	p.SetFrom("+15005550006")
	p.SetBody("hello")
	p.SetStatusCallback(cbURL)
	m, err := api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sid == nil || !strings.HasPrefix(*m.Sid, "SM") || *m.Status != "queued" || *m.Body != "hello" {
		t.Fatalf("created %+v", m)
	}
	for _, want := range []string{"sent", "delivered"} {
		select {
		case f := <-callbacks:
			if f.Get("MessageStatus") != want || f.Get("MessageSid") != *m.Sid {
				t.Errorf("callback %v, want %s", f, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s callback", want)
		}
	}

	s.SetCreateError("+12025550124", 21610)
	p.SetTo("+12025550124")
	_, err = api.CreateMessage(p)
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Code != 21610 || te.Status != 400 {
		t.Fatalf("error %v, want a TwilioRestError 21610", err)
	}

	lp := &openapi.ListMessageParams{}
	lp.SetTo("+12025550123")
	lp.SetDateSentAfter(time.Now().Add(-time.Hour))
	list, err := api.ListMessage(lp)
	if err != nil || len(list) != 1 || *list[0].Sid != *m.Sid {
		t.Fatalf("list: %v, %v", list, err)
	}

	// Wrong credentials.
	c2 := &client.Client{Credentials: client.NewCredentials(sid, strings.Repeat("f", 32)), HTTPClient: &http.Client{Transport: rewrite{base}}}
	c2.SetAccountSid(sid)
	if _, err := tw.NewRestClientWithParams(tw.ClientParams{Client: c2}).Api.CreateMessage(p); !errors.As(err, &te) || te.Code != 20003 {
		t.Fatalf("bad credentials: %v", err)
	}

	// Media: Basic auth, then a redirect to the media host.
	mu := s.AddMedia("image/png", []byte("png"))
	resp, err := http.Get(mu)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("media without auth: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, mu, nil)
	req.SetBasicAuth(sid, token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "png" || !strings.Contains(resp.Request.URL.Path, "/cdn/") {
		t.Fatalf("media: %d %q via %s", resp.StatusCode, b, resp.Request.URL)
	}
}
