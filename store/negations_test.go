package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// TestNegatedFiltersOfOneFieldAreApart: two steps that negate different values of one property
// are two conditions: [coupon!=A] and [coupon!=B] shared one, the first's (their Key left the
// negated values out).
func TestNegatedFiltersOfOneFieldAreApart(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	b, a := ev("u", "Order Completed", 0), ev("u", "Order Completed", 10)
	b.MessageID, a.MessageID = "b", "a"
	b.PropertyKeys, b.PropertyValues = []string{"coupon"}, []string{"B"}
	a.PropertyKeys, a.PropertyValues = []string{"coupon"}, []string{"A"}
	writeEvents(t, s, []ingest.Event{b, a})
	for _, tt := range []struct {
		steps []string
		want  string
	}{
		{[]string{"Order Completed[coupon!=A]", "Order Completed[coupon!=B]"}, "[1 1]"},
		{[]string{"Order Completed[coupon!=B]", "Order Completed[coupon!=A]"}, "[1 0]"},
		{[]string{"Order Completed[coupon!=A|C]", "Order Completed[coupon!=B|C]"}, "[1 1]"},
	} {
		res, err := s.Funnel(context.Background(), defaultMap(t), store.FunnelQuery{Steps: tt.steps, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(customers(res)); got != tt.want {
			t.Errorf("%q: %s, want %s", tt.steps, got, tt.want)
		}
	}
}
