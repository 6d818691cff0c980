package sessionize

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

func TestColdCustomerRoundTrip(t *testing.T) {
	strs := []string{"direct", "email", "Product Viewed", ""}
	many := make([]point, idIndexFrom+3)
	for i := range many {
		many[i] = point{us: int64(i) * 1000, seq: int64(len(many) - i), id: uint64(i) * 0x9e3779b97f4a7c15, touch: 2}
	}
	cases := []struct {
		name string
		c    customer
	}{
		{"empty", customer{}},
		{"one point", customer{points: []point{{us: 1_780_000_000_000, seq: 7, id: 1, rules: 3, touch: 2}}, latest: 1_780_000_000_000,
			firstChannel: "email", byUser: true}},
		{"extremes", customer{points: []point{
			{us: math.MinInt64, seq: math.MaxInt64, id: math.MaxUint64, rules: math.MaxUint64, touch: math.MaxUint32,
				channel: math.MaxUint32, campaign: math.MaxUint32, session: math.MaxUint32},
			{us: -5, seq: math.MinInt64},
			{us: math.MaxInt64, seq: 0, session: 1},
		}, latest: math.MaxInt64, reached: math.MaxUint64, firstChannel: "direct"}},
		{"sessions", customer{points: []point{{us: 10}, {us: 20}}, latest: 20, reached: 5, firstChannel: "direct",
			sessions: []storedSession{
				{startUs: 10, endUs: 10, version: math.MaxUint64, events: 1, entry: 2, exit: 2, reason: 1, person: 0, stages: 1},
				{startUs: -100, endUs: math.MaxInt64 - 200, version: 1, events: math.MaxUint32, entry: math.MaxUint32, stages: math.MaxUint64},
			}}},
		{"indexed ids", customer{points: many, latest: many[len(many)-1].us, firstChannel: "email"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.c
			want.sorted = len(want.points)
			if len(want.points) > idIndexFrom {
				want.indexIDs()
			}
			got := decodeOrFail(t, encodeCustomer(&want, uint32(slices.Index(strs, want.firstChannel))), strs)
			compareCustomers(t, got, &want)
		})
	}
}

func decodeOrFail(t *testing.T, data []byte, strs []string) *customer {
	t.Helper()
	c, err := decodeCustomer(data, strs)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return c
}

func compareCustomers(t *testing.T, got, want *customer) {
	t.Helper()
	if len(got.points) == 0 && len(want.points) == 0 {
		got.points, want.points = nil, nil
	}
	if len(got.sessions) == 0 && len(want.sessions) == 0 {
		got.sessions, want.sessions = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", *got, *want)
	}
}

// TestColdDecodeRefusesDamage: every truncation of an encoded customer, and a length beyond the
// data, is an error, never a panic or a customer.
func TestColdDecodeRefusesDamage(t *testing.T) {
	c := customer{points: []point{{us: 100, id: 1}, {us: 200, id: 2, session: 9}}, latest: 200, firstChannel: "a",
		sessions: []storedSession{{startUs: 100, endUs: 200, events: 2}}}
	data := encodeCustomer(&c, 0)
	strs := []string{"a"}
	for n := range len(data) {
		if _, err := decodeCustomer(data[:n], strs); err == nil {
			t.Errorf("the first %d of %d bytes decoded", n, len(data))
		}
	}
	if _, err := decodeCustomer(append(slices.Clone(data), 0), strs); err == nil {
		t.Error("a byte after the customer decoded")
	}
	if _, err := decodeCustomer(data, nil); err == nil {
		t.Error("a channel beyond the string table decoded")
	}
	huge := []byte{0, 0, 0, 0}
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // 2^32-1 points in no data
	if _, err := decodeCustomer(huge, strs); err == nil {
		t.Error("a point count beyond the data decoded")
	}
}

// FuzzColdCustomer: any bytes decode to a customer or an error, without a panic; a customer
// decoded encodes to what decodes to the same customer.
func FuzzColdCustomer(f *testing.F) {
	c := customer{points: []point{{us: 100, seq: 3, id: 1, rules: 1, touch: 1}, {us: 200, id: 2, session: 9}}, latest: 200,
		firstChannel: "a", sessions: []storedSession{{startUs: 100, endUs: 200, events: 2, person: 1}}}
	f.Add(encodeCustomer(&c, 0))
	f.Add([]byte{})
	strs := []string{"a", "b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCustomer(data, strs)
		if err != nil {
			return
		}
		again, err := decodeCustomer(encodeCustomer(c, uint32(slices.Index(strs, c.firstChannel))), strs)
		if err != nil {
			t.Fatalf("re-encoded customer: %v", err)
		}
		compareCustomers(t, again, c)
	})
}

// TestColdCustomersChangeNothing replays a shop's events (the Taobao sample, with devices that
// log in, duplicates and retries stamped again), shuffled and in random batches, through a
// sessionizer that holds every customer decoded and through ones that encode all but a few
// after each push, also with evictions and with the string table rebuilt: every push must give
// the same output and the same counts.
func TestColdCustomersChangeNothing(t *testing.T) {
	oneGoroutine(t)
	events := shopEvents(t)
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 7))
		shuffled := slices.Clone(events)
		if seed > 0 {
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		}
		var batches [][]ingest.Event
		for rest := shuffled; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(400))
			batches, rest = append(batches, rest[:n]), rest[n:]
		}
		run := func(hotCap, maxCustomers int) []string {
			m, err := LoadMap("")
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Config{MaxCustomers: maxCustomers}, m)
			if err != nil {
				t.Fatal(err)
			}
			s.hotCap, s.compactAt = hotCap, 64 // the first rebuild of the string table meets cold customers
			var log []string
			now := base
			for _, b := range batches {
				out, stats := s.Push(now, b)
				log = append(log, fmt.Sprintf("%+v %+v held=%d", out, stats, s.Customers()))
				now = now.Add(time.Second)
			}
			return log
		}
		for _, caps := range [][2]int{{0, 0}, {0, 300}, {5, 0}} {
			want := run(math.MaxInt, caps[1])
			got := run(caps[0], caps[1])
			if len(got) != len(want) {
				t.Fatalf("seed %d, hot cap %d, max customers %d: %d pushes, want %d", seed, caps[0], caps[1], len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d, hot cap %d, max customers %d: push %d gave\n%s\nwant\n%s", seed, caps[0], caps[1], i, got[i], want[i])
				}
			}
		}
	}
}

// shopEvents is the Taobao sample with what real traffic adds: a third of the users browse on a
// device (anonymousId) until they log in (an identify call, then both ids), some campaigns and
// client session ids, users aliased to another account,
// and a twentieth of the events sent twice, half of those stamped again a few seconds later.
func shopEvents(t *testing.T) []ingest.Event {
	events := taobaoEvents(t)
	first := map[string]time.Time{}
	for _, e := range events {
		if f, ok := first[e.UserID]; !ok || e.Timestamp.Before(f) {
			first[e.UserID] = e.Timestamp
		}
	}
	var out []ingest.Event
	for i, e := range events {
		if i%5 == 0 { // a client's session id, per day
			e.SessionID = e.UserID + e.Timestamp.Format("2006-01-02")
		}
		if i%3 == 0 {
			e.CampaignMedium, e.CampaignSource, e.CampaignName = "email", "news", fmt.Sprintf("c%d", i%7)
		}
		if len(e.UserID)%3 == 0 { // a device user: anonymous during the first day
			login := first[e.UserID].Add(24 * time.Hour)
			e.AnonymousID = "device-" + e.UserID
			if e.Timestamp.Before(login) {
				e.UserID = ""
			}
		}
		out = append(out, e)
		switch {
		case i%40 == 0:
			out = append(out, e)
		case i%40 == 20:
			e.Timestamp = e.Timestamp.Add(3 * time.Second)
			out = append(out, e)
		}
	}
	users := slices.Sorted(maps.Keys(first))
	for i, user := range users {
		f := first[user]
		switch {
		case len(user)%3 == 0:
			out = append(out, ingest.Event{Source: "taobao", Type: "identify", UserID: user, AnonymousID: "device-" + user,
				MessageID: "identify-" + user, Timestamp: f.Add(24 * time.Hour)})
		case i%7 == 1: // the user made a second account: the shop aliases it to the one before
			out = append(out, ingest.Event{Source: "taobao", Type: "alias", UserID: users[i-1], PreviousID: user,
				MessageID: "alias-" + user, Timestamp: f.Add(48 * time.Hour)})
		}
	}
	return out
}
