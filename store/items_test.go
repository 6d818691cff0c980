package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// storeListItems decodes testdata/list-items.jsonl (Segment's e-commerce Order Completed, its
// products a list of objects, and lists of tags) as the consumer does and stores it, and returns
// a store per place queries can match on the test engine, with its events. The event that says
// stored_before is stored as events were before list items were (schema version 17): without
// them.
func storeListItems(t *testing.T) ([]matchingPath, []ingest.Event) {
	t.Helper()
	return storeJSONLines(t, "testdata/list-items.jsonl", func(e *ingest.Event) {
		if _, before := e.Property("stored_before"); before {
			e.ItemKeys, e.ItemValues = nil, nil
		}
	})
}

// TestListItemsMatchByElement: a filter on a list property matches an event when the list's
// whole text or any of its items does, by the operator's rule, a dotted name reaching into the
// objects of a list (products.category), in ClickHouse and in Go alike; a negation passes when
// no item equals. Events stored before items were keep matching by the whole text only
// (tester 33's F3).
func TestListItemsMatchByElement(t *testing.T) {
	t.Parallel()
	paths, events := storeListItems(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { listItemsMatch(t, path.s, events) })
	}
}

func listItemsMatch(t *testing.T, s *store.Store, events []ingest.Event) {
	for _, tt := range []struct {
		field, op string
		values    []string
		want      int64
	}{
		{"tags", "=", []string{"sale"}, 4},            // pa, pb, pd by an item (pd's of its list in the list), pc's text; not pf, stored before
		{"tags", "=", []string{`["sale"]`}, 3},        // pb's and pf's whole text, pd's item
		{"tags", "=", []string{`["sale", "new"]`}, 1}, // pa's whole text, as before
		{"tags", "=", []string{"new", "x"}, 2},        // pa, pd
		{"tags", "!=", []string{"sale"}, 2},           // pe without tags, pf stored before
		{"tags", "!=", []string{"sale", "x"}, 2},      // pe, pf
		{"tags", "^=", []string{"sa"}, 4},             // pa, pb, pc, pd
		{"tags", "~=", []string{"^new$"}, 1},          // pa
		// Flags and escapes that ClickHouse 18.16 read wrongly (tester 34's F1): engineRegexp.
		{"tags", "~=", []string{"(?i)^SALE$"}, 4},              // pa, pb, pc, pd, as tags=sale
		{"tags", "~=", []string{`^s\x61le$`}, 4},               // the same
		{"tags", "~=", []string{`^s\pLle$`}, 4},                // the same
		{"tags", "~=", []string{"^s(?i)ALE$"}, 4},              // the same
		{"products.category", "~=", []string{"(?i)^HATS$"}, 2}, // pa, pb
		{"products.category", "=", []string{"hats"}, 2},        // pa, pb; pe's is product.category, pf's stored before
		{"products.category", "!=", []string{"hats"}, 4},       // pc, pd, pe, pf
		{"products.category", "~=", []string{"^[Hh]ats"}, 3},   // pa, pb, pc
		{"products.price", ">", []string{"9"}, 2},              // pa, pc's 1e400
		{"products.price", "<", []string{"0"}, 1},              // pc's string "-2.50"
		{"products.price", "<=", []string{"-2.5"}, 1},          // pc
		{"products.price", ">=", []string{"1e300"}, 1},         // pc's 1e400, exactly
		{"products.price", "=", []string{"10.0"}, 1},           // pa, the number in any writing
		{"products.sizes", "=", []string{"L"}, 1},              // pc: a list in a list
		{"products.sizes", ">=", []string{"40"}, 1},            // pc
		{"products.sizes", "=", []string{`[40, "L"]`}, 1},      // pc: the inner list's text
		{"product.category", "=", []string{"hats"}, 1},         // pe: a nested object, as before
	} {
		step, inClickHouse, inGo := countFiltered(t, s, events, "Order Completed", tt.field, tt.op, tt.values...)
		if inClickHouse != tt.want || inGo != tt.want {
			t.Errorf("%s: %d in ClickHouse, %d in Go, want %d", step, inClickHouse, inGo, tt.want)
		}
	}
	ctx := context.Background()
	for _, tt := range []struct {
		q       store.FunnelQuery
		param   string
		wantErr string
	}{
		{store.FunnelQuery{Steps: []string{"Order Completed[products.colour=red]"}}, "steps",
			`steps: no stored event has the property "products.colour", as a nested member or in a list's items`},
		{store.FunnelQuery{Steps: []string{"Order Completed[colour=red]"}}, "steps",
			`steps: no stored event has the property "colour" (nested properties, and members of a list's items, are named with dots: product.category)`},
		{store.FunnelQuery{Steps: []string{"Order Completed"}, Breakdown: store.Breakdown{By: "property", Name: "products.category"}}, "breakdown",
			`breakdown: "products.category" names members of a list's items, and a breakdown groups by a property's whole value`},
		// pg's Product Viewed has products.price as a property, the orders as their list's items
		// (tester 34's F2): grouped by it, every order would be under none.
		{store.FunnelQuery{Steps: []string{"Order Completed"}, Breakdown: store.Breakdown{By: "property", Name: "products.price"}}, "breakdown",
			`breakdown: "products.price" names members of a list's items, and a breakdown groups by a property's whole value`},
	} {
		tt.q.Window = time.Hour
		_, err := s.Funnel(ctx, defaultMap(t), tt.q)
		if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), tt.wantErr) {
			t.Errorf("%+v: error %v, want %s", tt.q, err, tt.wantErr)
		}
	}
	if got, want := propertyBreakdown(t, s, "Order Completed", "tags"), `["sale"]=2 ["sale","new"]=1 [["sale"],"x"]=1 sale=1 <none>=1`; got != want {
		t.Errorf("breakdown property:tags: %s\nwant %s", got, want)
	}
}
