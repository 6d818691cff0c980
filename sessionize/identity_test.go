package sessionize

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// call is a Segment call of device anon (and user, when signed in) at base + minutes.
func call(typ, event, anon, user string, minutes float64) ingest.Event {
	e := at(user, event, minutes)
	e.Type, e.AnonymousID = typ, anon
	e.MessageID = fmt.Sprintf("%s-%s-%s-%s-%v", typ, event, anon, user, minutes)
	return e
}

// aliasCall is an alias call from previousId prev to user (from device anon, when a client sent
// it; "" for a server's) at base + minutes.
func aliasCall(anon, prev, user string, minutes float64) ingest.Event {
	e := call("alias", "", anon, user, minutes)
	e.PreviousID = prev
	return e
}

// TestLoginDoesNotSplitAVisit is field case 07: a visit whose customer logs in half way is one
// session of four touchpoints (identify is not one), and the events before the login go to the
// user through an override.
func TestLoginDoesNotSplitAVisit(t *testing.T) {
	s := newTestSessionizer(t)
	events := []ingest.Event{
		call("page", "Home", "brw-1", "", 0),
		call("track", "Product Viewed", "brw-1", "", 2),
		call("identify", "", "brw-1", "user-314", 4),
		call("track", "Product Added", "brw-1", "user-314", 5),
		call("track", "Order Completed", "brw-1", "user-314", 8),
	}
	out, _ := s.Push(base, events)
	if len(out.Sessions) != 1 {
		t.Fatalf("sessions %+v, want one", out.Sessions)
	}
	got := out.Sessions[0]
	if got.Events != 4 || got.EntryEvent != "Home" || got.ExitEvent != "Order Completed" || got.PersonID != "user-314" || got.CustomerKey != "brw-1" {
		t.Errorf("session %+v: want 4 events from Home to Order Completed, device brw-1, person user-314", got)
	}
	if want := []string{ingest.DevicePerson("brw-1"), ingest.DevicePerson("brw-1"), "user-314", "user-314", "user-314"}; !slices.Equal(out.PersonIDs, want) {
		t.Errorf("persons at ingest %v, want %v", out.PersonIDs, want)
	}
	if got := personsOf(out); got != "$device:brw-1=user-314 user-314=user-314" {
		t.Errorf("overrides %s, want brw-1 moved to user-314", got)
	}
}

// TestIdentityCallsAreNotSessions: a customer who only ever identified has no session.
func TestIdentityCallsAreNotSessions(t *testing.T) {
	s := newTestSessionizer(t)
	out, _ := s.Push(base, []ingest.Event{call("identify", "", "d", "u", 0), call("group", "", "d", "u", 1), call("alias", "", "", "u", 2)})
	if len(out.Sessions) != 0 {
		t.Errorf("sessions %+v, want none", out.Sessions)
	}
}

// TestSharedDeviceGoesToWhoeverIsSignedIn: on a device three users sign in on without a reset,
// an anonymous event goes to the user signed in last before it, and the browsing before the first
// sign-in to the first user to sign in (by event time), and so do the sessions, in any arrival
// order, one event per batch (the worst arrival): in order, reversed and shuffled. Carl is signed
// in again by an event carrying his userId between dora's and erin's sign-ins: the device keeps it
// even when all carl's sign-ins arrive before anyone else's.
func TestSharedDeviceGoesToWhoeverIsSignedIn(t *testing.T) {
	events := []ingest.Event{ // five sessions, 30 minutes apart or more
		call("page", "Home", "dev", "", -120), // before any sign-in: carl, the first to sign in
		call("identify", "", "dev", "carl", 0),
		call("page", "Catalog", "dev", "", 2),
		call("identify", "", "dev", "dora", 60),
		call("page", "Cart", "dev", "", 62),
		call("track", "Order Completed", "dev", "dora", 63),
		call("track", "Product Viewed", "dev", "carl", 100), // carl again
		call("page", "Reviews", "dev", "", 102),
		call("identify", "", "dev", "erin", 150),
		call("page", "Wishlist", "dev", "", 155),
		call("identify", "", "dev", "carl", 200),
	}
	wantAnonymous := map[string]string{"Home": "carl", "Catalog": "carl", "Cart": "dora", "Reviews": "carl", "Wishlist": "erin"}
	wantSessions := "Cart:dora Catalog:carl Home:carl Product Viewed:carl Wishlist:erin" // by entry; a session's person is its last touchpoint's
	for name, order := range arrivalOrders(len(events), 10) {
		s := newTestSessionizer(t)
		live := map[string]Session{} // by id, the latest emitted
		for _, i := range order {
			out, _ := s.Push(base, []ingest.Event{events[i]})
			for _, ss := range out.Sessions {
				live[ss.ID] = ss
			}
		}
		var got []string
		for _, ss := range live {
			if !ss.Deleted {
				got = append(got, ss.EntryEvent+":"+ss.PersonID)
			}
		}
		slices.Sort(got)
		if strings.Join(got, " ") != wantSessions {
			t.Errorf("%s: sessions' persons %v, want %s", name, got, wantSessions)
		}
		for _, e := range events { // the person an anonymous event arriving now is stored with
			if want, ok := wantAnonymous[e.Event]; ok {
				if p := s.ids.personAt("", "dev", e.Timestamp.UnixMicro(), e.Seq)[2:]; p != want {
					t.Errorf("%s: %s would be stored as %s's, want %s's", name, e.Event, p, want)
				}
			}
		}
	}
}

// arrivalOrders returns orders of n events by name: in order, reversed, and shuffles with fixed
// seeds.
func arrivalOrders(n, shuffles int) map[string][]int {
	inOrder := make([]int, n)
	for i := range inOrder {
		inOrder[i] = i
	}
	reversed := slices.Clone(inOrder)
	slices.Reverse(reversed)
	orders := map[string][]int{"in order": inOrder, "reversed": reversed}
	for seed := range shuffles {
		o := slices.Clone(inOrder)
		rand.New(rand.NewPCG(uint64(seed), 2)).Shuffle(n, func(i, j int) { o[i], o[j] = o[j], o[i] })
		orders[fmt.Sprintf("shuffle %d", seed)] = o
	}
	return orders
}

// TestAliasChainEndsAtTheNewestUserID: with --alias-joins-users, alias calls make previousId an
// alias of userId (Segment), so after old → mid → new the person is "new", whichever order the
// aliases arrive in.
func TestAliasChainEndsAtTheNewestUserID(t *testing.T) {
	alias := func(prev, user string, minutes float64) ingest.Event { return aliasCall("", prev, user, minutes) }
	chain := []ingest.Event{call("identify", "", "dev", "old", 0), alias("old", "mid", 1), alias("mid", "new", 2)}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {2, 0, 1}} {
		s := newSessionizerWith(t, Config{AliasJoinsUsers: true})
		persons := map[string]string{}
		for _, i := range order {
			out, _ := s.Push(base, []ingest.Event{chain[i]})
			for _, p := range out.Persons {
				persons[p.CustomerKey] = p.PersonID
			}
		}
		var parts []string
		for _, k := range []string{ingest.DevicePerson("dev"), "old", "mid", "new"} {
			parts = append(parts, readable(k)+"="+persons[k])
		}
		if got := strings.Join(parts, " "); got != "$device:dev=new old=new mid=new new=new" {
			t.Errorf("order %v: %s", order, got)
		}
	}
}

// TestAliasCycleNamesOnePersonInAnyOrder: a fresh tester's aliases anA→ua1→ua2→ua3→ua1 close a
// cycle, where no userId is the one the aliases lead to. The person was named by the order the
// links were applied in: ua3 live when the aliases came in time order, ua2 when ua1's two came
// first (its partition read first, or waymark resessionize's customer-by-customer replay). It is
// now the smallest alias userId, ua1, in every arrival order and after a restart that replays
// the stored links in any order; a chain still ends at its last userId. (Aliases of two userIds
// join them with --alias-joins-users alone.)
func TestAliasCycleNamesOnePersonInAnyOrder(t *testing.T) {
	alias := func(prev, user string, minutes float64) ingest.Event { return aliasCall("", prev, user, minutes) }
	for _, tt := range []struct {
		name   string
		events []ingest.Event
		want   string
	}{
		{"cycle", []ingest.Event{call("page", "Home", "anA", "", 0), alias("anA", "ua1", 1), alias("ua1", "ua2", 2), alias("ua2", "ua3", 3), alias("ua3", "ua1", 4)}, "ua1"},
		{"chain", []ingest.Event{call("page", "Home", "anA", "", 0), alias("anA", "ua1", 1), alias("ua1", "ua2", 2), alias("ua2", "ua3", 3)}, "ua3"},
		{"two chains to one", []ingest.Event{alias("a", "c", 1), alias("b", "c", 2), alias("c", "d", 3)}, "d"},
		{"one id aliased twice", []ingest.Event{alias("a", "c", 1), alias("a", "b", 2)}, "b"},
	} {
		for name, order := range arrivalOrders(len(tt.events), 20) {
			s := newSessionizerWith(t, Config{AliasJoinsUsers: true})
			persons := map[string]string{}
			var links [][2]string
			for _, i := range order {
				out, _ := s.Push(base, []ingest.Event{tt.events[i]})
				links = append(links, out.Links...)
				for _, p := range out.Persons {
					persons[p.CustomerKey] = p.PersonID
				}
			}
			for key, person := range persons {
				if person != tt.want {
					t.Errorf("%s, %s: %s is person %s, want %s", tt.name, name, key, person, tt.want)
				}
			}
			slices.Reverse(links)
			restarted := newSessionizerWith(t, Config{AliasJoinsUsers: true})
			restarted.RestoreLinks(links)
			for key := range persons {
				id := "u:" + key // the id the override's key stands for (see storedPerson)
				if device, ok := strings.CutPrefix(key, ingest.DevicePerson("")); ok {
					id = "a:" + device
				}
				if got := restarted.ids.personOf(id); got != "u:"+tt.want {
					t.Errorf("%s, %s: after a restart %s is person %s, want %s", tt.name, name, readable(key), got, tt.want)
				}
			}
		}
	}
}

// TestSharedDeviceSignInsDoNotDependOnOrder: the sign-ins a shared device ends up with, which
// queries use to give its anonymous events to whoever was signed in, are the same in any arrival
// order; a device only one user signed in on has none.
func TestSharedDeviceSignInsDoNotDependOnOrder(t *testing.T) {
	events := []ingest.Event{
		call("page", "Home", "dev", "", 0),
		call("identify", "", "dev", "alice", 1),
		call("page", "Cart", "dev", "", 2),
		call("track", "Product Viewed", "dev", "alice", 3),
		call("identify", "", "dev", "bob", 60),
		call("page", "Checkout", "dev", "", 61),
		call("track", "Order Completed", "dev", "bob", 62),
		call("track", "Product Added", "dev", "alice", 90), // alice again, whose sign-in at 120 comes after
		call("identify", "", "dev", "alice", 120),
		call("identify", "", "laptop", "carol", 5), // one user's device
	}
	want := fmt.Sprint([]DeviceSignIns{{Device: "dev", From: []int64{base.Add(time.Minute).UnixMicro(), base.Add(time.Hour).UnixMicro(), base.Add(90 * time.Minute).UnixMicro()}, Seqs: []int64{0, 0, 0}, Users: []string{"alice", "bob", "alice"}}})
	for seed := range 30 {
		shuffled := slices.Clone(events)
		rand.New(rand.NewPCG(uint64(seed), 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		s := newTestSessionizer(t)
		var last []DeviceSignIns
		for _, e := range shuffled {
			if out, _ := s.Push(base, []ingest.Event{e}); out.SignIns != nil {
				last = out.SignIns
			}
		}
		if got := fmt.Sprint(last); got != want {
			t.Errorf("seed %d: sign-ins %s, want %s", seed, got, want)
		}
		// A sessionizer started again restores the device from its stored events, in the
		// store's order, and knows the same sign-ins.
		restarted := newTestSessionizer(t)
		restarted.Restore("dev", slices.DeleteFunc(slices.Clone(shuffled), func(e ingest.Event) bool { return e.AnonymousID != "dev" }), nil)
		if d, _ := restarted.ids.sharedSignIns("a:dev"); fmt.Sprint([]DeviceSignIns{d}) != want {
			t.Errorf("seed %d: restored sign-ins %v, want %s", seed, d, want)
		}
	}
}

// TestSignInsInOneMillisecondFollowTheClientsOrder is defect 2 of the second tester's report:
// three users sign in on a device in the same millisecond, in separate calls, between two
// anonymous page views. The one tie rule orders them as the client sent them (seq, the Kafka
// offset of the first delivery), so the view before them is the first sender's and the view
// after them the last sender's, and the device's sign-ins list them in that order: in every
// arrival order, one event per batch, and when the sessionizer restarts part way (restoring the
// device from its stored events) and the rest arrive after.
func TestSignInsInOneMillisecondFollowTheClientsOrder(t *testing.T) {
	for _, sent := range [][]string{{"bob", "alice", "carl"}, {"carl", "alice", "bob"}} {
		events := []ingest.Event{call("page", "Tie View", "dev", "", 0)}
		for _, user := range sent {
			events = append(events, call("identify", "", "dev", user, 5))
		}
		events = append(events, call("page", "After", "dev", "", 6))
		for i := range events {
			events[i].Seq = int64(100 + i) // the client's order
		}
		at5 := base.Add(5 * time.Minute).UnixMicro()
		wantSignIns := fmt.Sprint([]DeviceSignIns{{Device: "dev", From: []int64{at5, at5, at5}, Seqs: []int64{101, 102, 103}, Users: sent}})
		wantPerson := map[string]string{"Tie View": sent[0], "After": sent[2]}
		wantSession := "Tie View>After:" + sent[2] // one visit; its person is its last touchpoint's
		for name, order := range arrivalOrders(len(events), 20) {
			for restartAt := range len(events) { // 0: no restart
				s, live, signIns := replayDevice(t, events, order, restartAt)
				what := fmt.Sprintf("sent %v, %s, restart at %d", sent, name, restartAt)
				if got := fmt.Sprint(signIns); got != wantSignIns {
					t.Errorf("%s: sign-ins %s, want %s", what, got, wantSignIns)
				}
				for _, e := range []ingest.Event{events[0], events[len(events)-1]} {
					event, want := e.Event, wantPerson[e.Event]
					if got := s.ids.personAt("", "dev", e.Timestamp.UnixMicro(), e.Seq)[2:]; got != want {
						t.Errorf("%s: %s would be stored as %s's, want %s's", what, event, got, want)
					}
				}
				if got := liveSessions(live); got != wantSession {
					t.Errorf("%s: sessions %v, want %s", what, got, wantSession)
				}
			}
		}
	}
}

// TestAnonymousEventsInASignInsMillisecondFollowTheClientsOrder: SDKs that stamp to the second
// put a shared device's page views and sign-ins in one timestamp. The one tie rule orders them as
// the client sent them (seq), so a view goes to the user the client signed in last before it,
// and one before every sign-in to the first user, not to whoever signed in last in that
// millisecond: in every arrival order, one event per batch, with the sessionizer restarted part
// way, and with every event delivered again afterwards (a retried batch, at later offsets, which
// keeps its first seq and person). Sessions take their last touchpoint's person the same way.
func TestAnonymousEventsInASignInsMillisecondFollowTheClientsOrder(t *testing.T) {
	events := []ingest.Event{ // the client's order; all but the last in one millisecond
		call("page", "Door", "dev", "", 0),
		call("identify", "", "dev", "alice", 0),
		call("page", "Shelf", "dev", "", 0),
		call("identify", "", "dev", "bob", 0),
		call("page", "Counter", "dev", "", 0),
		call("track", "Product Viewed", "dev", "bob", 0),
		call("identify", "", "dev", "alice", 0), // alice again
		call("page", "Till", "dev", "", 0),
		call("identify", "", "dev", "carl", 0),
		call("page", "Exit", "dev", "", 60),
	}
	for i := range events {
		events[i].MessageID = fmt.Sprintf("m%d", i) // the calls at one time are distinct messages
		events[i].Seq = int64(100 + i)
	}
	wantPerson := map[string]string{"Door": "alice", "Shelf": "alice", "Counter": "bob", "Till": "alice", "Exit": "carl"}
	at0 := base.UnixMicro()
	wantSignIns := fmt.Sprint([]DeviceSignIns{{Device: "dev", From: []int64{at0, at0, at0, at0},
		Seqs: []int64{101, 103, 106, 108}, Users: []string{"alice", "bob", "alice", "carl"}}})
	wantSessions := "Door>Till:alice Exit>Exit:carl" // Till, the visit's last touchpoint, is alice's
	for name, order := range arrivalOrders(len(events), 20) {
		for restartAt := range len(events) { // 0: no restart
			what := fmt.Sprintf("%s, restart at %d", name, restartAt)
			s, live, signIns := replayDevice(t, events, order, restartAt)
			if got := fmt.Sprint(signIns); got != wantSignIns {
				t.Errorf("%s: sign-ins %s, want %s", what, got, wantSignIns)
			}
			if got := liveSessions(live); got != wantSessions {
				t.Errorf("%s: sessions %s, want %s", what, got, wantSessions)
			}
			again := slices.Clone(events)
			for i := range again {
				again[i].Seq += 1000
			}
			out, _ := s.Push(base, again)
			if out.SignIns != nil || len(out.Sessions) != 0 {
				t.Errorf("%s: delivered again, changed sign-ins %v, sessions %v", what, out.SignIns, out.Sessions)
			}
			for i, e := range events {
				if out.Seqs[i] != e.Seq {
					t.Errorf("%s: %d delivered again is stored with seq %d, want its first, %d", what, i, out.Seqs[i], e.Seq)
				}
				if want, ok := wantPerson[e.Event]; ok && out.PersonIDs[i] != want {
					t.Errorf("%s: %s delivered again is stored as %s's, want %s's", what, e.Event, out.PersonIDs[i], want)
				}
			}
		}
	}
}

// replayDevice pushes events, one per batch, to a new sessionizer in order (indexes of events);
// at restartAt > 0 it starts another that restores the events pushed so far and the sessions
// stored so far, as serve restarted does, and pushes the rest to it. It returns the sessionizer
// last used, the live sessions by id as last emitted, and the device's sign-ins as last emitted.
func replayDevice(t *testing.T, events []ingest.Event, order []int, restartAt int) (*Sessionizer, map[string]Session, []DeviceSignIns) {
	t.Helper()
	s := newTestSessionizer(t)
	live := map[string]Session{}
	var signIns []DeviceSignIns
	for k, i := range order {
		if k == restartAt && k > 0 {
			var stored []ingest.Event
			for _, j := range order[:k] {
				stored = append(stored, events[j])
			}
			var sessions []Session // as stored
			for _, ss := range live {
				if !ss.Deleted {
					sessions = append(sessions, ss)
				}
			}
			s = newTestSessionizer(t)
			s.Restore("dev", stored, sessions)
			if d, ok := s.ids.sharedSignIns("a:dev"); ok {
				signIns = []DeviceSignIns{d}
			}
		}
		out, _ := s.Push(base, []ingest.Event{events[i]})
		for _, ss := range out.Sessions {
			live[ss.ID] = ss
		}
		if out.SignIns != nil {
			signIns = out.SignIns
		}
	}
	return s, live, signIns
}

// liveSessions lists the sessions not deleted as "entry>exit:person", sorted, space-separated.
func liveSessions(live map[string]Session) string {
	var got []string
	for _, ss := range live {
		if !ss.Deleted {
			got = append(got, ss.EntryEvent+">"+ss.ExitEvent+":"+ss.PersonID)
		}
	}
	slices.Sort(got)
	return strings.Join(got, " ")
}

// TestAliasFromASharedDeviceIsASignIn is the kind of field case 05 an alias makes: alice signs in
// on a device, then the device's alias (analytics.js: previousId is the anonymousId) names carol.
// An alias from an anonymousId is that user signing in on the device, like identify (Segment;
// PostHog refuses to merge two identified persons): alice and carol stay two persons, whatever
// order the calls arrive in, the refused link is counted, and the device's anonymous events go to
// whoever signed in last before them. The device's id is no userId. A server's alias from a
// userId (old, signed in on the phone) joins no userIds either: new stays a person of its own,
// and old keeps the phone (without --alias-joins-users, see TestAliasJoinsNoUsers).
func TestAliasFromASharedDeviceIsASignIn(t *testing.T) {
	alias := aliasCall
	events := []ingest.Event{
		call("identify", "", "dev", "alice", 0),
		call("page", "View", "dev", "", 1),
		alias("dev", "dev", "carol", 60),
		call("page", "Cart", "dev", "", 61),
		call("track", "Order", "dev", "carol", 62),
		call("identify", "", "phone", "old", 0),
		alias("", "old", "new", 30), // a server's alias of an earlier userId
	}
	wantAnonymous := map[string]string{"View": "alice", "Cart": "carol"}
	wantPersons := map[string]string{"alice": "alice", "carol": "carol", "old": "old", "phone": "old", "new": "new"}
	for name, order := range arrivalOrders(len(events), 6) {
		s := newTestSessionizer(t)
		persons, conflicts := map[string]string{}, 0
		for _, i := range order {
			out, stats := s.Push(base, []ingest.Event{events[i]})
			conflicts += stats.UserIDConflicts
			for _, p := range out.Persons {
				persons[p.CustomerKey] = p.PersonID
			}
		}
		for key, want := range wantPersons {
			if got := s.ids.personOf("u:" + key); key != "phone" && got != "u:"+want {
				t.Errorf("%s: %s is %s's, want %s's", name, key, got, want)
			}
			if got, ok := persons[key]; ok && got != want {
				t.Errorf("%s: override %s=%s, want %s", name, key, got, want)
			}
		}
		if _, ok := s.ids.parent["u:dev"]; ok {
			t.Errorf("%s: the device's anonymousId was taken for a userId", name)
		}
		if conflicts == 0 {
			t.Errorf("%s: no conflict counted, want carol's links to alice's device", name)
		}
		for _, e := range events {
			if want, ok := wantAnonymous[e.Event]; ok {
				if p := s.ids.personAt("", "dev", e.Timestamp.UnixMicro(), e.Seq)[2:]; p != want {
					t.Errorf("%s: %s would be stored as %s's, want %s's", name, e.Event, p, want)
				}
			}
		}
		if d, ok := s.ids.sharedSignIns("a:dev"); !ok || !slices.Equal(d.Users, []string{"alice", "carol"}) {
			t.Errorf("%s: sign-ins %+v, want alice then carol", name, d)
		}
	}
}

// TestKioskKeepsEveryUsersSignIn is field case 05 on a shop's kiosk: 70 customers sign in one
// after another, each viewing a page anonymously 30 s later, and on a family laptop two users
// take turns 80 times. Every view goes to the customer signed in before it, in any arrival order.
func TestKioskKeepsEveryUsersSignIn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users int // distinct users
		turns int // sign-ins
	}{
		{"kiosk", 70, 70},
		{"laptop", 2, 160},
	} {
		var events []ingest.Event
		want := map[string]string{} // view -> user
		for i := range tc.turns {
			user, view := fmt.Sprintf("u%02d", i%tc.users), fmt.Sprintf("view %d", i)
			events = append(events, call("identify", "", "kiosk", user, float64(10*i)), call("page", view, "kiosk", "", float64(10*i)+0.5))
			want[view] = user
		}
		for name, order := range arrivalOrders(len(events), 3) {
			s := newTestSessionizer(t)
			lost := 0
			for _, i := range order {
				_, stats := s.Push(base, []ingest.Event{events[i]})
				lost += stats.SignInsLost
			}
			if lost != 0 {
				t.Errorf("%s, %s: %d sign-ins lost", tc.name, name, lost)
			}
			for _, e := range events {
				if user, ok := want[e.Event]; ok {
					if got := s.ids.personAt("", "kiosk", e.Timestamp.UnixMicro(), e.Seq)[2:]; got != user {
						t.Errorf("%s, %s: %s went to %s, want %s", tc.name, name, e.Event, got, user)
					}
				}
			}
		}
	}
}

// TestSignInsPastTheBoundGoToNoUser: a device keeps MaxDeviceSignIns sign-ins; past them the oldest but
// the first are dropped and counted, and the anonymous events of their span go to no user: never
// to the first user or to anyone else than who was signed in. In time order and reversed the
// device keeps the same sign-ins (the newest); in any order no event goes to a wrong user.
func TestSignInsPastTheBoundGoToNoUser(t *testing.T) {
	oneGoroutine(t)
	const n = MaxDeviceSignIns + 40
	var events []ingest.Event
	want := map[string]string{}
	for i := range n {
		user, view := fmt.Sprintf("u%d", i%3), fmt.Sprintf("view %d", i)
		events = append(events, call("identify", "", "kiosk", user, float64(i)), call("page", view, "kiosk", "", float64(i)+0.5))
		want[view] = user
	}
	var signIns []DeviceSignIns
	for name, order := range arrivalOrders(len(events), 1) {
		s := newTestSessionizer(t)
		lost := 0
		for chunk := range slices.Chunk(order, 100) { // a push per event would cut the device's sessions 8,000 times
			batch := make([]ingest.Event, len(chunk))
			for j, i := range chunk {
				batch[j] = events[i]
			}
			_, stats := s.Push(base, batch)
			lost += stats.SignInsLost
		}
		if lost == 0 {
			t.Errorf("%s: no sign-in counted lost", name)
		}
		if got := len(s.ids.users["a:kiosk"]); got != MaxDeviceSignIns {
			t.Errorf("%s: %d sign-ins kept, want %d", name, got, MaxDeviceSignIns)
		}
		nobody := 0
		for i, e := range events {
			user, ok := want[e.Event]
			if !ok {
				continue
			}
			got := s.ids.personAt("", "kiosk", e.Timestamp.UnixMicro(), e.Seq)[2:]
			switch {
			case got == "\x00kiosk":
				nobody++
			case got != user:
				t.Errorf("%s: %s went to %s, want %s or no user", name, e.Event, got, user)
			case i/2 > 0 && i/2 < n-MaxDeviceSignIns+2 && name != "shuffle 0":
				t.Errorf("%s: %s went to %s, though its sign-in was dropped", name, e.Event, got)
			}
		}
		if nobody == 0 {
			t.Errorf("%s: no view went to no user", name)
		}
		if name == "shuffle 0" {
			continue
		}
		d, _ := s.ids.sharedSignIns("a:kiosk")
		signIns = append(signIns, d)
	}
	if len(signIns) == 2 && fmt.Sprint(signIns[0]) != fmt.Sprint(signIns[1]) {
		t.Errorf("in order and reversed keep different sign-ins")
	}
}

// TestLongRunsAreThinnedNotLost: on a family laptop two users take 1,500 turns, each signed in
// for four events, 6,000 sign-ins: past MaxDeviceSignIns the device keeps each run's first and
// last sign-in, so who was signed in when stays exact and nothing is lost, in time order and
// reversed. Arriving shuffled, a sign-in can land inside a run already thinned: its span then
// goes to no user, never to a wrong one.
func TestLongRunsAreThinnedNotLost(t *testing.T) {
	oneGoroutine(t)
	const turns = 1500
	var events []ingest.Event
	want := map[string]string{}
	for i := range turns {
		user, view, m := fmt.Sprintf("u%d", i%2), fmt.Sprintf("view %d", i), float64(10*i)
		events = append(events, call("identify", "", "laptop", user, m), call("track", "A", "laptop", user, m+1),
			call("track", "B", "laptop", user, m+2), call("page", view, "laptop", "", m+3), call("track", "C", "laptop", user, m+4))
		want[view] = user
	}
	for name, order := range arrivalOrders(len(events), 2) {
		s := newTestSessionizer(t)
		lost := 0
		for chunk := range slices.Chunk(order, 100) {
			batch := make([]ingest.Event, len(chunk))
			for j, i := range chunk {
				batch[j] = events[i]
			}
			_, stats := s.Push(base, batch)
			lost += stats.SignInsLost
		}
		exact := !strings.HasPrefix(name, "shuffle")
		if exact && lost != 0 {
			t.Errorf("%s: %d sign-ins lost", name, lost)
		}
		if n := len(s.ids.users["a:laptop"]); n > MaxDeviceSignIns {
			t.Errorf("%s: %d sign-ins kept", name, n)
		}
		wrong, nobody := 0, 0
		for _, e := range events {
			if user, ok := want[e.Event]; ok {
				switch got := s.ids.personAt("", "laptop", e.Timestamp.UnixMicro(), e.Seq)[2:]; {
				case got == "\x00laptop" && !exact:
					nobody++
				case got != user:
					wrong++
				}
			}
		}
		if wrong > 0 {
			t.Errorf("%s: %d views went to a wrong user (%d to no user)", name, wrong, nobody)
		}
		t.Logf("%s: %d sign-ins lost, %d views to no user", name, lost, nobody)
	}
}

// TestSupersededCopyTakesBackItsSignIn: a sign-in whose retry was stamped again later (alice's
// identify at 65 min) and whose first copy (at 1 min) arrives after it is one sign-in, at 1 min:
// the superseded copy's sign-in is taken back, so the device's anonymous event at 70 min goes to
// bob, who signed in at 60, in any arrival order, as after a restart from the stored events.
func TestSupersededCopyTakesBackItsSignIn(t *testing.T) {
	retry := call("identify", "", "dev", "alice", 65)
	first := call("identify", "", "dev", "alice", 1)
	retry.MessageID, first.MessageID = "alice-signs-in", "alice-signs-in"
	events := []ingest.Event{
		retry,
		call("identify", "", "dev", "bob", 60),
		call("page", "Home", "dev", "", 70),
		first,
	}
	want := fmt.Sprint(DeviceSignIns{Device: "dev", From: []int64{base.Add(time.Minute).UnixMicro(), base.Add(time.Hour).UnixMicro()},
		Seqs: []int64{0, 0}, Users: []string{"alice", "bob"}})
	for _, order := range permutations(len(events)) {
		s := newTestSessionizer(t)
		st := &storedRows{}
		for _, i := range order {
			st.push(s, base, []ingest.Event{events[i]})
		}
		if got := fmt.Sprint(st.signIns["dev"]); got != want {
			t.Errorf("order %v: stored sign-ins %s, want %s", order, got, want)
		}
		for name, s := range map[string]*Sessionizer{"live": s, "restarted": st.restart(t)} {
			if d, _ := s.ids.sharedSignIns("a:dev"); fmt.Sprint(d) != want {
				t.Errorf("order %v, %s: sign-ins %v, want %s", order, name, d, want)
			}
			if got := s.ids.personAt("", "dev", base.Add(70*time.Minute).UnixMicro(), 0); got != "u:bob" {
				t.Errorf("order %v, %s: the page at 70 min is %s's, want bob's", order, name, got)
			}
		}
	}
}

// TestSignInSupersededFromAnotherKeyIsTakenBack: alice's sign-in on a shared device (at 65 min)
// that a copy sent earlier by a server (at 1 min, no anonymousId) supersedes is no sign-in: the
// device's stored sign-ins are those a restart from the stored events knows (bob's alone, which
// replace the shared ones stored before), in any arrival order.
func TestSignInSupersededFromAnotherKeyIsTakenBack(t *testing.T) {
	retry := call("identify", "", "dev", "alice", 65)
	server := call("identify", "", "", "alice", 1)
	retry.MessageID, server.MessageID = "alice-signs-in", "alice-signs-in"
	events := []ingest.Event{retry, call("identify", "", "dev", "bob", 60), call("page", "Home", "dev", "", 70), server}
	for _, order := range permutations(len(events)) {
		s, st := newTestSessionizer(t), &storedRows{}
		for _, i := range order {
			st.push(s, base, []ingest.Event{events[i]})
		}
		stored := st.signIns["dev"]
		want, shared := st.restart(t).ids.sharedSignIns("a:dev")
		if shared && fmt.Sprint(stored) != fmt.Sprint(want) || !shared && len(stored.Users) > 1 {
			t.Errorf("order %v: stored sign-ins %v, want those restored, %v", order, stored, want)
		}
	}
}

// TestRestoringADeviceCountsNoSignInLost: sign-ins a device drops past MaxDeviceSignIns are
// counted lost when they arrive, not again each time the device is restored (after a restart, or
// an eviction): a push after a restore counts only what it loses.
func TestRestoringADeviceCountsNoSignInLost(t *testing.T) {
	var events []ingest.Event
	for i := range MaxDeviceSignIns + 40 {
		events = append(events, call("identify", "", "kiosk", fmt.Sprintf("u%d", i%3), float64(i)))
	}
	s := newTestSessionizer(t)
	s.Restore("kiosk", events, nil)
	if _, stats := s.Push(base, []ingest.Event{call("page", "Home", "laptop", "", 1)}); stats.SignInsLost != 0 {
		t.Errorf("a push of another device's page counted %d sign-ins lost", stats.SignInsLost)
	}
}

// TestServersAliasFromADeviceIsASignIn is the tester's report: a device D browses anonymously
// (a view at 09:00), the shop's server sends alias(previousId D, userId carol) at 09:05 (no
// anonymousId: it is keyed by carol, on another partition), then dave signs in on D at 09:10 and
// orders at 09:12. An alias from a device's id is its userId signing in on the device at the
// alias's time, as an identify from it is (Segment's alias; analytics.js aliases from the
// anonymousId), so the device's sign-ins are carol at 09:05 then dave at 09:10: the view is
// carol's (before the first sign-in, the first user) and the order dave's, two persons (PostHog
// refuses to merge two identified persons). Before, the answer hung on the arrival order: alias
// first gave two persons, identify first one (dave's; the alias refused, no sign-in). Checked in
// every order, one push each, all in one push and split in two pushes; after a restart from the
// stored rows; and with a restart part way, restoring as a Runner does (the stored links, then
// what toRestore names before each push).
func TestServersAliasFromADeviceIsASignIn(t *testing.T) {
	alias := call("alias", "", "", "carol", 65)
	alias.PreviousID = "D"
	events := []ingest.Event{
		call("track", "Product Viewed", "D", "", 60),
		alias,
		call("identify", "", "D", "dave", 70),
		call("track", "Order Completed", "D", "", 72),
	}
	wantPerson := []string{"carol", "carol", "dave", "dave"}
	wantSignIns := fmt.Sprint(DeviceSignIns{Device: "D", From: []int64{base.Add(65 * time.Minute).UnixMicro(), base.Add(70 * time.Minute).UnixMicro()},
		Seqs: []int64{0, 0}, Users: []string{"carol", "dave"}})
	check := func(t *testing.T, what string, s *Sessionizer) {
		t.Helper()
		if d, _ := s.ids.sharedSignIns("a:D"); fmt.Sprint(d) != wantSignIns {
			t.Errorf("%s: sign-ins %v, want %s", what, d, wantSignIns)
		}
		for i, e := range events {
			if got := s.ids.personAt(e.UserID, e.AnonymousID, e.Timestamp.UnixMicro(), e.Seq)[2:]; got != wantPerson[i] {
				t.Errorf("%s: %s %s is %s's, want %s's", what, e.Type, e.Event, got, wantPerson[i])
			}
		}
		if s.ids.personOf("u:carol") == s.ids.personOf("u:dave") {
			t.Errorf("%s: carol and dave are one person", what)
		}
	}
	for _, order := range permutations(len(events)) {
		sent := make([]ingest.Event, len(order))
		for k, i := range order {
			sent[k] = events[i]
		}
		for split := range len(sent) + 1 { // len(sent): one push each; else pushes sent[:split] and sent[split:]
			pushes := [][]ingest.Event{sent[:split], sent[split:]}
			if split == len(sent) {
				pushes = nil
				for _, e := range sent {
					pushes = append(pushes, []ingest.Event{e})
				}
			}
			what := fmt.Sprintf("order %v, split %d", order, split)
			s, st := newTestSessionizer(t), &storedRows{}
			for _, p := range pushes {
				st.push(s, base, p)
			}
			check(t, what+", live", s)
			if got := fmt.Sprint(st.signIns["D"]); got != wantSignIns {
				t.Errorf("%s: stored sign-ins %s, want %s", what, got, wantSignIns)
			}
			if got := liveSessions(live(st.sessions)); got != "Product Viewed>Order Completed:dave" {
				t.Errorf("%s: sessions %s, want the device's visit, dave's (its last touchpoint's)", what, got)
			}
			check(t, what+", restarted", st.restart(t))
			if split == 0 || split == len(sent) {
				continue
			}
			// Restarted after the first push, restoring as a Runner does.
			s, st = newTestSessionizer(t), &storedRows{}
			st.push(s, base, pushes[0])
			s = newTestSessionizer(t)
			s.RestoreLinks(st.links)
			st.restoreFor(s, pushes[1])
			st.push(s, base, pushes[1])
			if got := fmt.Sprint(st.signIns["D"]); got != wantSignIns {
				t.Errorf("%s, restarted between the pushes: stored sign-ins %s, want %s", what, got, wantSignIns)
			}
			check(t, what+", restarted between the pushes", s)
		}
	}
}

// TestAliasSignInsAreKeptOnAOneUserDevice: while one user signs in on a device it keeps only
// their first and last sign-ins, giving the others back from the device's events when a second
// user comes (Sessionizer.signIn); an alias's sign-in is under the user's key, not the device's,
// so it is kept. carol signs in on D at 09:01, aliases from D at 09:05 and signs in at 09:30;
// dave signs in at 09:03: a view at 09:10 is carol's (signed in again at 09:05), in every order.
func TestAliasSignInsAreKeptOnAOneUserDevice(t *testing.T) {
	alias := call("alias", "", "", "carol", 65)
	alias.PreviousID = "D"
	events := []ingest.Event{
		call("identify", "", "D", "carol", 61),
		call("identify", "", "D", "dave", 63),
		alias,
		call("page", "View", "D", "", 70),
		call("identify", "", "D", "carol", 90),
	}
	eachOrderOneByOne(t, events, func(order []int, name string, s *Sessionizer, _ *storedRows) {
		if got := s.ids.personAt("", "D", base.Add(70*time.Minute).UnixMicro(), 0); got != "u:carol" {
			t.Errorf("order %v, %s: the view at 09:10 is %s's, want carol's", order, name, got)
		}
	})
}

// eachOrderOneByOne pushes events one per Push in every order, each order into a sessionizer of
// its own, and hands check the sessionizer live and restarted from what it stored, with those
// rows.
func eachOrderOneByOne(t *testing.T, events []ingest.Event, check func(order []int, name string, s *Sessionizer, st *storedRows)) {
	t.Helper()
	for _, order := range permutations(len(events)) {
		s, st := newTestSessionizer(t), &storedRows{}
		for _, i := range order {
			st.push(s, base, []ingest.Event{events[i]})
		}
		check(order, "live", s, st)
		check(order, "restarted", st.restart(t), st)
	}
}

// TestSupersededAliasTakesBackItsSignIn: an alias from a device's id is a sign-in on the device,
// so a copy of it stamped again later (a server's retry at 09:20) that the first copy (09:05)
// supersedes is no sign-in, as after a restart from the stored events: dave, who signed in at
// 09:10, is signed in at 09:25, in every arrival order.
func TestSupersededAliasTakesBackItsSignIn(t *testing.T) {
	first, retry := call("alias", "", "", "carol", 65), call("alias", "", "", "carol", 80)
	first.PreviousID, retry.PreviousID = "D", "D"
	first.MessageID, retry.MessageID = "carol-alias", "carol-alias"
	events := []ingest.Event{retry, call("identify", "", "D", "dave", 70), call("page", "View", "D", "", 85), first}
	eachOrderOneByOne(t, events, func(order []int, name string, s *Sessionizer, st *storedRows) {
		if got := s.ids.personAt("", "D", base.Add(85*time.Minute).UnixMicro(), 0); got != "u:dave" {
			t.Errorf("order %v, %s: the view at 09:25 is %s's, want dave's", order, name, got)
		}
		if got, want := fmt.Sprint(st.signIns["D"].Users), "[carol dave]"; name == "live" && got != want {
			t.Errorf("order %v: stored sign-ins %v, want %s", order, st.signIns["D"], want)
		}
	})
}

// BenchmarkKioskSignIns: 20,000 customers sign in one after another on one kiosk (a server's
// alias from its anonymousId, or an identify on it), each then viewing a page there, pushed 500
// events at a time: past MaxDeviceSignIns the kiosk thins its sign-ins at each one. It reports
// the time per sign-in; listing the aliasing users by a search of the list made it grow with
// their number (5.3 s for 32,000 aliases, 2.1 s since).
func BenchmarkKioskSignIns(b *testing.B) {
	const customers = 20000
	for _, how := range []string{"alias", "identify"} {
		b.Run(how, func(b *testing.B) {
			var events []ingest.Event
			for i := range customers {
				user := fmt.Sprintf("customer-%d", i)
				signIn := call("identify", "", "KIOSK", user, float64(i))
				if how == "alias" {
					signIn = call("alias", "", "", user, float64(i))
					signIn.PreviousID = "KIOSK"
				}
				events = append(events, signIn, call("page", "Home", "KIOSK", "", float64(i)+0.5))
			}
			for b.Loop() {
				s := newTestSessionizer(b)
				for i := 0; i < len(events); i += 500 {
					s.Push(base, events[i:min(i+500, len(events))])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(customers*b.N), "ns/sign-in")
		})
	}
}

// TestForgedAliasesFillNoUsersCap is tester 39's F4: anyone with the public write key can POST
// /v1/alias from made-up ids to a user, and each one joined her person as an id of its own, so
// 510 of them filled her cap of 500 and her own laptop's sign-in was refused as a runaway merge.
// The ids an alias names that no event has used count apart, against a cap of their own (here
// 10 each): the forged ones past it are refused, her laptop's sign-in is not; and a real device a
// server aliased from before its events came counts with the keys once they do.
func TestForgedAliasesFillNoUsersCap(t *testing.T) {
	s := newSessionizerWith(t, Config{MaxIDsPerPerson: 10})
	push := func(e ingest.Event) Stats {
		_, stats := s.Push(base, []ingest.Event{e})
		return stats
	}
	push(call("identify", "", "home", "victim", 0))
	refused := 0
	for i := range 25 {
		a := call("alias", "", "", "victim", 1+float64(i)/100)
		a.PreviousID = fmt.Sprintf("forged-%d", i)
		refused += push(a).RunawayMerges
	}
	if refused != 15 { // 10 taken, the rest refused
		t.Errorf("%d forged aliases refused, want 15", refused)
	}
	push(call("page", "Home", "laptop", "", 5))
	if stats := push(call("identify", "", "laptop", "victim", 6)); stats.RunawayMerges != 0 {
		t.Errorf("her laptop's sign-in refused (%d runaway merges)", stats.RunawayMerges)
	}
	if p := s.ids.personOf("a:laptop"); p != "u:victim" {
		t.Errorf("her laptop is %s's, want u:victim's", p)
	}
	// Nine devices of her own more fill the cap of ids that name keys: the tenth is refused.
	refused = 0
	for i := range 9 {
		refused += push(call("identify", "", fmt.Sprintf("phone-%d", i), "victim", 10+float64(i))).RunawayMerges
	}
	if refused != 2 { // u:victim, home, laptop and seven phones make ten
		t.Errorf("%d of her own devices refused, want 2", refused)
	}
}

// TestAForgedAliasIsCountedInEveryOrder is tester 42's F2: a server's alias from one buyer's
// userId to another's ({"previousId":"fa-alice","userId":"fa-bob"}, the forged alias anyone
// with the public write key can send) joins no one, and is counted once as an alias of two
// userIds (Stats.UserIDConflicts) whatever order it and the buyers' orders arrive in: before,
// read ahead of fa-alice's events it was taken for an alias from a device and never counted.
// With --alias-joins-users it is a join, counted as none. A previousId that is a device's
// anonymousId (a sign-in on it) is no conflict either.
func TestAForgedAliasIsCountedInEveryOrder(t *testing.T) {
	alias := aliasCall
	for _, tt := range []struct {
		name      string
		events    []ingest.Event
		joins     bool
		conflicts int
	}{
		{"forged alias of two buyers", []ingest.Event{
			alias("", "fa-alice", "fa-bob", 0),
			call("track", "Order Completed", "", "fa-alice", 10),
			call("track", "Order Completed", "", "fa-bob", 20),
			call("track", "Order Completed", "", "fa-alice", 30),
		}, false, 1},
		{"the same with --alias-joins-users", []ingest.Event{
			alias("", "fa-alice", "fa-bob", 0),
			call("track", "Order Completed", "", "fa-alice", 10),
			call("track", "Order Completed", "", "fa-bob", 20),
		}, true, 0},
		{"a server's alias from a device's id", []ingest.Event{
			alias("", "fa-dev", "fa-bob", 0),
			call("page", "Home", "fa-dev", "", 1),
			call("track", "Order Completed", "", "fa-bob", 20),
		}, false, 0},
	} {
		for name, order := range arrivalOrders(len(tt.events), 12) {
			s := newTestSessionizer(t)
			s.ids.aliasJoinsUsers = tt.joins
			conflicts := 0
			for _, i := range order {
				_, stats := s.Push(base, []ingest.Event{tt.events[i]})
				conflicts += stats.UserIDConflicts
			}
			if conflicts != tt.conflicts {
				t.Errorf("%s, %s: %d conflicts counted, want %d", tt.name, name, conflicts, tt.conflicts)
			}
			if apart := s.ids.personOf("u:fa-alice") != s.ids.personOf("u:fa-bob"); !tt.joins && !apart {
				t.Errorf("%s, %s: fa-alice and fa-bob joined, want them apart", tt.name, name)
			}
		}
	}
}

// TestAnAnonymousIDThatIsAUsersIDJoinsNoOne is tester 42's F8 in the sessionizer: one identify
// whose anonymousId is buyer 1's userId and whose userId is buyer 2's made the two buyers one
// person, in either arrival order, as a device's person id and the override of its key were its
// anonymousId's text, which the user's events were stored under too. Now a device's person id is
// typed (ingest.DevicePerson): each event's stored person, after the overrides written live (and,
// after a restart, those a restart writes again), is its own, in every arrival order. A device
// browsing under a userId's text is a person of its own; a shop that sends one text as a
// customer's anonymousId and userId still gets one person.
func TestAnAnonymousIDThatIsAUsersIDJoinsNoOne(t *testing.T) {
	dev := ingest.DevicePerson
	for _, tt := range []struct {
		name   string
		events []ingest.Event
		want   []string // the person of each event, as queries read it
	}{
		{"a forged identify", []ingest.Event{
			call("track", "Order Completed", "b1", "U1", 0),
			call("track", "Order Completed", "b2", "U2", 1),
			call("identify", "", "U1", "U2", 2),
		}, []string{"U1", "U2", "U2"}},
		{"a forged identify, the buyers' server calls", []ingest.Event{
			call("track", "Order Completed", "", "U1", 0),
			call("track", "Order Completed", "", "U2", 1),
			call("identify", "", "U1", "U2", 2),
		}, []string{"U1", "U2", "U2"}},
		{"a device browsing under a user's text", []ingest.Event{
			call("track", "Order Completed", "b1", "U1", 0),
			call("page", "Home", "U1", "", 1),
			call("track", "Product Viewed", "U1", "", 2),
		}, []string{"U1", dev("U1"), dev("U1")}},
		{"one text as a customer's anonymousId and userId", []ingest.Event{
			call("page", "Home", "C1", "", 0),
			call("identify", "", "C1", "C1", 1),
			call("track", "Order Completed", "C1", "C1", 2),
			call("track", "Order Completed", "", "C1", 3),
		}, []string{"C1", "C1", "C1", "C1"}},
	} {
		for name, order := range arrivalOrders(len(tt.events), 10) {
			s := newTestSessionizer(t)
			stored := make([]string, len(tt.events))
			overrides := map[string]string{}
			var links [][2]string
			for _, i := range order {
				out, _ := s.Push(base, []ingest.Event{tt.events[i]})
				stored[i] = out.PersonIDs[0]
				links = append(links, out.Links...)
				for _, p := range out.Persons {
					overrides[p.CustomerKey] = p.PersonID
				}
			}
			check := func(when string) {
				t.Helper()
				for i, p := range stored {
					if o, ok := overrides[p]; ok {
						p = o
					}
					if p != tt.want[i] {
						t.Errorf("%s, %s, %s: %s %s is %s's (stored as %s's), want %s's", tt.name, name, when, tt.events[i].Type,
							tt.events[i].MessageID, readable(p), readable(stored[i]), readable(tt.want[i]))
					}
				}
			}
			check("live")
			restarted := newTestSessionizer(t)
			restarted.RestoreLinks(links)
			for _, p := range restarted.Persons() {
				overrides[p.CustomerKey] = p.PersonID
			}
			check("after a restart")
		}
	}
}

// TestStoredPersonsAreApart: the person ids the sessionizer stores for a userId, a device's
// anonymousId of the same text and a device's lost sign-ins are three (storedPerson), whatever the
// texts: no encoding of one is another's.
func TestStoredPersonsAreApart(t *testing.T) {
	for _, tt := range []struct{ id, want string }{
		{"u:alice", "alice"},
		{"a:alice", ingest.Internal + ingest.Internal + "alice"},
		{lostUser("a:alice"), ingest.Internal + "alice"},
		{"u:a:alice", "a:alice"},
		{"a:u:alice", ingest.Internal + ingest.Internal + "u:alice"},
	} {
		if got := storedPerson(tt.id); got != tt.want {
			t.Errorf("storedPerson(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	// Distinct ids give distinct person ids, for texts that look like another's encoding.
	texts := []string{"alice", "aalice", "a:alice", "u:alice", "", "a", "\t"}
	seen := map[string]string{}
	for _, text := range texts {
		for _, id := range []string{"u:" + text, "a:" + text, lostUser("a:" + text)} {
			p := storedPerson(id)
			if other, ok := seen[p]; ok && other != id {
				t.Errorf("%q and %q are both stored as %q", other, id, p)
			}
			seen[p] = id
		}
	}
}
