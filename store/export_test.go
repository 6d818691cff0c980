package store

import (
	"context"
	"time"
)

// PassBounds returns the person ids at which the passes of a scan of every stored event begin,
// after the first (scanPasses), for the tests of package store_test.
func (s *Store) PassBounds(ctx context.Context) ([]string, error) {
	plan, err := s.scanPasses(ctx, eventScan{preds: []predicate{{sql: "1"}}}, nil)
	var bounds []string
	for _, p := range plan.passes[1:] {
		bounds = append(bounds, p.lo)
	}
	return bounds, err
}

// SetReloadTimeout sets how long a reload of waymark_funnel may take (renewalTimeout), for the
// tests of package store_test.
func (s *Store) SetReloadTimeout(d time.Duration) { s.poolRenewal.timeout = d }
