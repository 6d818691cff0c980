package store

import (
	"cmp"
	"testing"

	"github.com/waymark-dev/waymark/sessionize"
)

// TestMagnitudeOrdersAsDecimalCompare: of two numbers of one sign, the byte order of their
// magnitudes is sessionize.Decimal.Compare's order (reversed for negatives), which is what
// boundSQL relies on; the texts reach both ends of the points a value can have.
func TestMagnitudeOrdersAsDecimalCompare(t *testing.T) {
	t.Parallel()
	texts := []string{"1", "9", "10", "100", "1e2", "99.99", "100.000000000000000001", "99.9999999999999999999",
		"100.5", "101", "1e3", "0.1", "0.10000000000000001", "0.09", "0.001", "0.000999999999999999999",
		"0.00100000000000000001", "1e-300", "1e-400", "1e308", "1e400", "1e999999999999", "10e999999999998",
		"1e99999999999999999999", "9e99999999999999999999", "1e-999999999999", "1e-99999999999999999999",
		"12345678901234567890", "1234567890123456789e-10", "5", "5.", ".5", "0.5"}
	var numbers []sessionize.Decimal
	for _, text := range texts {
		for _, sign := range []string{"", "-"} {
			d, ok := sessionize.ParseDecimal(sign + text)
			if !ok || d.Sign == 0 {
				t.Fatalf("%s%s is not a non-zero number", sign, text)
			}
			if m := magnitude(d); len(m) != 18+len(d.Digits) {
				t.Errorf("magnitude of %s%s is %q: its point is not 18 digits", sign, text, m)
			}
			numbers = append(numbers, d)
		}
	}
	for _, a := range numbers {
		for _, b := range numbers {
			if a.Sign != b.Sign {
				continue
			}
			if got, want := a.Sign*cmp.Compare(magnitude(a), magnitude(b)), a.Compare(b); got != want {
				t.Errorf("%+v against %+v: magnitudes order them %d, Compare %d", a, b, got, want)
			}
		}
	}
}
