package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestListItems: a list property's items are stored by element, under the list's key, an
// object's members under the key and their dotted names, a list in a list as its text and its
// items; traits and the properties a collision or a repeat drops give none.
func TestListItems(t *testing.T) {
	tests := []struct{ props, want string }{
		{`{"tags":["sale","new"]}`, `tags=sale tags=new`},
		{`{"products":[{"product_id":"p1","category":"shoes","price":10.0},{"category":"hats","price":5e0}]}`,
			`products.category=shoes products.price=10 products.product_id=p1 products.category=hats products.price=5`},
		{`{"n":[1e2,-0.0,true,null,{},{"a":null}]}`, `n=100 n=0 n=true`},
		{`{"m":[[1,"a"],[]]}`, `m=[1,"a"] m=1 m=a m=[]`},
		{`{"p":[{"tags":["x"],"o":{"c":"d"}}]}`, `p.o.c=d p.tags=["x"] p.tags=x`},
		{`{"order":{"items":[{"sku":"a"}]}}`, `order.items.sku=a`},
		{`{"traits":[{"plan":"x"}]}`, `properties.traits.plan=x`}, // PropertyKey, as its list's
		{`{"s":"[\"a\"]","e":[]}`, ``},                            // a string holding an array's text is a string
		{`{"t":["a"],"t":["b"]}`, `t=b`},                          // the last of a repeated member
		{`{"a.b":["flat"],"a":{"b":["nested"]}}`, `a.b=nested`},   // the nested member wins
	}
	for _, tt := range tests {
		raw := `{"type":"track","event":"E","userId":"u","properties":` + tt.props + `,"context":{"traits":{"tags":["t"]}}}`
		e, err := Decode([]byte(raw), "s", time.Now())
		if err != nil {
			t.Fatalf("%s: %v", tt.props, err)
		}
		var got []string
		for i, k := range e.ItemKeys {
			got = append(got, k+"="+e.ItemValues[i])
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("properties %s: items %q, want %q", tt.props, g, tt.want)
		}
	}
}

// TestListItemsLimits: an event stores at most MaxItems items of at most MaxItemBytes; the rest
// are dropped, said once, naming the list where they start.
func TestListItemsLimits(t *testing.T) {
	many := strings.TrimSuffix(strings.Repeat("1,", MaxItems+5), ",")
	long := strings.Repeat("k", 1000)
	tests := []struct {
		name, props string
		items       int
		field       string
	}{
		{"within", `{"a":[` + strings.TrimSuffix(strings.Repeat("1,", MaxItems), ",") + `]}`, MaxItems, ""},
		{"count", `{"a":[1,2],"b":[` + many + `]}`, MaxItems, "properties.b"},
		{"bytes", `{"` + long + `":[` + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + `]}`, MaxItemBytes / (len(long) + 1), "properties." + long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{"type":"track","event":"E","userId":"u","properties":` + tt.props + `}`
			e, err := Decode([]byte(raw), "s", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(e.ItemKeys) != tt.items || len(e.ItemValues) != tt.items {
				t.Errorf("%d items, want %d", len(e.ItemKeys), tt.items)
			}
			var got []string
			for _, ig := range e.Ignored {
				got = append(got, fmt.Sprint(ig.Reason, " ", ig.Field))
			}
			want := ""
			if tt.field != "" {
				want = ReasonListItems + " " + tt.field
			}
			if g := strings.Join(got, ";"); g != want {
				t.Errorf("ignored %q, want %q", g, want)
			}
		})
	}
}

// TestCollectorListsListItemsPastTheLimit: the collector's answer names the list whose items
// from there on are not stored by element, as the consumer counts it.
func TestCollectorListsListItemsPastTheLimit(t *testing.T) {
	env := startCollector(t, nil)
	many := strings.TrimSuffix(strings.Repeat("1,", MaxItems+1), ",")
	status, _, body := env.do(t, call{path: "/v1/track", headers: basicWeb,
		body: []byte(`{"userId":"li1","event":"Order Completed","properties":{"products":[` + many + `]}}`)})
	ignored, _ := body["ignored"].([]any)
	if status != 200 || len(ignored) != 1 || ignored[0].(map[string]any)["field"] != "properties.products" ||
		ignored[0].(map[string]any)["reason"] != ReasonListItems {
		t.Errorf("POST /v1/track of %d items: %d %v, want 200 listing properties.products", MaxItems+1, status, body)
	}
}

// TestListItemsBudgetIsShared: a long list does not leave a short one without its items, a list
// nested hundreds deep keeps its values (its inner lists' texts are not each stored), and every
// list whose items were cut is named (tester 34's F4).
func TestListItemsBudgetIsShared(t *testing.T) {
	deep := strings.Repeat("[", 500) + `"x"` + strings.Repeat("]", 500)
	thousand := strings.TrimSuffix(strings.Repeat("0,", MaxItems), ",")
	tests := []struct {
		name, props string
		want        string // an item that must be stored, key=value
		ignored     string // the ignored field, and the lists named in its message
	}{
		{"short list beside a long one", `{"nums":[` + thousand + `,7],"tags":["late"]}`, "tags=late", "properties.nums: properties.nums"},
		{"a list nested 500 deep", `{"tags":` + deep + `}`, "tags=x", ""},
		{"two lists cut", `{"a":[` + thousand + `,1],"b":[` + thousand + `,1,2]}`, "a=0", "properties.a: properties.a, properties.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{"type":"track","event":"E","userId":"u","properties":` + tt.props + `}`
			e, err := Decode([]byte(raw), "s", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			key, value, _ := strings.Cut(tt.want, "=")
			found := false
			for i := range e.ItemKeys {
				if name, _ := PropertyName(e.ItemKeys[i]); name == key && e.ItemValues[i] == value {
					found = true
				}
			}
			if !found {
				t.Errorf("no item %s among %d", tt.want, len(e.ItemKeys))
			}
			got := ""
			for _, ig := range e.Ignored {
				if ig.Reason == ReasonListItems {
					_, lists, _ := strings.Cut(ig.Err.Error(), " of ")
					lists, _, _ = strings.Cut(lists, " are past")
					got = ig.Field + ": " + lists
				}
			}
			if got != tt.ignored {
				t.Errorf("ignored %q, want %q", got, tt.ignored)
			}
		})
	}
}
