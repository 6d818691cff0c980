package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
)

// TestSyntheticVisitsHoldTheirEvents: the benchmark's generator makes visits of as many events as
// SyntheticOptions.VisitEvents asks, as the sessions query counts them (GenerateSyntheticSessions
// cuts them as the sessionizer would): about one visit an event by default, about n/k of k
// events each at k (a customer's two visits within 30 minutes are one, a visit across midnight
// two), and refuses a count out of range.
func TestSyntheticVisitsHoldTheirEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jm := defaultMap(t)
	const n = 3000
	for _, k := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("visit_events=%d", k), func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			if err := s.GenerateSynthetic(ctx, n, 1_000, store.SyntheticOptions{VisitEvents: k}); err != nil {
				t.Fatal(err)
			}
			sum, err := s.Sessions(ctx, jm, store.SessionsQuery{})
			if err != nil {
				t.Fatal(err)
			}
			want := float64(n) / float64(max(k, 1))
			if sum.Events != n || float64(sum.Sessions) < 0.9*want || float64(sum.Sessions) > 1.05*want {
				t.Errorf("%d sessions of %d events, want about %.0f of %d", sum.Sessions, sum.Events, want, n)
			}
		})
	}
	for _, k := range []int{-1, 101} {
		err := openStore(t).GenerateSynthetic(ctx, 10, 10, store.SyntheticOptions{VisitEvents: k})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d events a visit", k)) {
			t.Errorf("%d events a visit: got %v", k, err)
		}
	}
}
