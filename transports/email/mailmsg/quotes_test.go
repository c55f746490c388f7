package mailmsg

import (
	"strings"
	"testing"
)

func TestFoldQuotes(t *testing.T) {
	gmail := "Sounds good, see you then.\n\nBob\n\nOn Mon, Dec 7, 2026 at 9:00 AM Alice <alice@mail.localhost> wrote:\n\n> Lunch at noon?\n>\n> > Are you free tomorrow?\n> >\n"
	tests := []struct {
		name                     string
		in                       string
		fold, drop, keep, quoted string
	}{
		{
			name:   "gmail top post",
			in:     gmail,
			fold:   "Sounds good, see you then.\n\nBob\n\nOn Mon, Dec 7, 2026 at 9:00 AM Alice <alice@mail.localhost> wrote:\n> Lunch at noon?\n>> Are you free tomorrow?",
			drop:   "Sounds good, see you then.\n\nBob",
			keep:   strings.TrimRight(gmail, "\n"),
			quoted: "On Mon, Dec 7, 2026 at 9:00 AM Alice <alice@mail.localhost> wrote:\n\n> Lunch at noon?\n>\n> > Are you free tomorrow?\n> >",
		},
		{
			name:   "no attribution, >> without spaces",
			in:     "Yes.\n>>Deep\n>Shallow",
			fold:   "Yes.\n\n>> Deep\n> Shallow",
			drop:   "Yes.",
			keep:   "Yes.\n>>Deep\n>Shallow",
			quoted: ">>Deep\n>Shallow",
		},
		{
			name: "inline reply is not history",
			in:   "> Are you coming?\nYes.\n> When?\nAt noon.",
			fold: "> Are you coming?\nYes.\n> When?\nAt noon.",
			drop: "> Are you coming?\nYes.\n> When?\nAt noon.",
			keep: "> Are you coming?\nYes.\n> When?\nAt noon.",
		},
		{
			name: "only a quote: nothing of the author's own, kept",
			in:   "> just a quote",
			fold: "> just a quote",
			drop: "> just a quote",
			keep: "> just a quote",
		},
		{
			name:   "signature above the quote is kept",
			in:     "Thanks!\n-- \nBob Smith\nACME\n\nLe lun. 7 déc. 2026 à 09:00, Alice <alice@mail.localhost> a écrit :\n> Bonjour",
			fold:   "Thanks!\n-- \nBob Smith\nACME\n\nLe lun. 7 déc. 2026 à 09:00, Alice <alice@mail.localhost> a écrit :\n> Bonjour",
			drop:   "Thanks!\n-- \nBob Smith\nACME",
			keep:   "Thanks!\n-- \nBob Smith\nACME\n\nLe lun. 7 déc. 2026 à 09:00, Alice <alice@mail.localhost> a écrit :\n> Bonjour",
			quoted: "Le lun. 7 déc. 2026 à 09:00, Alice <alice@mail.localhost> a écrit :\n> Bonjour",
		},
		{
			name:   "signature below the quote is kept",
			in:     "Agreed.\n\nAm 07.12.2026 um 09:00 schrieb Alice:\n> Hallo\n\n-- \nBob",
			fold:   "Agreed.\n\nAm 07.12.2026 um 09:00 schrieb Alice:\n> Hallo\n\n-- \nBob",
			drop:   "Agreed.\n\n-- \nBob",
			keep:   "Agreed.\n\nAm 07.12.2026 um 09:00 schrieb Alice:\n> Hallo\n\n-- \nBob",
			quoted: "Am 07.12.2026 um 09:00 schrieb Alice:\n> Hallo",
		},
		{
			name:   "outlook original message",
			in:     "See below.\n\n-----Original Message-----\nFrom: Alice <alice@mail.localhost>\nSent: Monday, December 7, 2026 9:00 AM\nSubject: Plan\n\nThe plan.",
			fold:   "See below.\n\n> -----Original Message-----\n> From: Alice <alice@mail.localhost>\n> Sent: Monday, December 7, 2026 9:00 AM\n> Subject: Plan\n> The plan.",
			drop:   "See below.",
			keep:   "See below.\n\n-----Original Message-----\nFrom: Alice <alice@mail.localhost>\nSent: Monday, December 7, 2026 9:00 AM\nSubject: Plan\n\nThe plan.",
			quoted: "-----Original Message-----\nFrom: Alice <alice@mail.localhost>\nSent: Monday, December 7, 2026 9:00 AM\nSubject: Plan\n\nThe plan.",
		},
		{
			name: "plain text without quotes",
			in:   "Hello\n\nworld\n\n",
			fold: "Hello\n\nworld", drop: "Hello\n\nworld", keep: "Hello\n\nworld",
		},
	}
	for _, tt := range tests {
		for mode, want := range map[string]string{"fold": tt.fold, "drop": tt.drop, "keep": tt.keep} {
			got, quoted := foldQuotes(tt.in, mode)
			if got != want {
				t.Errorf("%s, %s:\n got %q\nwant %q", tt.name, mode, got, want)
			}
			if quoted != tt.quoted {
				t.Errorf("%s, %s: Quoted\n got %q\nwant %q", tt.name, mode, quoted, tt.quoted)
			}
		}
	}
}

// TestParseFoldQuotesOption checks the option reaches foldQuotes and that a
// bad value is refused.
func TestParseFoldQuotesOption(t *testing.T) {
	raw := "From: bob@example.com\r\nSubject: x\r\n\r\nYes.\r\n\r\nOn Mon, Bob wrote:\r\n> Question?\r\n"
	for mode, want := range map[string]string{"": "Yes.\n\nOn Mon, Bob wrote:\n> Question?", "drop": "Yes.", "keep": "Yes.\n\nOn Mon, Bob wrote:\n> Question?"} {
		m, err := Parse(strings.NewReader(raw), ParseOptions{FoldQuotes: mode})
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != want || m.Quoted != "On Mon, Bob wrote:\n> Question?" {
			t.Errorf("mode %q: Text %q Quoted %q", mode, m.Text, m.Quoted)
		}
	}
	if _, err := Parse(strings.NewReader(raw), ParseOptions{FoldQuotes: "hide"}); err == nil {
		t.Error(`FoldQuotes "hide" accepted`)
	}
}
