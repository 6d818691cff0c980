package main

import (
	"fmt"
	"testing"
)

// TestCrossDeviceJourneyIsOnePerson: anonymous browsing on device A, an anonymous cart on device
// B, a login on B, orders and a review on A after logging in there: one person who passed every
// stage, in the funnel from the CLI, without rewriting any stored event.
func TestCrossDeviceJourneyIsOnePerson(t *testing.T) {
	s := startServe(t)
	postTrack(t, s, `{"batch":[
		{"type":"page","anonymousId":"device-a","name":"Home","timestamp":"2026-06-01T10:00:00Z","messageId":"x1"},
		{"type":"track","anonymousId":"device-a","event":"Product Viewed","timestamp":"2026-06-01T10:01:00Z","messageId":"x2"},
		{"type":"track","anonymousId":"device-b","event":"Product Added","timestamp":"2026-06-01T10:10:00Z","messageId":"x3"},
		{"type":"identify","anonymousId":"device-b","userId":"alice","timestamp":"2026-06-01T10:20:00Z","messageId":"x4"},
		{"type":"track","anonymousId":"device-a","userId":"alice","event":"Order Completed","timestamp":"2026-06-01T10:30:00Z","messageId":"x5"},
		{"type":"track","anonymousId":"device-a","userId":"alice","event":"Order Completed","timestamp":"2026-06-01T10:40:00Z","messageId":"x6"},
		{"type":"track","userId":"alice","event":"Product Reviewed","timestamp":"2026-06-01T10:50:00Z","messageId":"x7"}
	]}`)
	s.waitStored(t)
	f := s.funnel(t, "awareness,consideration,conversion,loyalty,advocacy", "24h")
	var got []int64
	for _, st := range f.Steps {
		got = append(got, st.Customers)
	}
	if fmt.Sprint(got) != "[1 1 1 1 1]" {
		t.Errorf("stage funnel = %v, want one person through all five stages", got)
	}
	// The stored events keep the ids they came with.
	if ids := queryStrings(t, "SELECT DISTINCT customer_key FROM "+s.database+".events ORDER BY customer_key"); fmt.Sprint(ids) != "[alice device-a device-b]" {
		t.Errorf("stored customer keys %v, want the events as they came", ids)
	}
}
