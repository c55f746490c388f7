package sms

import "unicode/utf8"

// Encoding is how a text travels over SMS.
type Encoding string

const (
	// GSM7 is the GSM 03.38 7-bit default alphabet (with its extension
	// table, whose characters take two septets).
	GSM7 Encoding = "GSM-7"
	// UCS2 is UTF-16 without surrogate awareness on old phones: used as
	// soon as one character is outside GSM-7.
	UCS2 Encoding = "UCS-2"
)

// gsmBasic is the GSM 03.38 basic character set.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the GSM 03.38 extension table (escape + character: two
// septets each).
const gsmExtension = "\f^{}\\[~]|€"

var gsmBasicSet, gsmExtSet = runeSet(gsmBasic), runeSet(gsmExtension)

func runeSet(s string) map[rune]bool {
	m := make(map[rune]bool, utf8.RuneCountInString(s))
	for _, r := range s {
		m[r] = true
	}
	delete(m, '\x1b') // the escape itself is not a character users type
	return m
}

// Segments is the encoding and size of a text.
type Segments struct {
	Encoding Encoding
	// Units is the length in septets (GSM-7) or UTF-16 code units (UCS-2).
	Units int
	// Count is the number of SMS segments the text is sent as (0 for an
	// empty text).
	Count int
}

// CountSegments computes the encoding (GSM-7 when every character is in
// the GSM-7 alphabet or its extension table, otherwise UCS-2) and the
// number of segments: one segment holds 160 septets or 70 UCS-2 units;
// a longer text is split into parts of 153 septets or 67 units (the rest
// of each part is the concatenation header). A character from the
// extension table is never split from its escape, and a character outside
// the BMP (two UTF-16 units) is never split in two.
func CountSegments(text string) Segments {
	gsm := true
	for _, r := range text {
		if !gsmBasicSet[r] && !gsmExtSet[r] {
			gsm = false
			break
		}
	}
	if gsm {
		units := 0
		for _, r := range text {
			units++
			if gsmExtSet[r] {
				units++
			}
		}
		s := Segments{Encoding: GSM7, Units: units}
		switch {
		case units == 0:
		case units <= 160:
			s.Count = 1
		default:
			s.Count = split(text, 153, func(r rune) int {
				if gsmExtSet[r] {
					return 2
				}
				return 1
			})
		}
		return s
	}
	units := 0
	for _, r := range text {
		units += utf16Len(r)
	}
	s := Segments{Encoding: UCS2, Units: units}
	switch {
	case units == 0:
	case units <= 70:
		s.Count = 1
	default:
		s.Count = split(text, 67, utf16Len)
	}
	return s
}

func utf16Len(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// split counts the parts of at most per units each, never cutting a
// character.
func split(text string, per int, size func(rune) int) int {
	parts, used := 1, 0
	for _, r := range text {
		n := size(r)
		if used+n > per {
			parts++
			used = 0
		}
		used += n
	}
	return parts
}
