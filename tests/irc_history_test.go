package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// TestIRCHistory checks the room archive through Prosody: XEP-0313 MAM on
// a room JID with RSM paging (max, after, before, the last page) and the
// with/start/end filters, and MUC history on join (maxstanzas, seconds,
// since, maxchars, the default).
func TestIRCHistory(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{irc: map[string]any{"rate": float64(0)}})
	alice := s.user("alice")
	r := room("#hist")
	hb := s.irc(t, "histbob")
	hb.Join("#hist")
	hc := s.irc(t, "histcarol")
	hc.Join("#hist")
	joinRoom(t, alice, r, "alice", "")
	expectSubject(t, alice, r)

	// Batch a: a0…a5 (even from histbob, odd from histcarol) and one of
	// alice's own; a pause (mid); batch b: b0…b5.
	send := func(prefix string) {
		for i := range 6 {
			c, nick := hb, "histbob"
			if i%2 == 1 {
				c, nick = hc, "histcarol"
			}
			body := fmt.Sprintf("%s%d", prefix, i)
			c.Privmsg("#hist", body)
			groupchatFrom(t, alice, r+"/"+nick, withBody(body))
		}
	}
	send("a")
	sendGroupchat(alice, r, "own1", "mine a")
	groupchatFrom(t, alice, r+"/alice", byID("own1"))
	time.Sleep(1100 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	send("b") // no wait: a query first writes what waits in the archive batch
	all := []string{"a0", "a1", "a2", "a3", "a4", "a5", "mine a", "b0", "b1", "b2", "b3", "b4", "b5"}

	mam := mamQuery
	bodies := mamBodies
	ids := func(msgs []testbed.Stanza) []string {
		var out []string
		for _, m := range msgs {
			out = append(out, m.Find("{"+nsMAM+"}result").AttrValue("id"))
		}
		return out
	}
	rsm := func(max int, extra string) string {
		return fmt.Sprintf(`<set xmlns='%s'><max>%d</max>%s</set>`, nsRSM, max, extra)
	}
	fin := func(res testbed.Stanza) *testbed.Node { return res.Find("{" + nsMAM + "}fin") }
	setText := func(res testbed.Stanza, el string) string {
		return res.Text("{" + nsMAM + "}fin/{" + nsRSM + "}set/" + el)
	}
	filter := func(fields map[string][]string) string { return submitForm(nsMAM, fields) }

	t.Run("MAM everything", func(t *testing.T) {
		msgs, res := mam(t, alice, r, "", "")
		if got := bodies(msgs); !slices.Equal(got, all) {
			t.Fatalf("archive: want %q, got %q (fin %s)", all, got, res.XML)
		}
		if fin(res).AttrValue("complete") != "true" || setText(res, "count") != "13" {
			t.Errorf("fin: %s", res.XML)
		}
		for i, m := range msgs {
			fw := m.Find("{" + nsMAM + "}result/{urn:xmpp:forward:0}forwarded")
			inner := fw.Find("message")
			if m.From != r || fw.Find("{"+nsDelay+"}delay") == nil || inner.AttrValue("type") != "groupchat" {
				t.Errorf("result %d: %s", i, m.XML)
			}
			want := r + "/histbob"
			switch {
			case all[i] == "mine a":
				want = r + "/alice"
			case strings.HasSuffix(all[i], "1"), strings.HasSuffix(all[i], "3"), strings.HasSuffix(all[i], "5"):
				want = r + "/histcarol"
			}
			if inner.AttrValue("from") != want {
				t.Errorf("result %d from %s, want %s", i, inner.AttrValue("from"), want)
			}
		}
		// The result ids are the stanza-ids the live messages carried.
		live := map[string]bool{}
		for _, raw := range alice.Received() {
			if st, err := testbed.ParseStanza(raw); err == nil && st.Name == "message" && st.Find("{"+nsSID+"}stanza-id") != nil {
				live[st.Find("{"+nsSID+"}stanza-id").AttrValue("id")] = true
			}
		}
		for i, id := range ids(msgs) {
			if !live[id] {
				t.Errorf("archive id %s of %q was not the stanza-id of the live message", id, all[i])
			}
		}
	})

	t.Run("MAM RSM paging", func(t *testing.T) {
		first, res := mam(t, alice, r, "", rsm(5, ""))
		if got := bodies(first); !slices.Equal(got, all[:5]) {
			t.Fatalf("first page: want %q, got %q", all[:5], got)
		}
		fids := ids(first)
		if setText(res, "first") != fids[0] || setText(res, "last") != fids[4] || setText(res, "count") != "13" {
			t.Errorf("first page <set/>: %s", res.XML)
		}
		if fin(res).AttrValue("complete") == "true" {
			t.Errorf("first page says complete: %s", res.XML)
		}
		second, _ := mam(t, alice, r, "", rsm(5, "<after>"+fids[4]+"</after>"))
		if got := bodies(second); !slices.Equal(got, all[5:10]) {
			t.Errorf("after: want %q, got %q", all[5:10], got)
		}
		last, res := mam(t, alice, r, "", rsm(5, "<before/>"))
		if got := bodies(last); !slices.Equal(got, all[8:]) {
			t.Errorf("last page: want %q, got %q (%s)", all[8:], got, res.XML)
		}
		if lids := ids(last); len(lids) > 0 {
			prev, _ := mam(t, alice, r, "", rsm(5, "<before>"+lids[0]+"</before>"))
			if got := bodies(prev); !slices.Equal(got, all[3:8]) {
				t.Errorf("before: want %q, got %q", all[3:8], got)
			}
		}
		// Walking forward with max 4 visits everything once and ends complete.
		var walked []string
		after := ""
		for range 10 {
			page, res := mam(t, alice, r, "", rsm(4, after))
			walked = append(walked, bodies(page)...)
			if fin(res).AttrValue("complete") == "true" {
				break
			}
			after = "<after>" + setText(res, "last") + "</after>"
		}
		if !slices.Equal(walked, all) {
			t.Errorf("walking pages of 4: want %q, got %q", all, walked)
		}
		// An id that is not in the archive.
		if _, res := mam(t, alice, r, "", rsm(5, "<after>no-such-id</after>")); res.ErrorCondition() != "item-not-found" {
			t.Errorf("after an unknown id: %s", res.XML)
		}
	})

	t.Run("MAM filters", func(t *testing.T) {
		msgs, _ := mam(t, alice, r, filter(map[string][]string{"with": {r + "/histbob"}}), "")
		if got, want := bodies(msgs), []string{"a0", "a2", "a4", "b0", "b2", "b4"}; !slices.Equal(got, want) {
			t.Errorf("with histbob: want %q, got %q", want, got)
		}
		stamp := mid.Format(time.RFC3339Nano)
		msgs, _ = mam(t, alice, r, filter(map[string][]string{"start": {stamp}}), "")
		if got := bodies(msgs); !slices.Equal(got, all[7:]) {
			t.Errorf("start %s: want %q, got %q", stamp, all[7:], got)
		}
		msgs, _ = mam(t, alice, r, filter(map[string][]string{"end": {stamp}}), "")
		if got := bodies(msgs); !slices.Equal(got, all[:7]) {
			t.Errorf("end %s: want %q, got %q", stamp, all[:7], got)
		}
		msgs, _ = mam(t, alice, r, filter(map[string][]string{"start": {stamp}, "with": {r + "/histcarol"}}), rsm(2, ""))
		if got, want := bodies(msgs), []string{"b1", "b3"}; !slices.Equal(got, want) {
			t.Errorf("start, with histcarol, max 2: want %q, got %q", want, got)
		}
		if _, res := mam(t, alice, r, filter(map[string][]string{"start": {"yesterday"}}), ""); res.ErrorCondition() != "bad-request" {
			t.Errorf("a start that is not a date: %s", res.XML)
		}
	})

	t.Run("MAM is per user", func(t *testing.T) {
		bob := s.user("bob")
		msgs, res := mam(t, bob, r, "", "")
		if res.Type != "result" || len(msgs) != 0 {
			t.Errorf("bob, never in the room, sees %d archived messages: %q", len(msgs), bodies(msgs))
		}
	})

	// history joins a second resource of alice with hist inside the MUC
	// <x/> and returns the history messages between self-presence and
	// subject.
	history := func(t *testing.T, resource, hist string) []string {
		t.Helper()
		c := s.userRes(t, "alice", resource)
		joinRoom(t, c, r, "alice", hist)
		subj := expectSubject(t, c, r)
		var out []string
		inJoin := false
		for _, raw := range c.Received() {
			st, err := testbed.ParseStanza(raw)
			if err != nil {
				continue
			}
			if st.Name == "presence" && hasStatus(st, "110") {
				inJoin = true
				continue
			}
			if st.ID == subj.ID && st.Find("subject") != nil {
				break
			}
			if inJoin && st.Name == "message" && st.Body() != "" {
				if st.Find("{"+nsDelay+"}delay") == nil || !strings.HasPrefix(st.From, r+"/") {
					t.Errorf("a history message without delay: %s", st.XML)
				}
				out = append(out, st.Body())
			}
		}
		leaveRoom(t, c, r, "alice")
		return out
	}

	t.Run("history maxstanzas", func(t *testing.T) {
		if got := history(t, "h1", `<history maxstanzas='3'/>`); !slices.Equal(got, all[10:]) {
			t.Errorf("maxstanzas 3: want %q, got %q", all[10:], got)
		}
	})
	t.Run("history seconds", func(t *testing.T) {
		secs := int(time.Since(mid).Seconds())
		if got := history(t, "h2", fmt.Sprintf(`<history seconds='%d'/>`, secs)); !slices.Equal(got, all[7:]) {
			t.Errorf("seconds %d: want %q, got %q", secs, all[7:], got)
		}
	})
	t.Run("history since", func(t *testing.T) {
		since := mid.Format("2006-01-02T15:04:05.000Z")
		if got := history(t, "h3", `<history since='`+since+`'/>`); !slices.Equal(got, all[7:]) {
			t.Errorf("since %s: want %q, got %q", since, all[7:], got)
		}
	})
	t.Run("history maxchars 0", func(t *testing.T) {
		if got := history(t, "h4", `<history maxchars='0'/>`); len(got) != 0 {
			t.Errorf("maxchars 0: want no history, got %q", got)
		}
	})
	t.Run("history default", func(t *testing.T) {
		if got := history(t, "h5", ""); !slices.Equal(got, all) {
			t.Errorf("no <history/>: want %q, got %q", all, got)
		}
	})
}
