package store

import (
	"fmt"
	"testing"

	"github.com/waymark-dev/waymark/sessionize"
)

// TestItemNumbers: per key, the smallest and largest of the items that are numbers, by value
// (their order keys), texts that are no number left out, and no key for one without numbers.
func TestItemNumbers(t *testing.T) {
	keys := []string{"p.price", "p.sizes", "p.price", "p.sizes", "p.price", "p.name", "p.price"}
	values := []string{"10", "L", "-2.50", "40", "1e400", "9", "9.5"}
	gotKeys, mins, maxes := itemNumbers(keys, values)
	order := func(text string) string {
		d, _ := sessionize.ParseDecimal(text)
		return d.OrderKey()
	}
	want := fmt.Sprint([]string{"p.price", "p.sizes", "p.name"}, []string{order("-2.5"), order("40"), order("9")}, []string{order("1e400"), order("40"), order("9")})
	if got := fmt.Sprint(gotKeys, mins, maxes); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if k, lo, hi := itemNumbers(nil, nil); k == nil || lo == nil || hi == nil {
		t.Error("no items: empty arrays for ClickHouse, not nil")
	}
}
