package mapping

import "testing"

func TestParseCasemapping(t *testing.T) {
	for in, want := range map[string]Casemapping{
		"":               RFC1459,
		"rfc1459":        RFC1459,
		"RFC1459":        RFC1459,
		" rfc1459 ":      RFC1459,
		"ascii":          ASCII,
		"rfc1459-strict": RFC1459Strict,
		"strict-rfc1459": RFC1459Strict,
		"rfc7613":        ASCII,
		"precis":         ASCII,
		"something-new":  RFC1459,
	} {
		if got := ParseCasemapping(in); got != want {
			t.Errorf("ParseCasemapping(%q) = %v, want %v", in, got, want)
		}
	}
	var zero Casemapping
	if zero != RFC1459 {
		t.Errorf("the zero Casemapping is %v, want rfc1459", zero)
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct {
		cm       Casemapping
		in, want string
	}{
		{RFC1459, `[]\~`, "{}|^"},
		{RFC1459, "{}|^", "{}|^"},
		{RFC1459, `#Chan[Ops]\Foo~`, "#chan{ops}|foo^"},
		{RFC1459Strict, `[]\~`, "{}|~"},
		{RFC1459Strict, "^", "^"},
		{RFC1459Strict, "Nick[a]", "nick{a}"},
		{ASCII, `Nick[]\~`, `nick[]\~`},
		{ASCII, "ÄBC", "Äbc"}, // non-ASCII bytes are kept
		{RFC1459, "", ""},
		{Casemapping(42), "A[", "a{"}, // out of range: the default
	} {
		if got := tc.cm.Fold(tc.in); got != tc.want {
			t.Errorf("%v.Fold(%q) = %q, want %q", tc.cm, tc.in, got, tc.want)
		}
		if !tc.cm.Equal(tc.in, tc.want) {
			t.Errorf("%v.Equal(%q, %q) = false", tc.cm, tc.in, tc.want)
		}
	}
	if RFC1459Strict.Equal("~", "^") {
		t.Error(`rfc1459-strict holds "~" and "^" equal`)
	}
	if ASCII.Equal("[", "{") {
		t.Error(`ascii holds "[" and "{" equal`)
	}
	if RFC1459.Equal("ab", "abc") {
		t.Error("names of different lengths are equal")
	}
}

func TestFoldDoesNotAllocate(t *testing.T) {
	s := "#already{folded}|name^"
	if n := testing.AllocsPerRun(100, func() { _ = RFC1459.Fold(s) }); n != 0 {
		t.Errorf("Fold of a folded name allocates %v times", n)
	}
}

func BenchmarkFold(b *testing.B) {
	b.Run("folded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = RFC1459.Fold("#switchboard-dev{1}")
		}
	})
	b.Run("mixed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = RFC1459.Fold("#Switchboard-Dev[1]")
		}
	})
}

func TestCasemappingString(t *testing.T) {
	for _, cm := range []Casemapping{RFC1459, ASCII, RFC1459Strict} {
		if got := ParseCasemapping(cm.String()); got != cm {
			t.Errorf("ParseCasemapping(%q) = %v, want %v", cm.String(), got, cm)
		}
	}
}
