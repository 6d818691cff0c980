package main

import (
	"testing"
	"time"
)

// TestAnswersOutliveSlowBodies: a batch's body may take up to --http-read-timeout to arrive and
// its queries up to --query-timeout after it; net/http counts the write timeout from the end of
// the headers, so it must cover both, or the client gets no answer at all (not even the 503).
func TestAnswersOutliveSlowBodies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ read, query time.Duration }{
		{30 * time.Second, time.Minute}, // the defaults
		{30 * time.Second, 10 * time.Second},
		{5 * time.Minute, time.Second},
		{time.Second, time.Second},
	} {
		if got := writeTimeout(tt.read, tt.query); got <= tt.read+tt.query {
			t.Errorf("--http-read-timeout %s, --query-timeout %s: write timeout %s, want more than %s", tt.read, tt.query, got, tt.read+tt.query)
		}
	}
}
