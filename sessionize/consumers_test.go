package sessionize

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// sharedStore is what several consumers' Runners write to and read from, as they share one
// ClickHouse: events, identity links and persons (the row of the highest version wins, the
// last written of equal ones, as ReplacingMergeTree keeps them).
type sharedStore struct {
	mu      sync.Mutex
	events  []ingest.Event
	stored  map[string]string // messageId -> the person its event was stored with
	links   [][2]string       // in the order stored, each once
	persons map[string]PersonLink
	version map[string]uint64
	signIns map[string]DeviceSignIns // by device: the latest stored
	signVer map[string]uint64
}

func newSharedStore() *sharedStore {
	return &sharedStore{stored: map[string]string{}, persons: map[string]PersonLink{}, version: map[string]uint64{},
		signIns: map[string]DeviceSignIns{}, signVer: map[string]uint64{}}
}

func (s *sharedStore) Write(_ context.Context, b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, b.Events...)
	for i := range b.Events {
		s.stored[b.Events[i].MessageID] = b.PersonIDs[i]
	}
	for _, l := range b.Links {
		if !slices.Contains(s.links, l) {
			s.links = append(s.links, l)
		}
	}
	for _, p := range b.Persons {
		if b.Version >= s.version[p.CustomerKey] {
			s.persons[p.CustomerKey], s.version[p.CustomerKey] = p, b.Version
		}
	}
	for _, d := range b.SignIns {
		if b.Version >= s.signVer[d.Device] {
			s.signIns[d.Device], s.signVer[d.Device] = d, b.Version
		}
	}
	return nil
}

func (s *sharedStore) History(_ context.Context, keys []string) ([]ingest.Event, []Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ingest.Event
	for _, e := range s.events {
		if slices.Contains(keys, e.CustomerKey()) {
			out = append(out, e)
		}
	}
	return out, nil, nil
}

func (s *sharedStore) ForeignHistory(ctx context.Context, keys []string) ([]ingest.Event, []Session, error) {
	return s.History(ctx, keys)
}

func (s *sharedStore) IdentityLinks(context.Context) ([][2]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.links), nil
}

func (s *sharedStore) IdentityLinksOf(_ context.Context, ids []string, _ uint64) ([][2]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][2]string
	for _, l := range s.links {
		if slices.Contains(ids, l[0]) || slices.Contains(ids, l[1]) {
			out = append(out, l)
		}
	}
	return out, nil
}

// IdentityLinksFrom returns the links whose first id is among ids.
func (s *sharedStore) IdentityLinksFrom(_ context.Context, ids []string, _ uint64) ([][2]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][2]string
	for _, l := range s.links {
		if slices.Contains(ids, l[0]) {
			out = append(out, l)
		}
	}
	return out, nil
}

// SharedDevices returns the sign-ins stored, the newest of each device.
func (s *sharedStore) SharedDevices(context.Context) ([]DeviceSignIns, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.signIns)), nil
}

// DeviceLinks is IdentityLinksOf of devices, and the devices that are the anonymousId of a
// stored event, as the store finds them by the events' customer key.
func (s *sharedStore) DeviceLinks(ctx context.Context, devices []string, since uint64) ([][2]string, []string, error) {
	links, _ := s.IdentityLinksOf(ctx, devices, since)
	s.mu.Lock()
	defer s.mu.Unlock()
	var seen []string
	for _, d := range devices {
		if slices.ContainsFunc(s.events, func(e ingest.Event) bool { return e.CustomerKey() == d[2:] && e.AnonymousID != "" }) {
			seen = append(seen, d)
		}
	}
	return links, seen, nil
}

// personOf returns the person of the event messageId as queries read it: the person it was
// stored with, after its override.
func (s *sharedStore) personOf(messageID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.stored[messageID]
	if o, ok := s.persons[p]; ok {
		return o.PersonID
	}
	return p
}

// queriedPerson returns the person of the event messageId as queries read it (store's
// signedInRows): an anonymous event of a device whose stored sign-ins hold several users is the
// user's signed in last at or before it (before the first, the first user's); any other is
// personOf's.
func (s *sharedStore) queriedPerson(messageID string) string {
	s.mu.Lock()
	i := slices.IndexFunc(s.events, func(e ingest.Event) bool { return e.MessageID == messageID })
	var d DeviceSignIns
	if i >= 0 && s.events[i].UserID == "" {
		d = s.signIns[s.events[i].AnonymousID]
	}
	s.mu.Unlock()
	if i < 0 {
		return "(not stored)"
	}
	if len(d.Users) < 2 {
		return s.personOf(messageID)
	}
	e := s.events[i]
	user := d.Users[0]
	for j := range d.Users {
		if (signIn{us: d.From[j], seq: d.Seqs[j]}).atOrBefore(e.Timestamp.UnixMicro(), e.Seq) {
			user = d.Users[j]
		}
	}
	return user
}

// personsNow returns the persons the store holds, "key=person", sorted.
func (s *sharedStore) personsNow() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, p := range s.persons {
		out = append(out, k+"="+p.PersonID)
	}
	slices.Sort(out)
	return out
}

// TestRunnersOfTwoPartitionsNameAnAliasChainAlike: an alias chain a→b→c whose aliases are keyed
// by b and c, read by two consumers (Runners) of one store, the device dev's identify of a with
// b's alias. Each links its half: x knows dev, a and b (named b), y knows b and c (named c). The
// person of every id is c, as one consumer names it, whichever consumer stores first, and when
// both prepared their alias before either stored (so neither knew the other's). Before, the
// persons x wrote last (b → b, dev → b) split the customer in two, and stayed so. A Runner
// started on a store holding such overrides writes them again with its first batch. All with
// --alias-joins-users, which aliases of two userIds join with alone; without it, a Runner
// started on a store holding that chain's links and overrides replays its aliases as the joins
// they were: turning the flag off splits no one (their events were stored under the person).
func TestRunnersOfTwoPartitionsNameAnAliasChainAlike(t *testing.T) {
	decode := func(raw string) []ingest.Event {
		t.Helper()
		e, err := ingest.Decode([]byte(raw), "t", base)
		if err != nil {
			t.Fatal(err)
		}
		return []ingest.Event{e}
	}
	identify := decode(`{"type":"identify","anonymousId":"dev","userId":"a","timestamp":"2026-06-01T09:00:00Z","messageId":"m1"}`)
	aliasAB := decode(`{"type":"alias","previousId":"a","userId":"b","timestamp":"2026-06-01T09:01:00Z","messageId":"m2"}`)
	aliasBC := decode(`{"type":"alias","previousId":"b","userId":"c","timestamp":"2026-06-01T09:02:00Z","messageId":"m3"}`)
	viewed := decode(`{"type":"track","anonymousId":"dev","event":"Product Viewed","timestamp":"2026-06-01T09:03:00Z","messageId":"m4"}`)
	ordered := decode(`{"type":"track","userId":"c","event":"Order Completed","timestamp":"2026-06-01T09:05:00Z","messageId":"m5"}`)
	want := []string{ingest.DevicePerson("dev") + "=c", "a=c", "b=c", "c=c"}
	// personsNow is st's overrides but those of the device readings of the aliases' previousIds a
	// and b (--alias-joins-users links both readings; no event names those devices), which must
	// be c's too.
	personsNow := func(st *sharedStore) []string {
		t.Helper()
		var out []string
		for _, p := range st.personsNow() {
			if key, person, _ := strings.Cut(p, "="); key == ingest.DevicePerson("a") || key == ingest.DevicePerson("b") {
				if person != "c" {
					t.Errorf("override %q, want c's", p)
				}
				continue
			}
			out = append(out, p)
		}
		return out
	}
	ctx := context.Background()
	write := func(r *Runner, events []ingest.Event) {
		t.Helper()
		if err := r.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	for _, order := range []struct {
		name   string
		xFirst bool // x stores its alias first; else y does
	}{{"x stores first", true}, {"y stores first", false}} {
		t.Run(order.name, func(t *testing.T) {
			st := newSharedStore()
			joining := Config{AliasJoinsUsers: true}
			x, y := sharedRunnerWith(t, st, joining), sharedRunnerWith(t, st, joining)
			write(x, identify)
			// Both prepared before either stores: neither knows the other's alias.
			storeY, err := y.Prepare(ctx, aliasBC)
			if err != nil {
				t.Fatal(err)
			}
			storeX, err := x.Prepare(ctx, aliasAB)
			if err != nil {
				t.Fatal(err)
			}
			stores := []func(context.Context) error{storeY, storeX}
			if order.xFirst {
				stores[0], stores[1] = storeX, storeY
			}
			for _, store := range stores {
				if err := store(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := personsNow(st); !slices.Equal(got, want) {
				t.Errorf("persons %q, want %q", got, want)
			}
			write(x, viewed)
			write(y, ordered)
			if got := personsNow(st); !slices.Equal(got, want) {
				t.Errorf("after the tracks: persons %q, want %q", got, want)
			}
			for _, e := range slices.Concat(viewed, ordered) {
				if p := st.personOf(e.MessageID); p != "c" {
					t.Errorf("%s's %s is read as %s's, want c's", e.CustomerKey(), e.Event, p)
				}
			}
		})
	}
	t.Run("restart over overrides of half the chain", func(t *testing.T) {
		st := newSharedStore()
		st.events = slices.Concat(identify, aliasAB, aliasBC)
		st.links = [][2]string{{"u:a", "a:dev"}, {"u:c", "u:b"}, {"u:c", "a:b"}, {"u:b", "u:a"}, {"u:b", "a:a"}}
		// y's persons (version 1), then x's (version 2): b → b written last.
		st.Write(ctx, Batch{Persons: []PersonLink{{"b", "c"}, {ingest.DevicePerson("b"), "c"}, {"c", "c"}}, Version: 1})
		st.Write(ctx, Batch{Persons: []PersonLink{{"a", "b"}, {ingest.DevicePerson("a"), "b"}, {"b", "b"}, {ingest.DevicePerson("dev"), "b"}}, Version: 2})
		write(sharedRunnerWith(t, st, Config{AliasJoinsUsers: true}), viewed)
		if got := personsNow(st); !slices.Equal(got, want) {
			t.Errorf("persons %q, want %q", got, want)
		}
	})
	t.Run("without --alias-joins-users over the chain's links and overrides", func(t *testing.T) {
		// As stored live, and by an older build that stored no alias's device reading: b is then
		// in aliases of two userIds alone. The flag turned off splits none of the joins it made
		// (the events were stored under the joined person): restarted and resessionized, the
		// chain is one person still, named as with the flag.
		for _, links := range [][][2]string{
			{{"u:a", "a:dev"}, {"a:dev", "a:dev"}, {"u:c", "u:b"}, {"a:b", "u:c"}, {"u:b", "u:a"}, {"a:a", "u:b"}},
			{{"u:a", "a:dev"}, {"u:c", "u:b"}, {"u:b", "u:a"}},
		} {
			stored := func() *sharedStore {
				st := newSharedStore()
				st.events = slices.Concat(identify, aliasAB, aliasBC)
				st.links = slices.Clone(links)
				st.Write(ctx, Batch{Persons: []PersonLink{{"a", "c"}, {"b", "c"}, {"c", "c"}, {ingest.DevicePerson("dev"), "c"}}, Version: 1})
				return st
			}
			st := stored()
			write(sharedRunner(t, st), viewed) // restarted
			if got := personsNow(st); !slices.Equal(got, want) {
				t.Errorf("links %q, restarted: persons %q, want %q", links, got, want)
			}
			st = stored()
			resessionized(t, st, []string{"dev", "b", "c"})
			if got := personsNow(st); !slices.Equal(got, want) {
				t.Errorf("links %q, resessionized: persons %q, want %q", links, got, want)
			}
		}
	})
}

// TestLearnTakesADevicesAliasAsNoMerge: a stored link of a user's alias from a device's id
// (device first, see Output.Links) learned from another consumer is a sign-in, as a restart
// reads it (RestoreLinks): it never joins two users, and the device's own sign-in, replayed
// first, keeps the device: carol stays alone, the device dave's.
func TestLearnTakesADevicesAliasAsNoMerge(t *testing.T) {
	s := newTestSessionizer(t)
	persons, _ := s.Learn(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), [][2]string{{"a:D", "u:carol"}, {"u:dave", "a:D"}})
	if got := s.ids.personOf("u:carol"); got != "u:carol" {
		t.Errorf("carol's person is %s, want carol alone", got)
	}
	if got := s.ids.personOf("a:D"); got != "u:dave" {
		t.Errorf("the device's person is %s, want dave's (its one merge)", got)
	}
	for _, p := range persons {
		if p.CustomerKey == "carol" {
			t.Errorf("learned persons %v name carol", persons)
		}
	}
	if !slices.Contains(s.RestoreKeys([]string{"D"}), "carol") {
		t.Errorf("restoring the device does not restore carol's key, which holds her alias's sign-in: %v", s.RestoreKeys([]string{"D"}))
	}
}

// TestRunnersOfTwoPartitionsKeepADevicesAliasersApart is tester 19's T6: alice and bob each sign
// in on device D (identify, keyed by D) and a server aliases each from D's id (no anonymousId:
// keyed by the user), two consumers (Runners of one store) reading the keys in every split
// (x always reads D's key) and in 40 arrival orders each that keep each key's order (random
// merges of the keys' events, one Write each). Whatever the split
// and the order, alice and bob stay two persons, each one's own order is theirs, and D's
// anonymous pages go to whoever was signed in on D at their time (DeviceSignIns): live, after a
// restart (a Runner restoring the stored links) and rebuilt from the stored links as waymark
// resessionize does. Orders in which both aliases are read before x has read any event of D
// were left out while an alias's previousId seen as no device was read as an earlier userId too,
// which joined alice and bob; it is not by default (an alias joins no two userIds), so every
// order is in.
func TestRunnersOfTwoPartitionsKeepADevicesAliasersApart(t *testing.T) {
	byKey := map[string][]ingest.Event{ // each key's events in its partition's order
		"D": {call("page", "Home", "D", "", 0), call("identify", "", "D", "alice", 1), call("page", "Catalog", "D", "", 3),
			call("identify", "", "D", "bob", 10), call("page", "Cart", "D", "", 12)},
		"alice": {aliasFromD("alice", 2), call("track", "Order Completed", "", "alice", 4)},
		"bob":   {aliasFromD("bob", 11), call("track", "Order Completed", "", "bob", 13)},
	}
	want := map[string]string{ // by messageId: the person queries read
		byKey["D"][0].MessageID: "alice", byKey["D"][2].MessageID: "alice", byKey["D"][4].MessageID: "bob",
		byKey["alice"][1].MessageID: "alice", byKey["bob"][1].MessageID: "bob",
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(19, 6))
	for _, split := range []struct {
		name string
		y    []string // the keys y reads; x reads the others
	}{{"one consumer", nil}, {"y reads alice and bob", []string{"alice", "bob"}}, {"y reads alice", []string{"alice"}}, {"y reads bob", []string{"bob"}}} {
		for n := 0; n < 40; {
			// An arrival order keeping each key's order: a random merge of the keys' events.
			next := map[string]int{}
			var order []ingest.Event
			for len(order) < len(byKey["D"])+len(byKey["alice"])+len(byKey["bob"]) {
				var ready []string
				for _, k := range []string{"D", "alice", "bob"} {
					if next[k] < len(byKey[k]) {
						ready = append(ready, k)
					}
				}
				k := ready[rng.IntN(len(ready))]
				order = append(order, byKey[k][next[k]])
				next[k]++
			}
			n++
			var names []string
			for _, e := range order {
				names = append(names, e.MessageID)
			}
			what := fmt.Sprintf("%s, order %d %v", split.name, n, names)
			st := newSharedStore()
			x, y := sharedRunner(t, st), sharedRunner(t, st)
			for _, e := range order {
				r := x
				if slices.Contains(split.y, e.CustomerKey()) {
					r = y
				}
				if err := r.Write(ctx, []ingest.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			checkPersons(t, what+", live", st, want)
			// Restarted: one Runner restores the stored links and writes every person again.
			if err := sharedRunner(t, st).Write(ctx, []ingest.Event{call("page", "Later", "E", "", 30)}); err != nil {
				t.Fatal(err)
			}
			checkPersons(t, what+", restarted", st, want)
			// Rebuilt from the stored links, as waymark resessionize does.
			s := resessionized(t, st, []string{"D", "alice", "bob"})
			checkPersons(t, what+", resessionized", st, want)
			if a, b := s.ids.personOf("u:alice"), s.ids.personOf("u:bob"); a == b {
				t.Errorf("%s, resessionized: alice and bob are one person, %s", what, a)
			}
		}
	}
}

// TestOneConsumerReadsAnAliasFromABrowsedDeviceAsASignIn is tester 20's report: a device that
// only browsed (a page under its anonymousId, no userId), then a server's aliases of erin and
// frank from the device's id (no anonymousId: keyed by each user), one consumer. The device's id
// was seen as an event's anonymousId, so each alias is that user signing in on the device, never
// an alias of two userIds: erin and frank stay two persons, each order theirs, and the page,
// before either signed in, is the first user's (DeviceSignIns), in every batching, across a
// restart of the Runner (which restores the stored links and the keys it meets) and rebuilt from
// the stored links as waymark resessionize does. Before, the first alias made u:D erin's and the
// second joined frank to her through it. The order whose first alias precedes every event of
// the device reads that alias's previousId as a possibly earlier userId (Segment's alias spec),
// which joins no one yet; the second, after the page, is a sign-in.
func TestOneConsumerReadsAnAliasFromABrowsedDeviceAsASignIn(t *testing.T) {
	ev := map[string]ingest.Event{
		"page":   call("page", "Home", "D", "", 0),
		"erin":   aliasFromD("erin", 1),
		"frank":  aliasFromD("frank", 61),
		"order":  call("track", "SC Order", "", "erin", 2),
		"order2": call("track", "SC Order", "", "frank", 62),
		"later":  call("page", "Later", "E", "", 90),
	}
	want := map[string]string{ev["page"].MessageID: "erin", ev["order"].MessageID: "erin", ev["order2"].MessageID: "frank"}
	ctx := context.Background()
	// Each step is a batch of the events named, or "restart": a new Runner on the store.
	for _, tt := range []struct {
		name  string
		steps [][]string
	}{
		{"one event a batch", [][]string{{"page"}, {"erin"}, {"frank"}, {"order"}, {"order2"}}},
		{"both aliases in one batch after the page", [][]string{{"page"}, {"erin", "frank"}, {"order", "order2"}}},
		{"the page and both aliases in one batch", [][]string{{"page", "erin", "frank"}, {"order", "order2"}}},
		{"all in one batch", [][]string{{"page", "erin", "frank", "order", "order2"}}},
		// A batch's partitions are taken in the consumer's order: the aliases, keyed by their
		// users, may come before the device's event in one batch (tester 21's kiosk).
		{"both aliases before the page in one batch", [][]string{{"erin", "frank", "page"}, {"order", "order2"}}},
		{"the aliases, orders, then the page in one batch", [][]string{{"frank", "order2", "erin", "order", "page"}}},
		{"orders first", [][]string{{"page"}, {"order", "order2"}, {"erin"}, {"frank"}}},
		{"frank's alias first", [][]string{{"page"}, {"frank"}, {"erin"}, {"order", "order2"}}},
		{"restart after the page", [][]string{{"page"}, {"restart"}, {"erin", "frank"}, {"order", "order2"}}},
		{"restart between the aliases", [][]string{{"page"}, {"erin"}, {"restart"}, {"frank"}, {"order", "order2"}}},
		{"restart, then the users' orders alone", [][]string{{"page"}, {"erin"}, {"frank"}, {"restart"}, {"order", "order2"}}},
		{"erin's alias before the page", [][]string{{"erin"}, {"page"}, {"frank"}, {"order", "order2"}}},
		{"erin's alias before the page, restart", [][]string{{"erin"}, {"page"}, {"restart"}, {"frank"}, {"order", "order2"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newSharedStore()
			r := sharedRunner(t, st)
			for _, step := range tt.steps {
				if step[0] == "restart" {
					r = sharedRunner(t, st)
					continue
				}
				var batch []ingest.Event
				for _, name := range step {
					batch = append(batch, ev[name])
				}
				if err := r.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			checkPersons(t, "live", st, want)
			if a, b := r.core.ids.personOf("u:erin"), r.core.ids.personOf("u:frank"); a == b {
				t.Errorf("live: erin and frank are one person, %s", a)
			}
			// Restarted: one Runner restores the stored links and writes every person again.
			if err := sharedRunner(t, st).Write(ctx, []ingest.Event{ev["later"]}); err != nil {
				t.Fatal(err)
			}
			checkPersons(t, "restarted", st, want)
			// Rebuilt from the stored links, as waymark resessionize does.
			s := resessionized(t, st, []string{"erin", "frank", "D"})
			checkPersons(t, "resessionized", st, want)
			if a, b := s.ids.personOf("u:erin"), s.ids.personOf("u:frank"); a == b {
				t.Errorf("resessionized: erin and frank are one person, %s", a)
			}
		})
	}
}

// aliasFromD is a server's alias of user from device D's id (no anonymousId: keyed by user), at
// minutes after base.
func aliasFromD(user string, minutes float64) ingest.Event {
	e := call("alias", "", "", user, minutes)
	e.PreviousID = "D"
	return e
}

// sharedRunner returns a Runner of a new test sessionizer on st, as a consumer (re)started on it.
func sharedRunner(t *testing.T, st *sharedStore) *Runner {
	t.Helper()
	return sharedRunnerWith(t, st, Config{})
}

// sharedRunnerWith is sharedRunner of a sessionizer with cfg.
func sharedRunnerWith(t *testing.T, st *sharedStore, cfg Config) *Runner {
	t.Helper()
	r, err := NewRunner(newSessionizerWith(t, cfg), st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkPersons fails t for each event of want (messageId: person) that queries of st read as
// another person's.
func checkPersons(t *testing.T, what string, st *sharedStore, want map[string]string) {
	t.Helper()
	for id, person := range want {
		if got := st.queriedPerson(id); got != person {
			t.Errorf("%s: %s is read as %s's, want %s's (persons %q, links %q, sign-ins %v)", what, id, got, person, st.personsNow(), st.links, st.signIns)
		}
	}
}

// resessionized rebuilds the persons and sessions of keys (and those restored with them) from
// st's stored links and events, as waymark resessionize does, writes them to st, and returns the
// sessionizer that rebuilt them.
func resessionized(t *testing.T, st *sharedStore, keys []string) *Sessionizer {
	t.Helper()
	return resessionizedWith(t, st, keys, Config{})
}

// resessionizedWith is resessionized by a sessionizer of cfg (waymark resessionize's flags).
func resessionizedWith(t *testing.T, st *sharedStore, keys []string, cfg Config) *Sessionizer {
	t.Helper()
	ctx := context.Background()
	s := newSessionizerWith(t, cfg)
	links, _ := st.IdentityLinks(ctx)
	s.RestoreLinks(links)
	_, seen, _ := st.DeviceLinks(ctx, s.AliasedNonDevices(), math.MaxUint64)
	s.SeenAsDevices(seen)
	keys = s.RestoreKeys(keys)
	events, sessions, _ := st.History(ctx, keys)
	s.RestoreHistory(keys, events, sessions)
	out, _ := s.Push(base, nil)
	if err := st.Write(ctx, Batch{Sessions: out.Sessions, Persons: s.PersonsOf(keys), SignIns: s.SignInsOf(keys), Version: out.Version}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAliasJoinsNoUsers is tester 37's F3: an alias whose previousId is another person's userId
// joined the two persons for good. (A) analytics.js fills a missing previousId with the signed-in
// user's id, so bob's alias(bob) on the family laptop dev where alice is signed in names alice;
// (B) with the public write key, server aliases of c1 and c2 to c3 made three one-time buyers one
// loyal buyer (c2 buys from a server, keyed by its userId). By default no alias joins two
// persons that each have a userId: each event is read as its own user's, in 40 arrival orders
// that keep each key's order, by one consumer and by two (Runners of one store) in every split
// of the keys, live, after a restart and rebuilt as waymark resessionize does. Each refused join
// the sessionizer can see (previousId a userId it knows) is counted as a conflict. With
// --alias-joins-users, the old join: every event is the alias's userId's.
func TestAliasJoinsNoUsers(t *testing.T) {
	alias := aliasCall
	for _, tt := range []struct {
		name   string
		byKey  map[string][]ingest.Event // each key's events in its partition's order
		splits [][]string                // the keys y reads in each two-consumer split
		want   map[string]string         // by messageId: the person queries read
		joined string                    // the person of every want event with --alias-joins-users
		// conflicts and merges counted when one sessionizer reads the keys' events in the order
		// of keys: an alias's previousId read as a device that names no key joins no one's
		// events, and is no merge (tester 39's F2)
		conflicts, merges int
		keys              []string
	}{
		{
			name: "A: analytics.js's alias on alice's laptop",
			byKey: map[string][]ingest.Event{
				"dev": {call("identify", "", "dev", "alice", 0), call("track", "Viewed", "dev", "alice", 1),
					alias("dev", "alice", "bob", 60), call("identify", "", "dev", "bob", 60.01), call("track", "Ordered", "dev", "bob", 65)},
				"alice": {call("track", "Viewed", "", "alice", 2)}, // from the shop's server
			},
			splits: [][]string{{"alice"}},
			want: map[string]string{"track-Viewed-dev-alice-1": "alice", "track-Viewed--alice-2": "alice",
				"track-Ordered-dev-bob-65": "bob"},
			joined: "bob",
			// bob's alias: the join refused, and its sign-in on alice's device; bob's identify and
			// order from it (every event with both ids is a sign-in).
			conflicts: 4, merges: 1, keys: []string{"dev", "alice"},
		},
		{
			name: "B: three buyers aliased to one",
			byKey: map[string][]ingest.Event{
				"d1": {call("identify", "", "d1", "c1", 0), call("track", "Order Completed", "d1", "c1", 1)},
				"c2": {call("track", "Order Completed", "", "c2", 2)},
				"d3": {call("identify", "", "d3", "c3", 3), call("track", "Order Completed", "d3", "c3", 4)},
				"c3": {alias("", "c1", "c3", 10), alias("", "c2", "c3", 11)},
			},
			splits: [][]string{{"c3"}, {"c2", "c3"}, {"d1", "c2"}},
			want: map[string]string{"track-Order Completed-d1-c1-1": "c1", "track-Order Completed--c2-2": "c2",
				"track-Order Completed-d3-c3-4": "c3"},
			joined:    "c3",
			conflicts: 2, merges: 2, keys: []string{"d1", "c2", "d3", "c3"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var users []string
			for _, p := range tt.want {
				if !slices.Contains(users, p) {
					users = append(users, p)
				}
			}
			rng := rand.New(rand.NewPCG(37, 3))
			for _, split := range append([][]string{nil}, tt.splits...) {
				for n := range 40 {
					order := mergeKeys(rng, tt.byKey)
					var names []string
					for _, e := range order {
						names = append(names, e.MessageID)
					}
					what := fmt.Sprintf("y reads %v, order %d %v", split, n, names)
					st := newSharedStore()
					x, y := sharedRunner(t, st), sharedRunner(t, st)
					for _, e := range order {
						r := x
						if slices.Contains(split, e.CustomerKey()) {
							r = y
						}
						if err := r.Write(ctx, []ingest.Event{e}); err != nil {
							t.Fatal(err)
						}
					}
					checkPersons(t, what+", live", st, tt.want)
					if err := sharedRunner(t, st).Write(ctx, []ingest.Event{call("page", "Later", "E", "", 300)}); err != nil {
						t.Fatal(err)
					}
					checkPersons(t, what+", restarted", st, tt.want)
					// Turned on, the flag joins no users of aliases read while it was off: not
					// at a restart, nor by resessionize (tester 39's F1).
					joining := Config{AliasJoinsUsers: true}
					if err := sharedRunnerWith(t, st, joining).Write(ctx, []ingest.Event{call("page", "Later", "F", "", 301)}); err != nil {
						t.Fatal(err)
					}
					checkPersons(t, what+", restarted with --alias-joins-users", st, tt.want)
					resessionizedWith(t, st, slices.Collect(maps.Keys(tt.byKey)), joining)
					checkPersons(t, what+", resessionized with --alias-joins-users", st, tt.want)
					s := resessionized(t, st, slices.Collect(maps.Keys(tt.byKey)))
					checkPersons(t, what+", resessionized", st, tt.want)
					for i, u := range users {
						for _, v := range users[i+1:] {
							if s.ids.personOf("u:"+u) == s.ids.personOf("u:"+v) {
								t.Errorf("%s, resessionized: %s and %s are one person", what, u, v)
							}
						}
					}
				}
			}
			var inOrder []ingest.Event
			for _, k := range tt.keys {
				inOrder = append(inOrder, tt.byKey[k]...)
			}
			s, conflicts, merges := newTestSessionizer(t), 0, 0
			for _, e := range inOrder {
				_, stats := s.Push(base, []ingest.Event{e})
				conflicts += stats.UserIDConflicts
				merges += stats.IdentityMerges
			}
			if conflicts != tt.conflicts || merges != tt.merges {
				t.Errorf("%d conflicts and %d merges counted, want %d and %d", conflicts, merges, tt.conflicts, tt.merges)
			}
			st := newSharedStore()
			r := sharedRunnerWith(t, st, Config{AliasJoinsUsers: true})
			for _, e := range inOrder {
				if err := r.Write(ctx, []ingest.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			for id := range tt.want {
				if got := st.queriedPerson(id); got != tt.joined {
					t.Errorf("--alias-joins-users: %s is read as %s's, want %s's", id, got, tt.joined)
				}
			}
		})
	}
}

// mergeKeys returns an arrival order of the keys' events that keeps each key's order: a random
// merge.
func mergeKeys(rng *rand.Rand, byKey map[string][]ingest.Event) []ingest.Event {
	keys := slices.Sorted(maps.Keys(byKey))
	next := map[string]int{}
	var order []ingest.Event
	for {
		var ready []string
		for _, k := range keys {
			if next[k] < len(byKey[k]) {
				ready = append(ready, k)
			}
		}
		if len(ready) == 0 {
			return order
		}
		k := ready[rng.IntN(len(ready))]
		order = append(order, byKey[k][next[k]])
		next[k]++
	}
}

// TestABrowsedDeviceStoredAfterTheAliasIsTheAliasersAtARestart: a server's alias of erin from
// device D's id (keyed by erin) read by consumer x before any event of D is seen anywhere, then
// D's pages stored by consumer y, which had read the stored links before the alias was. Without
// --alias-joins-users the alias's previousId, seen as no device when it was read, names no key
// (it may be another user's userId, identities.namesKey), so y, which did not know the alias,
// stored D's pages with D's own person, erin's only after a restart (tester 42's F1). Now y reads
// the stored links naming D before it takes D's page in (Runner.learnDeviceKeys): the page is
// erin's live. A restart looks the devices aliases named up in the stored events and finds D's:
// its pages are erin's, as resessionize makes them; one consumer that reads the page before the
// alias makes them erin's live. A
// userId's events (f3-alice's, keyed by her userId) are never a device's: an alias from her id
// never takes them, restarted or resessionized.
func TestABrowsedDeviceStoredAfterTheAliasIsTheAliasersAtARestart(t *testing.T) {
	ctx := context.Background()
	page := call("page", "Home", "D", "", 0)
	alias := aliasFromD("erin", 5)
	order := call("track", "Order Completed", "", "erin", 6)
	aliceOrder := call("track", "Order Completed", "", "alice", 7)
	aliceAlias := call("alias", "", "", "bob", 8)
	aliceAlias.PreviousID = "alice"
	want := map[string]string{page.MessageID: "erin", order.MessageID: "erin", aliceOrder.MessageID: "alice"}
	write := func(r *Runner, e ingest.Event) {
		t.Helper()
		if err := r.Write(ctx, []ingest.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	st := newSharedStore()
	x, y := sharedRunner(t, st), sharedRunner(t, st)
	write(y, call("page", "Home", "F", "", 0)) // y has read the stored links
	write(x, alias)
	write(y, page)
	write(x, order)
	write(y, aliceOrder)
	write(x, aliceAlias)
	if got := st.queriedPerson(page.MessageID); got != "erin" {
		t.Errorf("live: the page is read as %s's, want erin's", got)
	}
	write(sharedRunner(t, st), call("page", "Later", "E", "", 30))
	checkPersons(t, "restarted", st, want)
	resessionized(t, st, []string{"D", "erin", "alice", "bob"})
	checkPersons(t, "resessionized", st, want)
	st = newSharedStore()
	x = sharedRunner(t, st)
	for _, e := range []ingest.Event{page, alias, order, aliceOrder, aliceAlias} {
		write(x, e)
	}
	checkPersons(t, "one consumer, the page first", st, want)
}

// TestAnAliasReadByOneConsumerIsTheDevicesAtTheOther is tester 42's F1: a server's alias of erin
// from device D's id (no anonymousId: keyed by erin, read by consumer x) read before D's own
// events reach their consumer y. x stores the link D → erin, but as no event of D is held or
// stored, D names no key and no override D → erin is written; y took D's views in with D's own
// person and never learned the link (it reads links at its start, and for persons whose links it
// stores), so a funnel of D's views and erin's order counted two persons until a restart, where
// one consumer counts one. Now y reads the stored links naming D first before it takes in D's
// events (Runner.learnDeviceKeys), and when y took them in while x read the alias (neither saw
// the other's), x asks again with its later batches (Runner.learnDevices): every case reads as
// one consumer does. Past aliasRace without a batch x does not ask again: a restart mends it.
func TestAnAliasReadByOneConsumerIsTheDevicesAtTheOther(t *testing.T) {
	ctx := context.Background()
	page := call("page", "Home", "D", "", 0)
	viewed := call("track", "Product Viewed", "D", "", 1)
	alias := aliasFromD("erin", 5)
	order := call("track", "Order Completed", "", "erin", 6)
	later := call("track", "Order Completed", "", "fay", 7) // another user, on x's partition
	want := map[string]string{page.MessageID: "erin", viewed.MessageID: "erin", order.MessageID: "erin", later.MessageID: "fay"}
	write := func(r *Runner, events ...ingest.Event) {
		t.Helper()
		if err := r.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		// run sends the calls to x (the users' partitions) and y (the device's), both started on
		// st before any of them.
		run func(x, y *Runner)
		// live is whose the device's views are before a restart: erin's, as one consumer's, but
		// where the race is left to a restart.
		live string
	}{
		{"one consumer", func(x, _ *Runner) { write(x, alias, order); write(x, page, viewed); write(x, later) }, "erin"},
		{"the alias stored before the device's events", func(x, y *Runner) {
			write(x, alias, order)
			write(y, page)
			write(y, viewed)
			write(x, later)
		}, "erin"},
		{"the device's events taken in while the alias is read", func(x, y *Runner) {
			store, err := y.Prepare(ctx, []ingest.Event{page, viewed}) // y looked before x stored
			if err != nil {
				t.Fatal(err)
			}
			write(x, alias, order) // x looked before y stored
			if err := store(ctx); err != nil {
				t.Fatal(err)
			}
			write(x, later)
		}, "erin"},
		{"the race, and no batch of x within aliasRace", func(x, y *Runner) {
			store, err := y.Prepare(ctx, []ingest.Event{page, viewed})
			if err != nil {
				t.Fatal(err)
			}
			write(x, alias, order)
			if err := store(ctx); err != nil {
				t.Fatal(err)
			}
			x.now = func() time.Time { return time.Now().Add(aliasRace + time.Second) }
			write(x, later)
		}, ingest.DevicePerson("D")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newSharedStore()
			x, y := sharedRunner(t, st), sharedRunner(t, st)
			write(x, call("page", "Home", "F", "", 0)) // both have read the stored links
			write(y, call("page", "Home", "G", "", 0))
			tt.run(x, y)
			live := maps.Clone(want)
			live[page.MessageID], live[viewed.MessageID] = tt.live, tt.live
			checkPersons(t, "live", st, live)
			write(sharedRunner(t, st), call("page", "Later", "E", "", 30))
			checkPersons(t, "restarted", st, want)
		})
	}
}

// TestAServersAliasersShareADevice is tester 42's F6: device D only browses (pages under its
// anonymousId, no userId), and its users sign in on it only by a server's alias from its id (no
// anonymousId: keyed by the user, so often read by another consumer than D's): u1 at minute 1,
// u2 at minute 10. D is a shared device: its pages before u2's alias are u1's (the first, at
// minute 0, too: before the first sign-in, the first user's), those after are u2's
// (DeviceSignIns), as one consumer makes them. With the keys split over two or three consumers
// (Runners of one store) so that each alias's consumer may see one user of D, in 40 arrival
// orders per split that keep each key's order, each consumer preparing a batch while its last
// is stored and the consumers' steps interleaved at random (consumeConcurrently), the answer is
// the same: live, after a restart and rebuilt as waymark resessionize does. Before, when the
// aliases' consumers each prepared before the other's link was stored, or one learned the other
// user's alias by restoring its key, no consumer wrote D's sign-ins with both users, and the
// override of D's key to the user whose consumer wrote it last took the other's browsing for
// good (28 of the 240 runs wrong live, 27 after a restart and resessionize). The same holds for
// a device signed in on by its own identifies too (tester 19's T6), with a third user's alias
// (41 of 240 wrong live, after a restart and resessionize, before). A store an older build left
// without D's sign-ins is mended by waymark resessionize, and by a restarted consumer when D's
// next event comes (it restores D with its aliasers' keys, which makes D shared there, and writes
// its sign-ins); before, neither wrote them.
func TestAServersAliasersShareADevice(t *testing.T) {
	for _, tt := range []struct {
		name   string
		byKey  map[string][]ingest.Event // each key's events in its partition's order
		want   map[string]string         // by messageId: the person queries read
		splits [][2][]string             // the keys y and z read in each split; x reads the others
		users  []string                  // never one person
		next   string                    // the user signed in on D after its last sign-in
	}{
		{
			name: "a browsed device",
			byKey: map[string][]ingest.Event{
				"D":  {call("page", "Home", "D", "", 0), call("page", "Catalog", "D", "", 3), call("page", "Cart", "D", "", 12)},
				"u1": {aliasFromD("u1", 1), call("track", "Order Completed", "", "u1", 4)},
				"u2": {aliasFromD("u2", 10), call("track", "Order Completed", "", "u2", 13)},
			},
			want: map[string]string{"page-Home-D--0": "u1", "page-Catalog-D--3": "u1", "page-Cart-D--12": "u2",
				"track-Order Completed--u1-4": "u1", "track-Order Completed--u2-13": "u2"},
			splits: [][2][]string{{}, {{"u1"}}, {{"u2"}}, {{"u1", "u2"}}, {{"D"}}, {{"u1"}, {"u2"}}},
			users:  []string{"u1", "u2"}, next: "u2",
		},
		{
			name: "a device signed in on by its own identifies too",
			byKey: map[string][]ingest.Event{
				"D": {call("page", "Home", "D", "", 0), call("identify", "", "D", "alice", 1), call("page", "Catalog", "D", "", 3),
					call("identify", "", "D", "bob", 10), call("page", "Cart", "D", "", 12), call("page", "Exit", "D", "", 22)},
				"alice": {aliasFromD("alice", 2), call("track", "Order Completed", "", "alice", 4)},
				"bob":   {aliasFromD("bob", 11), call("track", "Order Completed", "", "bob", 13)},
				"carol": {aliasFromD("carol", 20), call("track", "Order Completed", "", "carol", 21)},
			},
			want: map[string]string{"page-Home-D--0": "alice", "page-Catalog-D--3": "alice", "page-Cart-D--12": "bob",
				"page-Exit-D--22": "carol", "track-Order Completed--alice-4": "alice", "track-Order Completed--bob-13": "bob",
				"track-Order Completed--carol-21": "carol"},
			splits: [][2][]string{{}, {{"alice", "bob", "carol"}}, {{"alice"}}, {{"bob"}, {"carol"}}, {{"alice"}, {"bob", "carol"}}, {{"D"}, {"carol"}}},
			users:  []string{"alice", "bob", "carol"}, next: "carol",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			keys := slices.Sorted(maps.Keys(tt.byKey))
			rng := rand.New(rand.NewPCG(42, 6))
			for _, split := range tt.splits {
				for n := range 40 {
					order := mergeKeys(rng, tt.byKey)
					var names []string
					for _, e := range order {
						names = append(names, e.MessageID)
					}
					what := fmt.Sprintf("y reads %v, z reads %v, order %d %v", split[0], split[1], n, names)
					st := newSharedStore()
					x, y, z := sharedRunner(t, st), sharedRunner(t, st), sharedRunner(t, st)
					byRunner := map[*Runner][]ingest.Event{}
					for _, e := range order {
						r := x
						switch {
						case slices.Contains(split[0], e.CustomerKey()):
							r = y
						case slices.Contains(split[1], e.CustomerKey()):
							r = z
						}
						byRunner[r] = append(byRunner[r], e)
					}
					consumeConcurrently(t, rng, byRunner)
					checkPersons(t, what+", live", st, tt.want)
					// Restarted: one Runner restores the stored links and writes every person again.
					if err := sharedRunner(t, st).Write(ctx, []ingest.Event{call("page", "Later", "E", "", 30)}); err != nil {
						t.Fatal(err)
					}
					checkPersons(t, what+", restarted", st, tt.want)
					// Rebuilt from the stored links, as waymark resessionize does.
					s := resessionized(t, st, keys)
					checkPersons(t, what+", resessionized", st, tt.want)
					for i, u := range tt.users {
						for _, v := range tt.users[i+1:] {
							if s.ids.personOf("u:"+u) == s.ids.personOf("u:"+v) {
								t.Errorf("%s, resessionized: %s and %s are one person", what, u, v)
							}
						}
					}
					// A store an older build left without D's sign-ins.
					forget := func() {
						st.mu.Lock()
						clear(st.signIns)
						clear(st.signVer)
						st.mu.Unlock()
					}
					forget()
					resessionized(t, st, []string{"D"})
					checkPersons(t, what+", resessionized over no sign-ins", st, tt.want)
					forget()
					later := call("page", "Later", "D", "", 40)
					if err := sharedRunner(t, st).Write(ctx, []ingest.Event{later}); err != nil {
						t.Fatal(err)
					}
					withLater := maps.Clone(tt.want)
					withLater[later.MessageID] = tt.next
					checkPersons(t, what+", restarted over no sign-ins, D's next page", st, withLater)
				}
			}
		})
	}
}

// consumeConcurrently has each Runner take in its events one a batch, as a consumer does: a
// batch is prepared while the one before it is stored, and the Runners' prepares and stores
// interleave at random (rng), so a consumer may prepare a batch before another's store it would
// have read, and store after the other read.
func consumeConcurrently(t testing.TB, rng *rand.Rand, byRunner map[*Runner][]ingest.Event) {
	t.Helper()
	ctx := context.Background()
	type consumer struct {
		r       *Runner
		events  []ingest.Event
		pending []func(context.Context) error // prepared, not stored: at most two
	}
	var cs []*consumer
	for r, events := range byRunner {
		cs = append(cs, &consumer{r: r, events: events})
	}
	slices.SortFunc(cs, func(a, b *consumer) int { return strings.Compare(a.events[0].MessageID, b.events[0].MessageID) })
	type action struct {
		c       *consumer
		prepare bool
	}
	for {
		var enabled []action
		for _, c := range cs {
			if len(c.events) > 0 && len(c.pending) < 2 {
				enabled = append(enabled, action{c, true})
			}
			if len(c.pending) > 0 {
				enabled = append(enabled, action{c, false})
			}
		}
		if len(enabled) == 0 {
			return
		}
		a := enabled[rng.IntN(len(enabled))]
		if a.prepare {
			store, err := a.c.r.Prepare(ctx, a.c.events[:1])
			if err != nil {
				t.Fatal(err)
			}
			a.c.events, a.c.pending = a.c.events[1:], append(a.c.pending, store)
			continue
		}
		if err := a.c.pending[0](ctx); err != nil {
			t.Fatal(err)
		}
		a.c.pending = a.c.pending[1:]
	}
}
