package sessionize

import (
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// TestConditionsMatchListItems: a filter on a list property matches when its whole text or any
// of its items does, each by its operator's rule, and a dotted name reaches into the objects in
// a list; a negation passes when neither the text nor any item equals. The event is Segment's
// e-commerce Order Completed.
func TestConditionsMatchListItems(t *testing.T) {
	raw := `{"type":"track","event":"Order Completed","userId":"u","properties":{"revenue":20,` +
		`"products":[{"product_id":"p1","category":"shoes","price":10},{"product_id":"p2","category":"hats","price":-2.5,"sizes":[40,"L"]}],` +
		`"tags":["sale","new"],"note":"sale"}}`
	e, err := ingest.Decode([]byte(raw), "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field, op string
		values    []string
		want      bool
	}{
		{"tags", "equals", []string{"sale"}, true},
		{"tags", "equals", []string{"old"}, false},
		{"tags", "equals", []string{`["sale", "new"]`}, true}, // the whole text, as before
		{"tags", "equals", []string{`["new","sale"]`}, false},
		{"tags", "one_of", []string{"old", "new"}, true},
		{"tags", "not_equals", []string{"sale"}, false}, // an item equals
		{"tags", "not_equals", []string{"old"}, true},
		{"tags", "not_equals", []string{`["sale","new"]`}, false},
		{"tags", "not_one_of", []string{"old", "new"}, false},
		{"tags", "prefix", []string{"ne"}, true},
		{"tags", "prefix", []string{`["sa`}, true},
		{"tags", "regexp", []string{"^sale$"}, true},
		{"tags", "regexp", []string{`"new"\]$`}, true},
		{"tags", "regexp", []string{"^old"}, false},
		{"products.category", "equals", []string{"hats"}, true},
		{"products.category", "equals", []string{"socks"}, false},
		{"products.category", "not_equals", []string{"hats"}, false},
		{"products.category", "not_equals", []string{"socks"}, true},
		{"products.price", "gt", []string{"9"}, true},
		{"products.price", "gt", []string{"10"}, false},
		{"products.price", "gte", []string{"10"}, true},
		{"products.price", "lt", []string{"-2"}, true},
		{"products.price", "lt", []string{"-2.5"}, false},
		{"products.price", "equals", []string{"1e1"}, true}, // a number in any writing
		{"products.sizes", "equals", []string{"L"}, true},   // a list in a list
		{"products.sizes", "equals", []string{`[40,"L"]`}, true},
		{"products.sizes", "gte", []string{"40"}, true},
		{"products", "equals", []string{"shoes"}, false}, // an object's members are under their names
		{"tags", "gt", []string{"0"}, false},
		{"note", "equals", []string{"sale"}, true}, // not a list: as before
		{"missing", "not_equals", []string{"x"}, true},
		{"missing", "equals", []string{"x"}, false},
	}
	for _, tt := range tests {
		c, err := NewCondition(tt.field, tt.op, tt.values...)
		if err != nil {
			t.Fatalf("%s %s %q: %v", tt.field, tt.op, tt.values, err)
		}
		if got := c.Matches(&e); got != tt.want {
			t.Errorf("%s %s %q: %v, want %v (items %q %q)", tt.field, tt.op, tt.values, got, tt.want, e.ItemKeys, e.ItemValues)
		}
	}
}

// TestOrderKeyOrdersAsCompare: the byte order of Decimal.OrderKey is Decimal.Compare's, which a
// bound on list items relies on in SQL.
func TestOrderKeyOrdersAsCompare(t *testing.T) {
	texts := []string{"0", "-0", "1", "10", "100", "1e2", "0.1", "0.15", "0.10", "-0.1", "-0.15", "-1", "-10", "-100", "9",
		"99", "-9", "-99", "1e400", "-1e400", "1e-400", "-1e-400", "12345678901234567890", "9007199254740993",
		"-9007199254740993", "-9007199254740992", "5", "-5", "1e999999999999", "-1e99999999999999999999", "2.5", "-2.5", "25"}
	for _, a := range texts {
		for _, b := range texts {
			da, _ := ParseDecimal(a)
			db, _ := ParseDecimal(b)
			if da.OrderKey() == "" {
				t.Errorf("%s: an empty order key, which the store keeps for an item that is no number", a)
			}
			if got, want := strings.Compare(da.OrderKey(), db.OrderKey()), da.Compare(db); got != want {
				t.Errorf("%s vs %s: keys %q %q compare %d, numbers %d", a, b, da.OrderKey(), db.OrderKey(), got, want)
			}
		}
	}
}

// TestDeviceTypeCondition is tester 35's F3: device.type tests the device type Waymark reads
// (a crawler's agent is a bot), an event without one passes not_equals, and a property of that
// name is properties.device.type.
func TestDeviceTypeCondition(t *testing.T) {
	decode := func(raw string) ingest.Event {
		e, err := ingest.Decode([]byte(raw), "s", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	crawler := decode(`{"type":"page","userId":"u","context":{"userAgent":"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}}`)
	phone := decode(`{"type":"track","event":"E","userId":"u","properties":{"device":{"type":"bot"}},"context":{"device":{"type":"ios"}}}`)
	unknown := decode(`{"type":"track","event":"E","userId":"u"}`)
	for _, tt := range []struct {
		field, op string
		values    []string
		want      [3]bool // crawler, phone, unknown
	}{
		{"device.type", "not_equals", []string{"bot"}, [3]bool{false, true, true}},
		{"device.type", "equals", []string{"bot"}, [3]bool{true, false, false}},
		{"device.type", "one_of", []string{"mobile", "tablet"}, [3]bool{false, true, false}},
		{"device.type", "not_one_of", []string{"bot", "mobile"}, [3]bool{false, false, true}},
		{"device.type", "prefix", []string{"mob"}, [3]bool{false, true, false}},
		{"device.type", "regexp", []string{"^(bot|mobile)$"}, [3]bool{true, true, false}},
		{"properties.device.type", "equals", []string{"bot"}, [3]bool{false, true, false}},
	} {
		c, err := NewCondition(tt.field, tt.op, tt.values...)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range []ingest.Event{crawler, phone, unknown} {
			if got := c.Matches(&e); got != tt.want[i] {
				t.Errorf("%s %s %q on event %d: %v, want %v", tt.field, tt.op, tt.values, i, got, tt.want[i])
			}
		}
	}
}
