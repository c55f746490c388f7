package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"

	"switchboard/tests/testbed"
)

// TestEmailContent: an HTML-only mail becomes readable text with its link
// kept; ISO-8859-1 and ISO-2022-JP mail (bodies and RFC 2047 subjects) is
// decoded; an attached file is stored and offered as an OOB URL that
// serves the same bytes; a file alice shares (an OOB URL, as clients send
// after an HTTP upload) is fetched and attached to the mail.
func TestEmailContent(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{extra: map[string]any{"attachments": map[string]any{"allow_private_fetch": true}}})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	carol := "carol@" + outsideDom
	to := "alice@" + mailDomain
	hdr := func(subject, id, ctype string) string {
		return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\nContent-Type: %s\r\n", carol, to, subject, id, ctype)
	}

	// HTML only.
	s.mustSend(carol, to, hdr("Newsletter", "h1@example.test", "text/html; charset=utf-8")+
		"\r\n<html><body><p>Hello <b>there</b>,</p><p>read <a href=\"https://example.org/news\">the news</a>.</p></body></html>\r\n")
	h := alice.Expect(t, bodyContains("Hello"), 20*time.Second)
	if strings.Contains(h.Body(), "<p>") || strings.Contains(h.Body(), "<b>") || !strings.Contains(h.Body(), "https://example.org/news") {
		t.Errorf("HTML-only mail: want text with the link kept, got %q", h.Body())
	}

	// ISO-8859-1.
	latin, _ := charmap.ISO8859_1.NewEncoder().String("Un café crème, s'il vous plaît")
	s.mustSend(carol, to, hdr("=?ISO-8859-1?Q?Caf=E9?=", "l1@example.test", "text/plain; charset=ISO-8859-1")+
		"Content-Transfer-Encoding: 8bit\r\n\r\n"+latin+"\r\n")
	l := alice.Expect(t, bodyContains("crème"), 20*time.Second)
	if !strings.Contains(l.Body(), "Un café crème, s'il vous plaît") || l.Text("subject") != "Café" {
		t.Errorf("ISO-8859-1: body %q subject %q", l.Body(), l.Text("subject"))
	}

	// ISO-2022-JP.
	jp, _ := japanese.ISO2022JP.NewEncoder().String("こんにちは、世界")
	subj, _ := japanese.ISO2022JP.NewEncoder().String("挨拶")
	s.mustSend(carol, to, hdr("=?ISO-2022-JP?B?"+base64.StdEncoding.EncodeToString([]byte(subj))+"?=", "j1@example.test", "text/plain; charset=ISO-2022-JP")+
		"Content-Transfer-Encoding: 7bit\r\n\r\n"+jp+"\r\n")
	j := alice.Expect(t, bodyContains("世界"), 20*time.Second)
	if !strings.Contains(j.Body(), "こんにちは、世界") || j.Text("subject") != "挨拶" {
		t.Errorf("ISO-2022-JP: body %q subject %q", j.Body(), j.Text("subject"))
	}

	// A mailing list: the list is the contact, the author's name the
	// first line, and a reply goes to the list.
	list := "list@" + outsideDom
	s.mustSend("dave@"+outsideDom, to, mail(`"Dave Author" <dave@example.test>`, list, "[list] Release", "ml1@example.test", "the release is out",
		"List-Id: Example list <list.example.test>", "List-Post: <mailto:"+list+">"))
	ml := alice.Expect(t, bodyContains("the release is out"), 20*time.Second)
	if ml.From != mailJID(list) || !strings.HasPrefix(ml.Body(), "Dave Author:") {
		t.Errorf("list mail: want it from the list with the author first, got %s", ml.XML)
	}
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='ml-r'><body>congratulations</body></message>`, mailJID(list)))
	lr := s.waitMailbox(list, "", 1, func(m string) bool { return strings.Contains(m, "congratulations") }, 20*time.Second)[0]
	if header(lr, "In-Reply-To") != "<ml1@example.test>" {
		t.Errorf("list reply In-Reply-To = %q", header(lr, "In-Reply-To"))
	}

	// An attachment in.
	data := make([]byte, 20000)
	_, _ = rand.Read(data)
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	tw, _ := w.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}})
	_, _ = tw.Write([]byte("here is the file\r\n"))
	aw, _ := w.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"},
		"Content-Disposition": {`attachment; filename="data.bin"`}, "Content-Transfer-Encoding": {"base64"}})
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		_, _ = aw.Write([]byte(enc[:76] + "\r\n"))
		enc = enc[76:]
	}
	_, _ = aw.Write([]byte(enc + "\r\n"))
	w.Close()
	s.mustSend(carol, to, hdr("A file", "a1@example.test", "multipart/mixed; boundary="+w.Boundary())+"\r\n"+mp.String())
	a := alice.Expect(t, func(st testbed.Stanza) bool { return st.Find("{jabber:x:oob}x") != nil }, 20*time.Second)
	u := a.Text("{jabber:x:oob}x/{jabber:x:oob}url")
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("fetching the attachment %q: %v (%s)", u, err, a.XML)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("the attachment URL served %d bytes with status %d, want the %d sent", len(got), resp.StatusCode, len(data))
	}

	// An attachment out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	file := []byte("%PDF-1.4 pretend this is a report\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(file)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/upload/abc/report.pdf"
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='f1'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, mailJID(carol), url, url))
	m := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "report.pdf") }, 20*time.Second)[0]
	msg, err := netmail.ReadMessage(strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	mr := multipart.NewReader(msg.Body, params["boundary"])
	found := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.FileName() == "report.pdf" {
			b, _ := io.ReadAll(p) // quoted-printable/base64 decoded by multipart? only QP; decode base64 here
			if p.Header.Get("Content-Transfer-Encoding") == "base64" {
				b, _ = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
			}
			found = bytes.Equal(b, file) && strings.HasPrefix(p.Header.Get("Content-Type"), "application/pdf")
		}
	}
	if !found {
		t.Errorf("the outbound mail lacks report.pdf with its bytes and type:\n%s", m)
	}
}
