package store

import (
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

func TestStepFilters(t *testing.T) {
	ev := func(kv ...string) *ingest.Event {
		e := &ingest.Event{Type: "track", Event: "Order Completed", PagePath: "/checkout/pay"}
		for i := 0; i < len(kv); i += 2 {
			e.PropertyKeys, e.PropertyValues = append(e.PropertyKeys, kv[i]), append(e.PropertyValues, kv[i+1])
		}
		return e
	}
	tests := []struct {
		filters string
		event   *ingest.Event
		match   bool
		err     string
	}{
		{"revenue>=100", ev("revenue", "150"), true, ""},
		{"revenue>=100", ev("revenue", "99.5"), false, ""},
		{"revenue>100;currency=EUR|USD", ev("currency", "USD", "revenue", "101"), true, ""},
		{"revenue>100;currency=EUR|USD", ev("currency", "GBP", "revenue", "101"), false, ""},
		{"currency=EUR", ev(), false, ""}, // a missing property fails every operator
		{"page.path^=/checkout", ev(), true, ""},
		{"coupon~=^SUMMER[0-9]+$", ev("coupon", "SUMMER24"), true, ""},
		{"revenue<=abc", nil, false, "is not a finite number"},
		{"revenue>NaN", nil, false, "is not a finite number"},
		{"revenue<-Inf", nil, false, "is not a finite number"},
		{"revenue>1e400", nil, false, "is not a finite number"},
		{"revenue>=1_000", nil, false, "is not a finite number"},
		{"revenue>=0x1p4", nil, false, "is not a finite number"},
		{"revenue<0x1_0p0", nil, false, "is not a finite number"},
		{strings.Repeat("a=1;", MaxStepFilters+1), nil, false, "more than 10 filters"},
		{"revenue", nil, false, "want FIELD OP VALUE"},
		{"code~=(", nil, false, "regexp"},
	}
	for _, tt := range tests {
		conds, err := parseFilters(tt.filters)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one about %q", tt.filters, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.filters, err)
		}
		match := true
		for i := range conds {
			match = match && conds[i].Matches(tt.event)
		}
		if match != tt.match {
			t.Errorf("%s on %+v: match %v, want %v", tt.filters, tt.event, match, tt.match)
		}
	}
}

// TestEveryContextFieldHasAColumn: a context field the journey map's conditions can test
// (sessionize.ContextFields) must be readable in SQL too, or a step filter on it would test a
// property of that name instead.
func TestEveryContextFieldHasAColumn(t *testing.T) {
	for _, f := range sessionize.ContextFields() {
		if contextColumn(f) == "" {
			t.Errorf("context field %s has no column", f)
		}
	}
	if got := contextColumn("properties.page.path"); got != "" {
		t.Errorf("properties.page.path reads column %q, want a property", got)
	}
}
