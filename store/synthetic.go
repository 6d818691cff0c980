package store

import (
	"context"
	"fmt"
)

// GenerateSynthetic inserts n synthetic shop events for persons customers inside ClickHouse
// (INSERT … SELECT … FROM numbers), for benchmarks of the journey queries. The shape is a shop's:
// activity per customer is Zipf-like (a few customers do much, most do little), and the events
// follow a five-stage funnel with falling conversion (views, cart adds, checkouts, orders,
// reviews), over 30 days from 2026-01-01, with six channels and twenty product categories.
func (s *Store) GenerateSynthetic(ctx context.Context, n, persons int) error {
	// Hashes of the row number give independent pseudo-random draws; the customer is the cube of a
	// uniform draw scaled to persons, which gives the heavy head of real traffic.
	query := fmt.Sprintf(`INSERT INTO %s (source, message_id, type, event, user_id, anonymous_id, customer_key,
	ts_ms, date, original_ts_ms, sent_at_ms, received_at_ms, stored_at_ms, prop_keys, prop_values,
	page_path, referrer, campaign_source, campaign_medium, campaign_name, channel, raw)
SELECT 'synthetic', toString(number), 'track', event, customer, '', customer,
	ts, toDate(intDiv(ts, 1000)), ts, ts, ts, ts, ['category'], [toString(cityHash64(number, 3) %% 20)],
	'', '', '', '', '', channel, ''
FROM (
	SELECT number,
		concat('c', toString(toUInt64(%d * pow((cityHash64(number, 1) %% 1000000) / 1000000, 3)))) AS customer,
		cityHash64(number, 2) %% 1000 AS draw,
		multiIf(draw < 700, 'Product Viewed', draw < 850, 'Product Added', draw < 930, 'Checkout Started',
			draw < 980, 'Order Completed', 'Product Reviewed') AS event,
		1767225600000 + (cityHash64(number, 4) %% 2592000) * 1000 AS ts,
		['direct', 'search', 'paid_search', 'social', 'email', 'referral'][(cityHash64(number, 5) %% 6) + 1] AS channel
	FROM numbers(%d)
)`, s.table("events"), persons, n)
	if err := s.conn.Exec(ctx, query); err != nil {
		return fmt.Errorf("generate %d synthetic events: %w", n, err)
	}
	return nil
}
