package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestSignInsInAnEventsMillisecondCompareSeq: a shared device's page views and sign-ins stamped
// to one second. A view goes to the user signed in last at or before it by (time, seq): in the
// second's own ties by seq, the client's order (sessionize.DeviceSignIns). Sign-ins stored before
// from_seq existed, and events and sign-ins stored before seq existed (all 0), count every
// sign-in from its millisecond, as before; a from_seq shorter or longer than from_ms (never
// written, but a query must not fail on it) reads a missing seq as 0.
func TestSignInsInAnEventsMillisecondCompareSeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ms := uint64(at.UnixMilli())
	// The device's events in the client's order: views and sign-ins in one second, then Exit.
	type sent struct{ name, user string }
	events := []sent{{"Door", ""}, {"", "alice"}, {"Shelf", ""}, {"", "bob"}, {"Counter", ""}, {"Exit", ""}}
	clientSeqs := []int64{10, 11, 12, 13, 14, 15}
	tests := []struct {
		name      string
		eventSeqs []int64
		signInSeq []uint64 // nil: a row stored before from_seq existed
		want      map[string]string
	}{
		{"seqs", clientSeqs, []uint64{11, 13},
			map[string]string{"Door": "alice", "Shelf": "alice", "Counter": "bob", "Exit": "bob"}},
		{"sign-ins stored before from_seq", clientSeqs, nil,
			map[string]string{"Door": "bob", "Shelf": "bob", "Counter": "bob", "Exit": "bob"}},
		{"everything stored before seq", make([]int64, len(events)), []uint64{0, 0},
			map[string]string{"Door": "bob", "Shelf": "bob", "Counter": "bob", "Exit": "bob"}},
		{"from_seq longer", clientSeqs, []uint64{11, 13, 1},
			map[string]string{"Door": "alice", "Shelf": "alice", "Counter": "bob", "Exit": "bob"}},
		{"from_seq shorter", clientSeqs, []uint64{11}, // bob's sign-in counts from the second's start
			map[string]string{"Door": "alice", "Shelf": "bob", "Counter": "bob", "Exit": "bob"}},
	}
	jm := defaultMap(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testDatabase(t)
			s := openStoreWith(t, func(c *store.Config) { c.Database = db })
			var b sessionize.Batch
			for i, e := range events {
				ev := ingest.Event{Source: "web", Type: "page", Event: e.name, MessageID: fmt.Sprintf("m%d", i), UserID: e.user,
					AnonymousID: "kiosk", Timestamp: at, Seq: tt.eventSeqs[i], ReceivedAt: at, Raw: []byte("{}")}
				if e.user != "" {
					ev.Type, ev.Event = "identify", ""
				}
				if e.name == "Exit" {
					ev.Timestamp = at.Add(time.Second)
				}
				b.Events, b.Channels, b.PersonIDs = append(b.Events, ev), append(b.Channels, ""), append(b.PersonIDs, "kiosk")
			}
			if err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
			conn := rawConn(t)
			if tt.signInSeq == nil {
				insert(t, conn, db+".device_sign_ins", "device, from_ms, users, version", []any{"kiosk", []uint64{ms, ms}, []string{"alice", "bob"}, uint64(1)})
			} else {
				insert(t, conn, db+".device_sign_ins", "device, from_ms, from_seq, users, version",
					[]any{"kiosk", []uint64{ms, ms}, tt.signInSeq, []string{"alice", "bob"}, uint64(1)})
			}
			for page, want := range tt.want {
				res, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: []string{page, page}, Window: time.Hour}, Step: 1, IDsLimit: 10})
				if err != nil {
					t.Fatalf("drop-off at %s: %v", page, err)
				}
				if !slices.Equal(res.Persons, []string{want}) {
					t.Errorf("%s went to %v, want %s", page, res.Persons, want)
				}
			}
		})
	}
}

// TestKioskSignInsReadInBoundedMemory: a shop's kiosk, one device that sessionize.MaxDeviceSignIns
// users signed in on in turn, ten seconds each, and about 39,000 anonymous views: 0 to 19 in each
// turn (the first at the sign-in's own millisecond, its user's), and three before the first
// sign-in (the first user's). Each person's views are counted here; the funnel of two views and
// the drop-off after one must agree. The scan once joined the device's sign-in arrays to each of
// its events, events × sign-ins (39,000 × 4,096, three arrays), which ran out of the default query
// memory (4 GB) before it answered; sorting the device's events with its sign-ins costs their sum.
func TestKioskSignInsReadInBoundedMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testDatabase(t)
	s := openStoreWith(t, func(c *store.Config) { c.Database = db })
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	const signIns = sessionize.MaxDeviceSignIns
	from := make([]uint64, signIns) // ms
	who := make([]string, signIns)
	for i := range signIns {
		from[i] = uint64(start.Add(time.Duration(i) * 10 * time.Second).UnixMilli())
		who[i] = fmt.Sprintf("u%04d", i)
	}
	insert(t, rawConn(t), db+".device_sign_ins", "device, from_ms, from_seq, users, version",
		[]any{"kiosk", from, make([]uint64, signIns), who, uint64(1)})
	views := map[string]int{}
	var b sessionize.Batch
	view := func(ms uint64, user string) {
		at := time.UnixMilli(int64(ms)).UTC()
		views[user]++
		b.Events = append(b.Events, ingest.Event{Source: "web", Type: "track", Event: "Kiosk View", MessageID: fmt.Sprintf("k%d", len(b.Events)),
			AnonymousID: "kiosk", Timestamp: at, ReceivedAt: at, Raw: []byte("{}")})
		b.Channels, b.PersonIDs = append(b.Channels, ""), append(b.PersonIDs, "kiosk")
	}
	for j := range 3 {
		view(from[0]-uint64(60_000*(j+1)), who[0])
	}
	for i := range signIns {
		for j := range (i * 7919) % 20 {
			view(from[i]+uint64(j*499), who[i])
		}
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	var once []string // the users with one view: those a drop-off after one view lists
	twice := 0
	for u, n := range views {
		if n == 1 {
			once = append(once, u)
		} else {
			twice++
		}
	}
	slices.Sort(once)
	jm := defaultMap(t)
	funnel := store.FunnelQuery{Steps: []string{"Kiosk View", "Kiosk View"}, Window: 30 * 24 * time.Hour}
	f, err := s.Funnel(ctx, jm, funnel)
	if err != nil {
		t.Fatalf("funnel: %v", err)
	}
	if got, want := []int64{f.Steps[0].Customers, f.Steps[1].Customers}, []int64{int64(len(views)), int64(twice)}; !slices.Equal(got, want) {
		t.Errorf("funnel of two views: %v persons, want %v", got, want)
	}
	d, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: funnel, Step: 1, IDsLimit: signIns})
	if err != nil {
		t.Fatalf("drop-off: %v", err)
	}
	if !slices.Equal(d.Persons, once) {
		t.Errorf("drop-off after one view: %d persons %v…, want %d: %v…", len(d.Persons), d.Persons[:min(len(d.Persons), 5)], len(once), once[:min(len(once), 5)])
	}
}
