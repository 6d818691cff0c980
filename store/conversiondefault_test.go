package store_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestConversionDefault asks paths and retention without a conversion, as the journey map page
// asks for its top paths, of a shop that never sent Order Completed: the default is the journey
// map's stage conversion, which names no event the shop must send; a map without that stage
// counts no conversions in paths and has retention ask for one, naming the parameter. A name
// given and never stored is still refused, naming its parameter.
func TestConversionDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	noOrders := openStore(t)
	if err := noOrders.Write(ctx, sessionize.Batch{Events: []ingest.Event{
		ev("a", "Product Viewed", 0), ev("a", "Product Added", 60), ev("b", "Product Viewed", 0),
	}}); err != nil {
		t.Fatal(err)
	}
	orders := openStore(t)
	if err := orders.Write(ctx, sessionize.Batch{Events: []ingest.Event{
		ev("a", "Product Viewed", 0), ev("a", "Order Completed", 60), ev("b", "Product Viewed", 0),
		ev("a", "Order Completed", 8*24*3600),
	}}); err != nil {
		t.Fatal(err)
	}
	noStage, err := sessionize.ParseMap([]byte("version: t\nstages:\n  - name: browsing\n    rules:\n      - event: [Product Viewed]\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The page's own parameters (app.js loadFlow): no convert.
	page := url.Values{"anchor": {"Product Viewed"}, "depth": {"4"}, "limit": {"12"}, "collapse": {"true"}, "window": {"24h"}}
	for _, tt := range []struct {
		name    string
		s       *store.Store
		jm      *sessionize.Map
		query   string
		v       url.Values
		want    string // the answer's convert or conversion, persons and converted (paths) or returned (retention)
		wantErr string // else the parameter refused and a part of the message
	}{
		{"paths, no orders", noOrders, defaultMap(t), "paths", page, "conversion persons=2 converted=0", ""},
		{"paths, orders", orders, defaultMap(t), "paths", page, "conversion persons=2 converted=1", ""},
		{"paths, map without the stage", noOrders, noStage, "paths", page, " persons=2 converted=0", ""},
		{"paths, given and never stored", noOrders, defaultMap(t), "paths", withParams(page, "convert", "Order Completed"), "", `convert: "Order Completed" is neither`},
		{"retention, no orders", noOrders, defaultMap(t), "retention", nil, "conversion persons=0 returned=0", ""},
		{"retention, orders", orders, defaultMap(t), "retention", nil, "conversion persons=1 returned=1", ""},
		{"retention, map without the stage", noOrders, noStage, "retention", nil, "", `conversion: required: the journey map has no stage "conversion"`},
		{"retention, given and never stored", noOrders, defaultMap(t), "retention", url.Values{"conversion": {"Order Completed"}}, "", `conversion: "Order Completed" is neither`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.s.Query(ctx, tt.jm, tt.query, tt.v)
			if tt.wantErr != "" {
				if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a parameter error beginning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch r := res.(type) {
			case *store.PathsResult:
				converted := int64(0)
				for _, p := range r.Paths {
					converted += p.Converted
				}
				got = fmt.Sprintf("%s persons=%d converted=%d", r.Convert, r.Persons, converted)
			case *store.RetentionResult:
				got = fmt.Sprintf("%s persons=%d returned=%d", r.Conversion, r.Persons, r.Repeaters)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
