package mailmsg

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parseFile(t *testing.T, name string, opt ParseOptions) *Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(bytes.NewReader(raw), opt)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

// TestParseSamples reads the real-world samples under testdata/ and checks
// what the transport relies on.
func TestParseSamples(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, m *Message)
	}{
		{"iso-2022-jp.eml", func(t *testing.T, m *Message) {
			eq(t, "From", m.From, Address{Name: "山田太郎", Addr: "taro@example.jp"})
			eq(t, "Subject", m.Subject, "会議の件について")
			eq(t, "Text", m.Text, "お世話になっております。\n明日の会議は十時からです。\nよろしくお願いします。")
			eq(t, "MessageID", m.MessageID, "20261130091200.1234@example.jp")
			eq(t, "Date", m.Date.UTC(), time.Date(2026, 11, 30, 0, 12, 0, 0, time.UTC))
		}},
		{"iso-8859-1.eml", func(t *testing.T, m *Message) {
			eq(t, "From", m.From, Address{Name: "François Müller", Addr: "francois@example.fr"})
			eq(t, "Subject", m.Subject, "Résumé de la réunion")
			eq(t, "Text", m.Text, "Bonjour Alice,\n\nJe t'envoie le résumé de la réunion : ça s'est très bien passé.\nÀ bientôt, garçon ! Ærø, ñ, ü, ß.\n\nFrançois")
			eq(t, "To", m.To, []Address{{Name: "Alice", Addr: "alice@mail.localhost"}})
		}},
		{"windows-1252.eml", func(t *testing.T, m *Message) {
			eq(t, "From", m.From, Address{Name: "Bob O'Neil", Addr: "bob@example.com"})
			eq(t, "Subject", m.Subject, "“Budget” – €42")
			eq(t, "Text", m.Text, "Hi Alice,\n\n“Quoted” and ‘single’ – price €42 … naïve café.\n\nThanks,\nBob")
		}},
		{"html-only.eml", func(t *testing.T, m *Message) {
			eq(t, "HTMLOnly", m.HTMLOnly, true)
			for _, want := range []string{
				"Hello Alice,",
				"Your order #778899 has shipped. Track it here <https://shop.example/track?id=778899&lang=en>.",
				"Questions? See https://shop.example/help.",
				"1 × Café mug",
				"Thanks,\nThe Shop",
			} {
				if !strings.Contains(m.Text, want) {
					t.Errorf("Text lacks %q:\n%s", want, m.Text)
				}
			}
			for _, bad := range []string{"\r", "<p>", "color: red", "\n\n\n"} {
				if strings.Contains(m.Text, bad) {
					t.Errorf("Text has %q:\n%q", bad, m.Text)
				}
			}
		}},
		{"alternative-inline-image.eml", func(t *testing.T, m *Message) {
			eq(t, "HTMLOnly", m.HTMLOnly, false)
			eq(t, "Text", m.Text, "Hi Alice,\n\nHere is the view from the top — worth the climb!\n\nCarol")
			if len(m.Attachments) != 2 {
				t.Fatalf("%d attachments, want the 2 inline images: %+v", len(m.Attachments), m.Attachments)
			}
			a := m.Attachments[0]
			eq(t, "Filename", a.Filename, "view.png")
			eq(t, "ContentType", a.ContentType, "image/png")
			eq(t, "ContentID", a.ContentID, "F00D@example.org")
			eq(t, "Inline", a.Inline, true)
			if !bytes.HasPrefix(a.Data, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("Data is not the PNG: %q", a.Data)
			}
			// No Content-Disposition, but a Content-ID in multipart/related.
			eq(t, "second Inline", m.Attachments[1].Inline, true)
			eq(t, "second ContentID", m.Attachments[1].ContentID, "BEEF@example.org")
		}},
		{"postfix-dsn.eml", func(t *testing.T, m *Message) {
			if m.DSN == nil {
				t.Fatal("DSN is nil")
			}
			eq(t, "DSN", *m.DSN, DSN{
				OriginalMessageID: "k5x2m7q4w9zb3n8c6v1a@mail.localhost",
				Action:            "failed",
				Status:            "5.1.1",
				Diagnostic:        "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
				Recipient:         "nobody@example.net",
			})
			eq(t, "AutoSubmitted", m.AutoSubmitted, true)
			eq(t, "From", m.From.Addr, "MAILER-DAEMON@relay.mail.localhost")
			if !strings.Contains(m.Text, "Recipient address rejected") || strings.Contains(m.Text, "Hello there") {
				t.Errorf("Text is not the notification alone:\n%s", m.Text)
			}
			eq(t, "attachments", len(m.Attachments), 0)
		}},
		// Written by Postfix 3.7 on this machine: Build's mail to a recipient
		// the next hop refused with 550 (see testdata/README).
		{"postfix-dsn-real.eml", func(t *testing.T, m *Message) {
			if m.DSN == nil {
				t.Fatal("DSN is nil")
			}
			eq(t, "DSN", *m.DSN, DSN{
				OriginalMessageID: "ln2oajzqxjjezhfji5pkqljqre@mail.localhost",
				Action:            "failed",
				Status:            "5.1.1",
				Diagnostic:        "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
				Recipient:         "nobody@example.net",
			})
			eq(t, "From", m.From, Address{Name: "Mail Delivery System", Addr: "MAILER-DAEMON@mail.localhost"})
			eq(t, "AutoSubmitted", m.AutoSubmitted, true)
			if !strings.HasPrefix(m.Text, "This is the mail system at host relay.mail.localhost.") || !strings.Contains(m.Text, "said: 550 5.1.1") {
				t.Errorf("Text:\n%s", m.Text)
			}
		}},
		// Postfix's delay warning (delay_warning_time) after a 451: a
		// "delayed" action, the original's headers only.
		{"postfix-delayed-real.eml", func(t *testing.T, m *Message) {
			if m.DSN == nil {
				t.Fatal("DSN is nil")
			}
			eq(t, "DSN", *m.DSN, DSN{
				OriginalMessageID: "ln2oajzqxjjezhfji5pkqljqre@mail.localhost",
				Action:            "delayed",
				Status:            "4.3.5",
				Diagnostic:        "451 4.3.5 <slow@example.net>: Recipient address rejected: Server configuration error",
				Recipient:         "slow@example.net",
			})
			eq(t, "Subject", m.Subject, "Delayed Mail (still being retried)")
			eq(t, "attachments", len(m.Attachments), 0)
		}},
		{"mailing-list.eml", func(t *testing.T, m *Message) {
			eq(t, "ListID", m.ListID, "golang-nuts.googlegroups.com")
			eq(t, "ListPost", m.ListPost, "golang-nuts@googlegroups.com")
			eq(t, "References", m.References, []string{"CAAroot=000@mail.example.com", "CAGz9=def456@mail.example.com"})
			eq(t, "InReplyTo", m.InReplyTo, "CAGz9=def456@mail.example.com")
			eq(t, "ThreadID", ThreadID(m), "CAAroot=000@mail.example.com")
			if !strings.HasPrefix(m.AuthResults, "mail.localhost;") || !strings.Contains(m.AuthResults, "dmarc=pass") {
				t.Errorf("AuthResults = %q, want the topmost header, raw", m.AuthResults)
			}
			eq(t, "Text", m.Text, "I'd use iter.Seq for that; range-over-func makes it read naturally.\n\n"+
				"On Fri, Dec 4, 2026 at 11:02\u202fPM Gopher Jones <gopher@example.net> wrote:\n"+
				"> How do people expose a lazy sequence from a generic container?\n"+
				">> Earlier: channels are too slow for this.\n\n"+
				"-- \nYou received this message because you are subscribed to the Google Groups \"golang-nuts\" group.\n"+
				"To unsubscribe from this group and stop receiving emails from it, send an email to golang-nuts+unsubscribe@googlegroups.com.")
			eq(t, "Quoted", m.Quoted, "On Fri, Dec 4, 2026 at 11:02\u202fPM Gopher Jones <gopher@example.net>\nwrote:\n\n"+
				"> How do people expose a lazy sequence from a generic container?\n>\n> > Earlier: channels are too slow for this.")
		}},
		{"forwarded-rfc822.eml", func(t *testing.T, m *Message) {
			eq(t, "Text", m.Text, "See the mail below, and the PDF.")
			if len(m.Attachments) != 2 {
				t.Fatalf("%d attachments, want 2: %+v", len(m.Attachments), m.Attachments)
			}
			eq(t, "rfc822 type", m.Attachments[0].ContentType, "message/rfc822")
			eq(t, "rfc822 name", m.Attachments[0].Filename, "message.eml")
			if !strings.Contains(string(m.Attachments[0].Data), "Message-ID: <inv-42@vendor.example>") {
				t.Errorf("rfc822 data = %q", m.Attachments[0].Data)
			}
			eq(t, "pdf name", m.Attachments[1].Filename, "Rechnung März.pdf")
			eq(t, "pdf Inline", m.Attachments[1].Inline, false)
			if !bytes.HasPrefix(m.Attachments[1].Data, []byte("%PDF-1.4")) {
				t.Errorf("pdf data = %q", m.Attachments[1].Data)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := parseFile(t, tt.file, ParseOptions{})
			tt.check(t, m)
			if len(m.Problems) > 0 {
				t.Errorf("Problems: %q", m.Problems)
			}
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !equalish(got, want) {
		t.Errorf("%s = %#v\n want %#v", what, got, want)
	}
}

func equalish(a, b any) bool { return reflect.DeepEqual(a, b) }
