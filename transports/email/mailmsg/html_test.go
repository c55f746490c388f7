package mailmsg

import (
	"strings"
	"testing"
)

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, html, want string }{
		{"apple mail divs",
			`<html><body dir="auto"><div>Hi Alice,</div><div><br></div><div>See you at <a href="https://maps.example/x">the café</a>.</div><div><br /></div><div>Carol</div></body></html>`,
			"Hi Alice,\n\nSee you at the café <https://maps.example/x>.\n\nCarol"},
		{"paragraphs with attributes",
			`<p class="MsoNormal" style="margin:0">First paragraph.</p><p class=MsoNormal>Second&nbsp;one &amp; more.</p>`,
			"First paragraph.\n\nSecond\u00a0one & more."},
		{"table cells and rows",
			`<table><tr><td>Item</td><td>Price</td></tr><tr><td>Mug</td><td>€9</td></tr></table>`,
			"Item Price\nMug €9"},
		{"gmail reply with nested blockquotes",
			`<div dir="ltr">Sounds good.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Dec 7, 2026 at 9:00 AM Alice &lt;<a href="mailto:alice@mail.localhost">alice@mail.localhost</a>&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">Lunch at noon?<br><blockquote>Are you free?</blockquote></blockquote></div>`,
			"Sounds good.\n\nOn Mon, Dec 7, 2026 at 9:00 AM Alice <alice@mail.localhost> wrote:\n\n> Lunch at noon?\n>> Are you free?"},
		{"markers in the input are not trusted",
			"a\uE000b\uE001c", "abc"},
		{"comments and styles dropped",
			`<style>.x{color:red}</style><!-- a > b -->Text<script>alert(1)</script>`, "Text"},
	}
	for _, tt := range tests {
		if got := htmlToText(tt.html); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestHTMLOnlyReplyFolds(t *testing.T) {
	raw := "From: bob@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<div>Yes, noon works.</div><div class="gmail_quote">On Mon, Alice wrote:<br><blockquote type="cite">Lunch at noon?</blockquote></div>`
	m, err := Parse(strings.NewReader(raw), ParseOptions{FoldQuotes: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Text", m.Text, "Yes, noon works.")
	eq(t, "Quoted", m.Quoted, "On Mon, Alice wrote:\n\n> Lunch at noon?")
	eq(t, "HTMLOnly", m.HTMLOnly, true)
}
