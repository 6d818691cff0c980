package ingest

import (
	"cmp"
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCanonicalNumber(t *testing.T) {
	for _, tt := range []struct {
		text, want string
		number     bool
	}{
		{"100", "100", true}, {"100.0", "100", true}, {"1e2", "100", true}, {"1E+2", "100", true},
		{"1.00e2", "100", true}, {"100e0", "100", true}, {"10000e-2", "100", true}, {"0.1e3", "100", true},
		{"0", "0", true}, {"-0", "0", true}, {"-0.0", "0", true}, {"0e5", "0", true}, {"0.000", "0", true},
		{"0.50", "0.5", true}, {"-12.340", "-12.34", true}, {"99.99", "99.99", true},
		{"12345678901234567890", "12345678901234567890", true}, // every digit kept, unlike float64
		{"123456789012345678901", "123456789012345678901", true},
		{"1234567890123456789012", "1.234567890123456789012e+21", true},
		{"1e21", "1e+21", true}, {"1e20", "100000000000000000000", true},
		{"0.000001", "0.000001", true}, {"1e-7", "1e-7", true}, {"1.5e-7", "1.5e-7", true}, {"-2.5E-10", "-2.5e-10", true},
		{"1e999999999", "1e+999999999", true}, {"1e400", "1e+400", true}, {"-1E400", "-1e+400", true},
		// exponents of any size: one text per number, in the same form
		{"0e99999999999999999999", "0", true}, {"-0.000e-99999999999999999999", "0", true},
		{"1e999999999999", "1e+999999999999", true}, {"10e999999999998", "1e+999999999999", true},
		{"0.1e1000000000000", "1e+999999999999", true}, {"100e0999999999999", "1e+1000000000001", true},
		{"1e99999999999999999999", "1e+99999999999999999999", true},
		{"10e99999999999999999998", "1e+99999999999999999999", true},
		{"0.001e100000000000000000002", "1e+99999999999999999999", true},
		{"-1.50e-99999999999999999999", "-1.5e-99999999999999999999", true},
		{"15e-99999999999999999999", "1.5e-99999999999999999998", true},
		{"12345678901234567890e1000000000000000000000", "1.234567890123456789e+1000000000000000000019", true},
		{"1e000000000000000000000000002", "100", true}, {"1e-0000000000000000000000000", "1", true},
		// not JSON numbers: kept as they are
		{"", "", false}, {"-", "-", false}, {"+1", "+1", false}, {"01", "01", false}, {"1.", "1.", false},
		{".5", ".5", false}, {"1e", "1e", false}, {"1e+", "1e+", false}, {" 1", " 1", false}, {"1 ", "1 ", false},
		{"0x10", "0x10", false}, {"NaN", "NaN", false}, {"Infinity", "Infinity", false}, {"1_000", "1_000", false},
		{"1e99999999999999999999 ", "1e99999999999999999999 ", false}, {"100 EUR", "100 EUR", false},
	} {
		got, number := CanonicalNumber(tt.text)
		if got != tt.want || number != tt.number {
			t.Errorf("CanonicalNumber(%q) = %q, %v; want %q, %v", tt.text, got, number, tt.want, tt.number)
		}
	}
}

// TestCanonicalNumberOfFloats: a float64 written as encoding/json writes it, in Go's shortest
// exponent form and in plain decimals gives one text, which reads back as that float64.
func TestCanonicalNumberOfFloats(t *testing.T) {
	for _, f := range []float64{1, -1, 0.1, 100, 1.5, 123456.789, 1e21, 1e-7, 123e-20, 5e-324, math.MaxFloat64, 2.5e15, 0.000001234} {
		text, _ := json.Marshal(f)
		want, number := CanonicalNumber(string(text))
		if back, err := strconv.ParseFloat(want, 64); !number || err != nil || back != f {
			t.Errorf("%s → %q, %v: reads back as %v (%v)", text, want, number, back, err)
		}
		for _, other := range []string{strconv.FormatFloat(f, 'e', -1, 64), strconv.FormatFloat(f, 'E', -1, 64), strconv.FormatFloat(f, 'f', -1, 64)} {
			if got, _ := CanonicalNumber(other); got != want {
				t.Errorf("%s → %q, %s → %q", text, want, other, got)
			}
		}
	}
}

// TestDecodeNumbersAndNulls: a property's JSON number is stored in its canonical text however it
// was written, a string as sent; JSON null is no value and is listed in NullKeys (traits under
// TraitPrefix), unless another value of the name wins.
func TestDecodeNumbersAndNulls(t *testing.T) {
	for _, tt := range []struct {
		members, props, nulls string
	}{
		{`"properties":{"price":100}`, "price=100", ""},
		{`"properties":{"price":100.0}`, "price=100", ""},
		{`"properties":{"price":1e2}`, "price=100", ""},
		{`"properties":{"price":-0.0,"qty":2.50}`, "price=0 qty=2.5", ""},
		{`"properties":{"price":"100.0"}`, "price=100.0", ""},
		{`"properties":{"price":"1e2"}`, "price=1e2", ""},
		{`"properties":{"cart":{"total":1.0E+3},"items":[1.0,2]}`, "cart.total=1000 items=[1,2]", ""}, // an array: CanonicalArray
		{`"properties":{"coupon":null}`, "", "coupon"},
		{`"properties":{"coupon":null,"coupon":"SPRING"}`, "coupon=SPRING", ""},
		{`"traits":{"tier":null}`, "", "traits.tier"},
		{`"traits":{"tier":null},"context":{"traits":{"tier":"gold"}}`, "", "traits.tier"},
		{`"traits":{"tier":"gold"},"context":{"traits":{"tier":null}}`, "traits.tier=gold", ""},
		{`"context":{"traits":{"tier":null,"plan":{"seats":null}}}`, "", "traits.plan.seats traits.tier"},
	} {
		raw := `{"type":"identify","userId":"u",` + tt.members + `}`
		e, err := Decode([]byte(raw), "s", time.Now())
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var props []string
		for i, k := range e.PropertyKeys {
			props = append(props, k+"="+e.PropertyValues[i])
		}
		if got := strings.Join(props, " "); got != tt.props {
			t.Errorf("%s: properties %q, want %q", tt.members, got, tt.props)
		}
		if got := strings.Join(e.NullKeys, " "); got != tt.nulls || !slices.IsSorted(e.NullKeys) {
			t.Errorf("%s: null keys %q, want %q", tt.members, got, tt.nulls)
		}
	}
}

// FuzzCanonicalNumber: a text is a JSON number to CanonicalNumber exactly when encoding/json reads
// it as one, whatever the size of its exponent; its canonical text is a JSON number of the same
// float64 value, canonical again, and the text of the same number written with another exponent.
func FuzzCanonicalNumber(f *testing.F) {
	for _, s := range []string{"100", "100.0", "1e2", "-0.0", "0.5e-7", "12345678901234567890", "01", "1e", "NaN", "1e400",
		"0e99999999999999999999", "1e999999999999", "-1.5e-99999999999999999999", "1e0000000000000000000002"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var n json.Number
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		isJSON := dec.Decode(&n) == nil && string(n) == text // a JSON string or padding would differ
		canon, number := CanonicalNumber(text)
		if !number {
			if isJSON {
				t.Fatalf("%q: encoding/json reads a number, CanonicalNumber does not", text)
			}
			if canon != text {
				t.Fatalf("%q: not a number but changed to %q", text, canon)
			}
			return
		}
		if !isJSON {
			t.Fatalf("%q: not a JSON number to encoding/json, a number to CanonicalNumber", text)
		}
		again, ok := CanonicalNumber(canon)
		if !ok || again != canon {
			t.Fatalf("%q → %q → %q, %v", text, canon, again, ok)
		}
		// The same number times 10 with its exponent one less has the same text, for an exponent
		// of any size.
		if mant, exp, _ := strings.Cut(strings.ToLower(text), "e"); !strings.Contains(mant, ".") && strings.TrimPrefix(mant, "-") != "0" {
			e, ok := new(big.Int).SetString(cmp.Or(exp, "0"), 10)
			if !ok {
				t.Fatalf("%q: exponent %q", text, exp)
			}
			moved := mant + "0e" + e.Sub(e, big.NewInt(1)).String()
			if got, _ := CanonicalNumber(moved); got != canon {
				t.Fatalf("%q → %q, but %q → %q", text, canon, moved, got)
			}
		}
		a, errA := strconv.ParseFloat(text, 64)
		b, errB := strconv.ParseFloat(canon, 64)
		if (errA == nil) != (errB == nil) || a != b && !math.IsNaN(a) {
			t.Fatalf("%q (%v, %v) → %q (%v, %v)", text, a, errA, canon, b, errB)
		}
	})
}

// TestCanonicalArray: the one text of a JSON array, whatever its spacing, escapes, number
// spellings and member order; anything that is not one JSON array is left as it is.
func TestCanonicalArray(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, want string
		array      bool
	}{
		{`["a","b"]`, `["a","b"]`, true},
		{"[ \"a\" ,\n\t\"b\" ]", `["a","b"]`, true},
		{`["\u0061","\/","<&>","é","\u00e9"]`, `["a","/","<&>","é","é"]`, true},
		{`["tab\there","quote\"","back\\slash","\u0001"]`, `["tab\there","quote\"","back\\slash","\u0001"]`, true},
		{`[1e2, 100.0, -0.0, 0.50, 12345678901234567890]`, `[100,100,0,0.5,12345678901234567890]`, true},
		{`[{"y": 1, "x": [true, null]}, {}]`, `[{"x":[true,null],"y":1},{}]`, true},
		{`[{"a": 1, "a": 2}]`, `[{"a":2}]`, true}, // the last of repeated names, as everywhere
		{`[]`, `[]`, true},
		{`[ ]`, `[]`, true},
		{`[[[]]]`, `[[[]]]`, true},
		{`[1,]`, `[1,]`, false},
		{`[1] [2]`, `[1] [2]`, false},
		{`[1]x`, `[1]x`, false},
		{`{"a":[1]}`, `{"a":[1]}`, false},
		{` [1]`, ` [1]`, false},
		{`["a"`, `["a"`, false},
		{`100`, `100`, false},
		{``, ``, false},
	}
	for _, tt := range tests {
		got, array := CanonicalArray(tt.text)
		if got != tt.want || array != tt.array {
			t.Errorf("CanonicalArray(%q) = %q, %v; want %q, %v", tt.text, got, array, tt.want, tt.array)
		}
	}
}
