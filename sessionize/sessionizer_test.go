package sessionize

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

var base = time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)

// at is a track event of customer c at base + minutes.
func at(c, event string, minutes float64) ingest.Event {
	return ingest.Event{
		Source: "t", Type: "track", Event: event, UserID: c,
		MessageID: fmt.Sprintf("%s-%s-%v", c, event, minutes),
		Timestamp: base.Add(time.Duration(minutes * float64(time.Minute))),
	}
}

func newTestSessionizer(t testing.TB) *Sessionizer {
	t.Helper()
	m, err := LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{}, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// live folds emitted sessions into the latest non-deleted version per id, as a reader does.
func live(updates []Session) map[string]Session {
	latest := map[string]Session{}
	for _, u := range updates {
		if cur, ok := latest[u.ID]; !ok || u.Version > cur.Version {
			latest[u.ID] = u
		}
	}
	for id, s := range latest {
		if s.Deleted {
			delete(latest, id)
		}
	}
	return latest
}

func describe(sessions map[string]Session) []string {
	var out []string
	for _, s := range sessions {
		out = append(out, fmt.Sprintf("%s %s+%s n=%d %s→%s [%s] %s", s.CustomerKey, s.Start.Format("15:04"),
			s.End.Sub(s.Start), s.Events, s.EntryEvent, s.ExitEvent, strings.Join(s.Stages, ","), s.EndReason))
	}
	slices.Sort(out)
	return out
}

func TestSessions(t *testing.T) {
	tests := []struct {
		name   string
		events []ingest.Event
		want   []string
	}{
		{
			name:   "gap of exactly 30 minutes stays, more splits",
			events: []ingest.Event{at("a", "Product Viewed", 0), at("a", "Product Added", 30), at("a", "Order Completed", 60.5)},
			want: []string{
				"a 08:00+30m0s n=2 Product Viewed→Product Added [awareness,consideration] timeout",
				"a 09:00+0s n=1 Order Completed→Order Completed [conversion] open",
			},
		},
		{
			name: "cut at 24 hours of activity",
			events: func() []ingest.Event {
				var es []ingest.Event
				for m := 0.0; m <= 25*60; m += 20 {
					es = append(es, at("b", "Product Viewed", m))
				}
				return es
			}(),
			want: []string{
				"b 08:00+1h0m0s n=4 Product Viewed→Product Viewed [awareness] open", // the next day
				"b 08:00+23h40m0s n=72 Product Viewed→Product Viewed [awareness] max_duration",
			},
		},
		{
			name:   "repeat order reaches loyalty",
			events: []ingest.Event{at("c", "Order Completed", 0), at("c", "Order Completed", 100)},
			want: []string{
				"c 08:00+0s n=1 Order Completed→Order Completed [conversion] timeout",
				"c 09:40+0s n=1 Order Completed→Order Completed [conversion,loyalty] open",
			},
		},
		{
			name:   "duplicates count once; customers apart",
			events: []ingest.Event{at("d", "Product Viewed", 0), at("d", "Product Viewed", 0), at("e", "Product Viewed", 1)},
			want: []string{
				"d 08:00+0s n=1 Product Viewed→Product Viewed [awareness] open",
				"e 08:01+0s n=1 Product Viewed→Product Viewed [awareness] open",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSessionizer(t)
			got := describe(live(s.Push(base, tt.events)))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("sessions\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestLateEventMergesSessions(t *testing.T) {
	s := newTestSessionizer(t)
	first := s.Push(base, []ingest.Event{at("a", "Product Viewed", 0), at("a", "Order Completed", 50)})
	if len(live(first)) != 2 {
		t.Fatalf("want 2 sessions before the late event, got %v", describe(live(first)))
	}
	// A late event at minute 25 bridges the gap: one session, the second one deleted.
	second := s.Push(base.Add(time.Hour), []ingest.Event{at("a", "Product Added", 25)})
	var deleted int
	for _, u := range second {
		if u.Deleted {
			deleted++
		}
		if u.Version <= first[0].Version {
			t.Errorf("update version %d not above the earlier %d", u.Version, first[0].Version)
		}
	}
	all := live(append(first, second...))
	if deleted != 1 || len(all) != 1 {
		t.Fatalf("deleted %d, live %v: want one merged session", deleted, describe(all))
	}
	// Pushing the same events again changes nothing.
	if again := s.Push(base.Add(2*time.Hour), []ingest.Event{at("a", "Product Added", 25)}); len(again) != 0 {
		t.Errorf("redelivered event emitted %d updates", len(again))
	}
}

func taobaoEvents(t testing.TB) []ingest.Event {
	t.Helper()
	f, err := os.Open("../deploy/data/taobao/UserBehavior.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]string{"pv": "Product Viewed", "fav": "Product Added to Wishlist", "cart": "Product Added", "buy": "Order Completed"}
	var events []ingest.Event
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(sc.Text(), ",")
		sec, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		events = append(events, ingest.Event{Source: "taobao", Type: "track", Event: names[f[3]], UserID: f[0],
			MessageID: strconv.Itoa(line), Timestamp: time.Unix(sec, 0).UTC()})
	}
	return events
}

// TestSessionsDoNotDependOnArrivalOrder replays the Taobao sample in random orders and random
// batch sizes: the sessions must always be the same 1,700.
func TestSessionsDoNotDependOnArrivalOrder(t *testing.T) {
	events := taobaoEvents(t)
	var want []string
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 42))
		shuffled := slices.Clone(events)
		if seed > 0 {
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		}
		s := newTestSessionizer(t)
		var updates []Session
		now := base
		for rest := shuffled; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(800))
			updates = append(updates, s.Push(now, rest[:n])...)
			rest, now = rest[n:], now.Add(time.Second)
		}
		got := describe(live(updates))
		if len(got) != 1700 {
			t.Errorf("seed %d: %d sessions, want 1700", seed, len(got))
		}
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Errorf("seed %d: sessions differ from the in-order run", seed)
		}
	}
}

func BenchmarkSessionizer(b *testing.B) {
	events := taobaoEvents(b)
	b.ReportAllocs()
	for b.Loop() {
		s := newTestSessionizer(b)
		for i := 0; i < len(events); i += 1000 {
			s.Push(base, events[i:min(i+1000, len(events))])
		}
	}
	b.ReportMetric(float64(len(events)*b.N)/b.Elapsed().Seconds(), "events/s")
}
