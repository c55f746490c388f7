package sms

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCountSegments(t *testing.T) {
	for _, c := range []struct {
		text  string
		enc   Encoding
		units int
		count int
	}{
		{"", GSM7, 0, 0},
		{"hello", GSM7, 5, 1},
		{strings.Repeat("a", 160), GSM7, 160, 1},
		{strings.Repeat("a", 161), GSM7, 161, 2},
		{strings.Repeat("a", 306), GSM7, 306, 2},
		{strings.Repeat("a", 307), GSM7, 307, 3},
		{"price: 5€", GSM7, 10, 1},                          // € is in the extension table: two septets
		{strings.Repeat("€", 80), GSM7, 160, 1},             // exactly 160 septets
		{strings.Repeat("€", 81), GSM7, 162, 2},             // split: never between escape and character
		{"a" + strings.Repeat("[", 76) + "a", GSM7, 154, 1}, // 154 septets
		{"ÄÖÑÜäöñüàèéùìòÇØøÅåÆæßÉ¿¡§£¥", GSM7, 28, 1},
		{"héllo ✓", UCS2, 7, 1},
		{strings.Repeat("ж", 70), UCS2, 70, 1},
		{strings.Repeat("ж", 71), UCS2, 71, 2},
		{strings.Repeat("ж", 134), UCS2, 134, 2},
		{strings.Repeat("ж", 135), UCS2, 135, 3},
		{"😀", UCS2, 2, 1}, // outside the BMP: two UTF-16 units
		{strings.Repeat("😀", 35), UCS2, 70, 1},
		{strings.Repeat("😀", 36), UCS2, 72, 2},
		{"a" + strings.Repeat("😀", 33) + "b", UCS2, 68, 1},
		{"a" + strings.Repeat("😀", 34), UCS2, 69, 1},
		{strings.Repeat("a", 66) + strings.Repeat("😀", 2), UCS2, 70, 1},
		{strings.Repeat("a", 66) + strings.Repeat("😀", 3), UCS2, 72, 2},
		{strings.Repeat("a", 66) + "😀" + strings.Repeat("b", 70), UCS2, 138, 3}, // 66+... the pair is not split
	} {
		got := CountSegments(c.text)
		if got.Encoding != c.enc || got.Units != c.units || got.Count != c.count {
			t.Errorf("CountSegments(%.20q… %d runes) = %+v, want %s %d units %d segments", c.text, utf8.RuneCountInString(c.text), got, c.enc, c.units, c.count)
		}
	}
}

func FuzzSegments(f *testing.F) {
	for _, s := range []string{"", "hello", "€uro", "ж", "😀x", strings.Repeat("a", 200), "a\x1bb", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := CountSegments(s)
		if s == "" {
			if got.Count != 0 {
				t.Fatalf("empty text: %+v", got)
			}
			return
		}
		if got.Count < 1 || got.Units < 1 {
			t.Fatalf("%q: %+v", s, got)
		}
		single, per := 160, 153
		if got.Encoding == UCS2 {
			single, per = 70, 67
		}
		if got.Units <= single && got.Count != 1 {
			t.Fatalf("%q fits one segment: %+v", s, got)
		}
		if got.Units > single && (got.Count < (got.Units+per-1)/per || got.Count > got.Units) {
			t.Fatalf("%q: %+v is not a plausible split", s, got)
		}
		if got.Encoding == GSM7 {
			for _, r := range s {
				if !gsmBasicSet[r] && !gsmExtSet[r] {
					t.Fatalf("%q: GSM-7 with %q outside it", s, r)
				}
			}
		}
	})
}
