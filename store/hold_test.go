package store_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// setProperty sets e's property key to value, keeping its keys sorted (ingest.Event.Property
// searches them), in slices of its own: a copy of a message shares its original's.
func setProperty(e *ingest.Event, key, value string) {
	keys, values := slices.Clone(e.PropertyKeys), slices.Clone(e.PropertyValues)
	i, found := slices.BinarySearch(keys, key)
	if found {
		values[i] = value
	} else {
		keys, values = slices.Insert(keys, i, key), slices.Insert(values, i, value)
	}
	e.PropertyKeys, e.PropertyValues = keys, values
}

// generateHoldData is generateRefData with a product_id on the product events (views, cart adds,
// orders, coupon removals) of one of three products, or none on about one in six: the property
// a funnel holds constant. Half the orders list theirs in products instead, as Segment's
// e-commerce spec has them (one or two products, or one twice; tester 43's F1). A message's
// copies carry the same products.
func generateHoldData(seed uint64, persons int) refData {
	d := generateRefData(seed, persons)
	for i := range d.events {
		e := &d.events[i]
		switch e.Event {
		case "Product Viewed", "Product Added", "Order Completed", "Coupon Removed":
		default:
			continue
		}
		h := fnv.New32a()
		fmt.Fprint(h, seed, e.MessageID)
		sum := h.Sum32()
		n := sum % 6
		switch {
		case n == 5:
		case e.Event == "Order Completed" && sum/6%2 == 0:
			// Beside the items' categories the reference data gives orders.
			e.ItemKeys, e.ItemValues = slices.Clone(e.ItemKeys), slices.Clone(e.ItemValues)
			for _, id := range []string{fmt.Sprintf("p%d", n%3), fmt.Sprintf("p%d", sum/12%3)}[:1+sum/36%2] {
				e.ItemKeys = append(e.ItemKeys, "products.price", "products.product_id")
				e.ItemValues = append(e.ItemValues, "10", id)
			}
		default:
			setProperty(e, "product_id", fmt.Sprintf("p%d", n%3))
		}
	}
	return d
}

// storedDataPaths writes d into a store of its own and returns a store per place funnels can
// match on the test engine, as storedRefDataPaths does.
func storedDataPaths(t testing.TB, d refData) []matchingPath {
	t.Helper()
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	d.write(t, s)
	return append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...)
}

// TestFunnelHoldAgreesWithTheReference holds product_id constant in funnels of every mode, with
// exclusions, sessions, a range, stages and breakdowns, matched in Waymark and, on an engine with
// the waymark_funnel UDF, in ClickHouse, against the brute-force reference.
func TestFunnelHoldAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d := generateHoldData(17, 250)
	paths := storedDataPaths(t, d)
	jm := defaultMap(t)
	const (
		view, add, order, coupon = "Product Viewed", "Product Added", "Order Completed", "Coupon Removed"
	)
	day := 24 * time.Hour
	held := "product_id"
	tests := []store.FunnelQuery{
		{Steps: []string{view, add, order}, Window: day},
		{Steps: []string{view, view, order}, Window: 7 * day}, // repeated steps: distinct events of one product
		{Steps: []string{view, add, order}, Window: 30 * time.Minute},
		{Steps: []string{view, add, order}, Window: day, Mode: store.ModeStrict},
		{Steps: []string{view, add, order}, Window: day, Mode: store.ModeAny},
		{Steps: []string{view, add, order}, Window: day, Exclusions: []store.Exclusion{{Step: coupon, After: 1, Before: 3}}},
		{Steps: []string{view, add, order}, Window: day, CountBy: store.CountSessions},
		{Steps: []string{view, add, order}, Window: day, From: t0.Add(10 * day), To: t0.Add(40 * day)},
		{Steps: []string{"awareness", "consideration", "conversion", "loyalty"}, Window: 30 * day},
		{Steps: []string{view + "[category=shoes]", order}, Window: 7 * day},
		{Steps: []string{view, add, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "property", Name: held}},
		{Steps: []string{view, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "property", Name: "category"}},
		{Steps: []string{view, add, order}, Window: day, Breakdown: store.Breakdown{By: "channel"}},
		{Steps: []string{add, order}, Window: day, Mode: store.ModeAny, Breakdown: store.Breakdown{By: "campaign"}, CountBy: store.CountSessions},
		{Steps: []string{view, add, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "trait", Name: "customer_type"}},
	}
	wants := make([]string, len(tests))
	for i := range tests {
		tests[i].Hold = held
		q := tests[i]
		q.Mode = cmp.Or(q.Mode, store.ModeOrdered)
		wants[i] = refFunnel(jm, d, q)
		q.Hold = ""
		if i == 0 && refFunnel(jm, d, q) == wants[i] {
			t.Fatalf("holding %s changes nothing in %+v: the data tests nothing", held, q)
		}
	}
	for _, p := range paths {
		for i, q := range tests {
			t.Run(fmt.Sprintf("%s/%d", p.name, i), func(t *testing.T) {
				res, err := p.s.Funnel(context.Background(), jm, q)
				if err != nil {
					t.Fatal(err)
				}
				if got := funnelText(res); got != wants[i] {
					t.Errorf("%+v\ngot:\n%s\nwant:\n%s", q, got, wants[i])
				}
				if res.Hold != "property:"+held {
					t.Errorf("hold %q, want property:%s", res.Hold, held)
				}
			})
		}
	}
}

// TestDropoffHoldAgreesWithTheReference: a drop-off takes the funnel's hold, so the units that
// dropped off are those the held funnel counts, and each drops off after its held value's step
// event.
func TestDropoffHoldAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d := generateHoldData(19, 250)
	paths := storedDataPaths(t, d)
	jm := defaultMap(t)
	steps := []string{"Product Viewed", "Product Added", "Order Completed"}
	for _, q := range []store.DropoffQuery{
		{Funnel: store.FunnelQuery{Steps: steps, Window: 24 * time.Hour, Hold: "product_id"}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: steps, Window: 24 * time.Hour, Hold: "product_id"}, Step: 2},
		{Funnel: store.FunnelQuery{Steps: steps, Window: 24 * time.Hour, Hold: "product_id", Mode: store.ModeStrict}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: steps, Window: 24 * time.Hour, Hold: "product_id", Mode: store.ModeAny}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: steps, Window: 24 * time.Hour, Hold: "product_id", CountBy: store.CountSessions}, Step: 1},
	} {
		q.Limit, q.IDsLimit = 1000, 1000
		ref := q.Funnel
		ref.Mode = cmp.Or(ref.Mode, store.ModeOrdered)
		want := refDropoff(jm, d, ref, q.Step)
		for _, path := range paths {
			res, err := path.s.Dropoff(context.Background(), jm, q)
			if err != nil {
				t.Fatal(path.name, err)
			}
			got := strings.Join([]string{rankedText(res.LastEvents), rankedText(res.LastLocations), rankedText(res.LastChannels),
				rankedText(res.NextEvents), strings.Join(res.Persons, ",")}, "\n")
			if got != want {
				t.Errorf("%s: %+v\ngot:\n%s\nwant:\n%s", path.name, q, got, want)
			}
			if res.Dropped == 0 {
				t.Errorf("%s: %+v: nobody dropped off: the case tests nothing", path.name, q)
			}
			if want := "property:" + store.EscapeStep(q.Funnel.Hold); res.Hold != want {
				t.Errorf("%s: %+v: the answer holds %q, want %q", path.name, q, res.Hold, want)
			}
		}
	}
}

// TestFunnelHoldRule states the rule on small cases: steps of one value only, an event without
// the property takes no step, a person of several values counts once at the furthest step any
// one value reaches, and exclusions and strict order are not held.
func TestFunnelHoldRule(t *testing.T) {
	t.Parallel()
	type ev struct {
		name, product string // product "": no product_id; "[p1 p2]": products listing them (and a sku each)
		minute        int
	}
	people := map[string][]ev{
		"same":      {{"Product Viewed", "p1", 0}, {"Product Added", "p1", 1}, {"Order Completed", "p1", 2}},
		"switched":  {{"Product Viewed", "p1", 0}, {"Product Added", "p2", 1}, {"Order Completed", "p2", 2}},
		"unheld":    {{"Product Viewed", "p1", 0}, {"Product Added", "", 1}, {"Order Completed", "p1", 2}},
		"two":       {{"Product Viewed", "p1", 0}, {"Product Viewed", "p2", 1}, {"Product Added", "p2", 2}, {"Product Added", "p1", 3}, {"Order Completed", "p2", 4}},
		"excluded":  {{"Product Viewed", "p1", 0}, {"Coupon Removed", "p2", 1}, {"Product Added", "p1", 2}, {"Order Completed", "p1", 3}},
		"noproduct": {{"Product Viewed", "", 0}, {"Product Added", "", 1}, {"Order Completed", "", 2}},
		// Orders as Segment's e-commerce spec sends them, their products in products (tester 43's F1).
		"listed":      {{"Product Viewed", "p1", 0}, {"Product Added", "p1", 1}, {"Order Completed", "[p1]", 2}},
		"listedtwo":   {{"Product Viewed", "p2", 0}, {"Product Added", "p2", 1}, {"Order Completed", "[p1 p2]", 2}},
		"listedother": {{"Product Viewed", "p1", 0}, {"Product Added", "p1", 1}, {"Order Completed", "[p3]", 2}},
		"listedtwice": {{"Product Viewed", "p1", 0}, {"Product Added", "p1", 1}, {"Order Completed", "[p1 p1]", 2}},
		// An empty product_id beside the products is no value: the products' are read (tester 44's F2).
		"listedempty": {{"Product Viewed", "p1", 0}, {"Product Added", "p1", 1}, {"Order Completed", "=[p1]", 2}},
	}
	var d refData
	for _, person := range slices.Sorted(maps.Keys(people)) {
		for i, e := range people[person] {
			ie := ingest.Event{Source: "ref", Type: "track", Event: e.name, UserID: person, MessageID: fmt.Sprintf("%s-%d", person, i),
				Timestamp: t0.Add(time.Duration(e.minute) * time.Minute), ReceivedAt: t0, Raw: []byte(`{}`), Seq: int64(len(d.events) + 1)}
			if list, ok := strings.CutPrefix(e.product, "=["); ok {
				setProperty(&ie, "product_id", "")
				e.product = "[" + list
			}
			if list, ok := strings.CutPrefix(e.product, "["); ok {
				for _, id := range strings.Fields(strings.TrimSuffix(list, "]")) {
					ie.ItemKeys = append(ie.ItemKeys, "products.product_id", "products.sku")
					ie.ItemValues = append(ie.ItemValues, id, "sku-"+id)
				}
			} else if e.product != "" {
				setProperty(&ie, "product_id", e.product)
			}
			d.events, d.channels = append(d.events, ie), append(d.channels, "")
		}
	}
	d.sessions = []sessionize.Session{}
	paths := storedDataPaths(t, d)
	jm := defaultMap(t)
	steps := []string{"Product Viewed", "Product Added", "Order Completed"}
	for _, tt := range []struct {
		name string
		q    store.FunnelQuery
		want []int64 // customers per step
	}{
		// not held: everyone converts
		{"not held", store.FunnelQuery{Steps: steps, Window: time.Hour}, []int64{11, 11, 11}},
		// held: same, two (p2) and excluded convert; switched and unheld stop at step 1;
		// noproduct has no product to take a step with. listed, listedtwo (p2) and listedtwice
		// convert with an order listing the product; listedother's lists another.
		{"held", store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "product_id"}, []int64{10, 8, 7}},
		// another value's excluded event is between the steps all the same
		{"held, excluded", store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "product_id",
			Exclusions: []store.Exclusion{{Step: "Coupon Removed", After: 1, Before: 2}}}, []int64{10, 7, 6}},
		// strict: two's p1 add is between its p2 add and p2 order, excluded's coupon (of p2)
		// between its p1 view and add
		{"held, strict", store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "product_id", Mode: store.ModeStrict}, []int64{10, 7, 5}},
		// sku is only ever in products: the orders alone have it, so none take step 1
		{"held sku", store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "sku"}, []int64{0, 0, 0}},
		{"held sku, orders", store.FunnelQuery{Steps: []string{"Order Completed"}, Window: time.Hour, Hold: "sku"}, []int64{5}},
	} {
		q := tt.q
		q.Mode = cmp.Or(q.Mode, store.ModeOrdered)
		ref := refFunnel(jm, d, q)
		for _, p := range paths {
			res, err := p.s.Funnel(context.Background(), jm, tt.q)
			if err != nil {
				t.Fatal(tt.name, p.name, err)
			}
			var got []int64
			for _, st := range res.Steps {
				got = append(got, st.Customers)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s, %s: customers %v, want %v", tt.name, p.name, got, tt.want)
			}
			if text := funnelText(res); text != ref {
				t.Errorf("%s, %s: got\n%s\nthe reference:\n%s", tt.name, p.name, text, ref)
			}
		}
	}
	// The members of products' items are held by their own name, which an error points to.
	_, err := paths[0].s.Funnel(context.Background(), jm, store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "products.product_id"})
	if pe := (*store.ParamError)(nil); !errors.As(err, &pe) || pe.Param != "hold" || !strings.Contains(err.Error(), "hold property:product_id") {
		t.Errorf("hold on products' items: %v, want a ParamError naming hold pointing to property:product_id", err)
	}
	// A property no stored event has is a 400 naming hold, with the stored one it was likely meant as.
	_, err = paths[0].s.Funnel(context.Background(), jm, store.FunnelQuery{Steps: steps, Window: time.Hour, Hold: "Product_ID"})
	var pe *store.ParamError
	if !errors.As(err, &pe) || pe.Param != "hold" || !strings.Contains(err.Error(), `"product_id"`) {
		t.Errorf("hold on a property never stored: %v, want a ParamError naming hold and product_id", err)
	}
}

// TestHoldParameter reads hold as a breakdown names a property (property:NAME, escapes and
// spaces as a filter's field), in a funnel and a drop-off; anything else is a ParamError naming
// hold.
func TestHoldParameter(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		hold, want, says string // says: in the error ("" for none)
	}{
		{"", "", ""},
		{"property:product_id", "product_id", ""},
		{" property: product.sku ", "product.sku", ""},
		{`property:coupon\ `, "coupon ", ""},
		{`property:\ `, " ", ""},
		{"property:", "", "property takes a name"},
		{"trait:customer_type", "", "a trait is the person's latest value"},
		{"channel", "", "is not property:NAME"},
		{"product_id", "", "is not property:NAME"},
	} {
		for _, query := range []string{"funnel", "dropoff"} {
			v := url.Values{"steps": {"V,W"}}
			if tt.hold != "" {
				v.Set("hold", tt.hold)
			}
			var hold string
			var err error
			if query == "funnel" {
				var q store.FunnelQuery
				q, err = store.ParseFunnelQuery(v)
				hold = q.Hold
			} else {
				var q store.DropoffQuery
				q, err = store.ParseDropoffQuery(v)
				hold = q.Funnel.Hold
			}
			var pe *store.ParamError
			switch {
			case tt.says == "" && (err != nil || hold != tt.want):
				t.Errorf("%s hold=%q: %q, %v; want %q", query, tt.hold, hold, err, tt.want)
			case tt.says != "" && (!errors.As(err, &pe) || pe.Param != "hold" || !strings.Contains(err.Error(), tt.says)):
				t.Errorf("%s hold=%q: %v; want a ParamError naming hold saying %q", query, tt.hold, err, tt.says)
			}
		}
	}
	if _, err := store.ParseFunnelQuery(url.Values{"steps": {"V"}, "hold": {"property:a", "property:b"}}); err == nil || !strings.Contains(err.Error(), "hold: given 2 times") {
		t.Errorf("hold given twice: %v", err)
	}
}
