package sms

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/bridge"
	"switchboard/store"
	"switchboard/tests/twilio"
)

// BenchmarkWebhookAccept measures /sms/incoming alone (signature check,
// dedup lookup, group-committed store write) against SQLite, with
// parallel senders; nothing delivers.
func BenchmarkWebhookAccept(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "sqlite", filepath.Join(b.TempDir(), "s.db"), make([]byte, store.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	token := strings.Repeat("a", 32)
	cfg := Config{ComponentConfig: bridge.ComponentConfig{Domain: "sms.localhost", Secret: "x"}, AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: token,
		Numbers: []NumberConfig{{Number: "+15005550006", Owner: "alice@localhost"}}}
	tr, err := New(cfg, bridge.Env{Store: st, PublicURL: "http://gw"})
	if err != nil {
		b.Fatal(err)
	}
	go tr.acceptLoop(ctx)
	h := http.HandlerFunc(tr.handleIncoming)
	b.ResetTimer()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			form := twilio.Inbound{From: "+12025550123", To: "+15005550006", Body: "bench"}.Form(cfg.AccountSID)
			req := httptest.NewRequest(http.MethodPost, "/sms/incoming", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", twilio.Sign(token, "http://gw/sms/incoming", form))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("answered %d %s", w.Code, w.Body)
			}
		}
	})
}
