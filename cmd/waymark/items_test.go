package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestListItemsThroughThePipeline sends store/testdata/list-items.jsonl (Segment's e-commerce
// Order Completed: products a list of objects, tags a list) through the collector, Kafka and
// serve, and asks the query API and the CLI: a filter on a list property matches when any item
// does, a dotted name reaching into the list's objects; a breakdown by such a name is refused
// saying why, and a name no event has is refused without telling a user who wrote dots to write
// dots (tester 33's F3).
func TestListItemsThroughThePipeline(t *testing.T) {
	t.Parallel()
	s := startServeWithLines(t, "../../store/testdata/list-items.jsonl")
	for _, tt := range []struct {
		step string
		want int64
	}{
		{"Order Completed[tags=sale]", 5},               // pa, pb, pd, pf by an item, pc's text
		{"Order Completed[products.category=hats]", 3},  // pa, pb, pf
		{"Order Completed[products.category!=hats]", 3}, // pc, pd, pe: no product is hats
		{"Order Completed[products.price>=10;tags=new]", 1},
		{`Order Completed[tags=\["sale"\]]`, 3}, // pb's and pf's whole list, pd's list in its list
	} {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?window=1h&steps="+url.QueryEscape(tt.step))
		var res struct{ Steps []struct{ Customers int64 } }
		if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || len(res.Steps) != 1 {
			t.Fatalf("%s: %d %s", tt.step, code, body)
		}
		if res.Steps[0].Customers != tt.want {
			t.Errorf("%s: %d customers, want %d", tt.step, res.Steps[0].Customers, tt.want)
		}
	}
	for _, tt := range []struct{ query, param, want string }{
		{"steps=" + url.QueryEscape("Order Completed") + "&breakdown=property:products.category", "breakdown",
			`breakdown: "products.category" names members of a list's items, and a breakdown groups by a property's whole value`},
		{"steps=" + url.QueryEscape("Order Completed[products.colour=red]"), "steps",
			`steps: no stored event has the property "products.colour", as a nested member or in a list's items`},
	} {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?window=1h&"+tt.query)
		var res struct{ Error, Param string }
		if err := json.Unmarshal([]byte(body), &res); code != 400 || err != nil || res.Param != tt.param || !strings.HasPrefix(res.Error, tt.want) {
			t.Errorf("%s: %d %s, want 400 naming %s: %s", tt.query, code, body, tt.param, tt.want)
		}
	}
	out := s.waymark(t, "funnel", "--steps", "Order Completed[products.category=hats]", "--window", "1h", "--json")
	var res struct{ Steps []struct{ Customers int64 } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Steps) != 1 || res.Steps[0].Customers != 3 {
		t.Errorf("waymark funnel --steps 'Order Completed[products.category=hats]' --json: %s (%v)", out, err)
	}
}
