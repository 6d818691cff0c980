package sessionize

import (
	"cmp"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
)

// identities is a union-find over customer ids ("u:" user ids, "a:" anonymous ids): identify and
// alias calls, and any event carrying both ids, link two ids into one person. Two persons that
// each have a userId are never joined, but by an alias of two userIds when aliasJoinsUsers is
// set (see link and linksOf). A person holds at most maxIDs ids that name a customer key, and at
// most maxIDs more that name none (an alias's previousId no event has had as its anonymousId,
// see namesKey); a link that would make one larger is refused (a runaway merge: a shared kiosk,
// a bad integration), never silently merging everyone. The two are apart so that forged aliases
// (anyone with the public write key can POST /v1/alias) fill no user's cap: 510 of them to one
// user made her own laptop's sign-in a runaway merge (tester 39's F4).
//
// It also remembers, per device (anonymousId), which userId was signed in on it from when, so an
// anonymous event of a device several users signed in on is given to whoever was signed in (see
// personAt and DeviceSignIns, which state the rule).
type identities struct {
	parent  map[string]string
	members map[string][]string // root -> every id of the person
	name    map[string]string   // root -> the person id (see personName)
	// aliasTo and aliasFrom are, per person with aliases of two userIds, the userIds its aliases
	// lead to and from ("u:" ids, each once): they name the person (see personName). Both hold ids
	// of the person, so they are at most as long as members.
	aliasTo, aliasFrom map[string][]string
	// users is, per device that has carried a userId, who was signed in from when, in
	// compareSignIns order (time, then the client's order).
	users map[string][]signIn
	// sharedDevices is, per userId ("u:" id), the devices ("a:" ids) several users signed in on
	// that it signed in on: where its anonymous events may be that are not under its own ids
	// (see Sessionizer.heldPoints). Only shared devices are listed.
	sharedDevices map[string][]string
	// aliasers is, per device ("a:" id), the userIds ("u:" ids) whose aliases from its id signed
	// them in on it (see aliasedFrom): those sign-ins are events under the users' keys, which a
	// Runner restores with the device's (see Sessionizer.toRestore), linked or not.
	aliasers map[string][]string
	// listed holds the (device, user) pairs of aliasers and the (user, device) pairs of
	// sharedDevices, so that each list is grown in constant time per id: searching the list made
	// a kiosk aliased from by n users cost n² (32,000 aliases from one anonymousId took 5 s).
	listed map[[2]string]bool
	// devices holds the devices ("a:" ids) signed in on by an event of their own: one carrying
	// a userId and the device's anonymousId (an identify from it, a track, an alias from its own
	// anonymousId), seen live or restored, or read from a stored link saying so (see
	// Sessionizer.storedLink); and the devices an alias's previousId named when they were seen as
	// an event's anonymousId, held (Sessionizer.heldAsDevice), stored (Runner.learnDevices), or
	// about to be taken in when the alias, another consumer's, is learned (Runner.learnDeviceKeys):
	// a device that only browsed. Such an id names a device, so an alias from it is never read as an
	// earlier userId (see linksOf). Only aliases add the browsed ones, so it stays as small as
	// the aliases and signed-in devices are: an anonymous visitor is never listed for its events.
	devices map[string]bool
	// conflicted holds the ids ("a:" ids) aliases' previousIds named whose alias was counted as
	// an alias of two userIds (Stats.UserIDConflicts), so each is counted once: when it is read,
	// if previousId is known then as another person's userId, or when previousId first turns up as
	// a userId after it (see Sessionizer.countForgedAlias). As small as aliasers.
	conflicted map[string]bool
	// reached is, per person of linked ids (by root), the journey stages whose live entries
	// counted it (see Stats.StageEntries); a person that is one customer key, never linked,
	// keeps them on its customer until it is (see Sessionizer.linkIDs). A merge joins them.
	reached map[string]uint64
	maxIDs  int
	// aliasJoinsUsers reads an alias's previousId as a possibly earlier userId too, the one
	// link that joins two persons with userIds (Config.AliasJoinsUsers; see linksOf).
	aliasJoinsUsers bool
	// lost counts the sign-ins given to lostUser since takeLost was last called.
	lost int
}

// signIn is a userId ("u:" id) seen on a device at us (unix µs): signed in from then to the next
// signIn. seq and id are those of the event that carried it (see point): sign-ins at the same time are
// ordered by the one tie rule, as the client sent them (compareSignIns).
type signIn struct {
	us   int64
	seq  int64
	id   uint64
	user string
	// thinned says sign-ins of the previous entry's user were dropped between it and this one,
	// both of that user, to keep the device under MaxDeviceSignIns (see thin).
	thinned bool
	// aliased says it is an alias's from the device's id, stored under its userId's key (see
	// aliasedFrom): a device of one user keeps it (see signedIn), as the device's points, which
	// give back the sign-ins dropped there (Sessionizer.signIn), do not hold it.
	aliased bool
}

// compareSignIns orders sign-ins as comparePoints orders their events: by time, equal times in
// the client's order (seq, the Kafka offset of the event's first delivery), then by event id
// (TieID). So of two users signing in on a device at the same time, the one the client sent
// first signed in first, whatever order the events reach the sessionizer in.
func compareSignIns(a, b signIn) int {
	return cmp.Or(cmp.Compare(a.us, b.us), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id))
}

// atOrBefore reports whether the sign-in came at or before an event at us (unix µs) with seq:
// earlier in time, or at the same time and not later in the client's order (seq). Two events of
// a device share a seq only when both were stored before seq existed (0): then the sign-in counts
// from its time on, as before seq. The event id, which orders what seq leaves tied, is not
// compared, for the same reason. store's signedInRows is the same comparison in SQL.
func (s signIn) atOrBefore(us, seq int64) bool {
	return s.us < us || s.us == us && s.seq <= seq
}

// MaxDeviceSignIns is how many sign-ins a device keeps: 4096 distinct sign-ins (events carrying a
// userId and the device's anonymousId, and aliases from its id, see aliasedFrom), 192 KiB at 48
// bytes each (a user's id string is shared along a run of that user). Past it a device first keeps only the first and last sign-in of each
// run of one user, so 2048 user switches at least: months of a shop's kiosk, years of a family
// laptop; then the oldest but the first are dropped, and their span is given to no user (see
// lostUser): better no user than a wrong one.
const MaxDeviceSignIns = 4096

// lostUser is the "user" of a tombstone in a device's sign-ins: a span, from it to the next sign-in
// kept, whose user is no longer known because sign-ins in it were dropped to stay under
// MaxDeviceSignIns (see signedIn). The device's anonymous events in that span go to it: a person
// id that no customer key can be linked to, ingest.Internal (NUL, which no client's id may hold)
// then the device's anonymousId, never the first user (the rule before any sign-in) nor the one
// signed in before the span.
func lostUser(device string) string { return "a:" + ingest.Internal + device[2:] }

func newIdentities(maxIDs int, aliasJoinsUsers bool) *identities {
	return &identities{parent: map[string]string{}, members: map[string][]string{}, name: map[string]string{},
		aliasTo: map[string][]string{}, aliasFrom: map[string][]string{},
		users: map[string][]signIn{}, sharedDevices: map[string][]string{}, aliasers: map[string][]string{}, listed: map[[2]string]bool{}, devices: map[string]bool{}, conflicted: map[string]bool{}, reached: map[string]uint64{}, maxIDs: maxIDs,
		aliasJoinsUsers: aliasJoinsUsers}
}

// PersonLink says which person an id of the identity graph belongs to now: stored as an
// override (table persons, its customer_key and person_id), it moves the events stored with
// CustomerKey as their person to PersonID at query time. Both are stored person ids (see
// storedPerson): CustomerKey is the person id the id's events were stored with while it was a
// person of its own, a userId as sent or a device's ingest.DevicePerson, so an override of a
// device never moves the events of a user whose userId is the device's text (tester 42's F8).
type PersonLink struct {
	CustomerKey string
	PersonID    string
}

// storedPerson returns the person id Waymark stores and answers with for id, a "u:" or "a:" id
// of the graph (a person's name, see personName, or one of its ids): a userId as sent; a
// device's anonymousId typed as ingest.DevicePerson; lostUser's id, which starts with
// ingest.Internal, as it is (its one Internal then the anonymousId, never a DevicePerson's
// two). The one place the graph's typing becomes the stored one.
func storedPerson(id string) string {
	text := id[2:]
	if strings.HasPrefix(id, "u:") || strings.HasPrefix(text, ingest.Internal) {
		return text
	}
	return ingest.DevicePerson(text)
}

// person returns the links of every id of the person that id belongs to, to the person's id. A
// device that names no key (see namesKey) is left out: its events are stored with the alias's
// person from the start (personAt). A device and a userId of one text are two keys (see
// storedPerson), each its own person's.
func (g *identities) person(id string) []PersonLink {
	root := g.find(id)
	ids, best := g.members[root], storedPerson(g.name[root])
	links := make([]PersonLink, 0, len(ids))
	for _, m := range ids {
		if strings.HasPrefix(m, "a:") && !g.namesKey(m) {
			continue
		}
		links = append(links, PersonLink{CustomerKey: storedPerson(m), PersonID: best})
	}
	return links
}

// namesKey reports whether device ("a:" id) names its customer key (its text) in its person. It
// does unless it is known only as an alias's previousId (aliasers), never as a device (devices:
// no event of this sessionizer or the store had it as its anonymousId when the alias was read,
// nor did a link say it was signed in on), and the previousId's userId reading is not of its
// person: then the previousId is most likely a userId (analytics.js fills a missing previousId
// with the signed-in user's id), the person id its own events are stored with, and an override
// of it to the alias's person would join the two users the alias must not (see linksOf). Such a
// device, should its events come, is stored with the alias's person from the start (personAt),
// as no override is needed for them. With aliasJoinsUsers an alias read so links the userId
// reading too, which makes it one person with the device; but the flag alone decides nothing
// here: an alias read while it was off, replayed from its stored link at a start with it on (or
// by waymark resessionize), joined no users and must not join them now (tester 39's F1).
func (g *identities) namesKey(device string) bool {
	return g.devices[device] || len(g.aliasers[device]) == 0 || g.userReadingJoined(device)
}

// userReadingJoined reports whether the userId reading of device's id ("u:" and its text) is of
// device's person: only an alias read with aliasJoinsUsers makes it so (see namesKey).
func (g *identities) userReadingJoined(device string) bool {
	user := "u:" + device[2:]
	_, known := g.parent[user]
	return known && g.find(user) == g.find(device)
}

// personOf returns the person id ("u:" or "a:" prefixed, see storedPerson) of the person id
// belongs to now.
func (g *identities) personOf(id string) string {
	if n, ok := g.name[g.find(id)]; ok {
		return n
	}
	return id // never linked
}

// personAt is the person an event at ms with seq (its place in the partition, see point) is
// stored with: its userId's person when it has one; else, on a device several users signed in
// on, the person DeviceSignIns gives it (the user signed in last at or before it by (time, seq);
// before the first sign-in, the first user); else the device's own person (which the device's one
// user's sign-in joins to that user).
func (g *identities) personAt(userID, anonymousID string, us, seq int64) string {
	if userID != "" {
		return g.personOf("u:" + userID)
	}
	list := g.users["a:"+anonymousID]
	// The sign-ins at or before the event are a prefix of the list (compareSignIns order).
	i, _ := slices.BinarySearchFunc(list, signIn{us: us, seq: seq}, func(s, event signIn) int {
		if s.atOrBefore(event.us, event.seq) {
			return -1
		}
		return 1
	})
	switch {
	case i > 0:
		return g.personOf(list[i-1].user)
	case shared(list):
		return g.personOf(list[0].user)
	}
	return g.personOf("a:" + anonymousID)
}

// shared reports whether sign-ins hold more than one userId.
func shared(list []signIn) bool {
	return slices.ContainsFunc(list, func(s signIn) bool { return s.user != list[0].user })
}

// signedIn records the sign-in in on device ("a:" id), and reports whether that changed who
// was signed in when: the starts of the device's runs of one user, which DeviceSignIns holds. It
// keeps the device's sign-ins in compareSignIns order. A device only one user signed in on keeps
// that user's first and last sign-in, and those of aliases from the device's id (see
// signIn.aliased); a shared one keeps every distinct sign-in (a distinct event), so its runs of
// users come out the same in any arrival order: a sign-in arriving late inside another user's
// run splits it where that user's next sign-in resumes it. (What is lost here: sign-ins of the
// first user between its first and last that arrived before the second user's, which the
// sessionizer gives back from the device's events (Sessionizer.signIn).)
//
// Past MaxDeviceSignIns the sign-ins inside runs of one user go first (see thin): who was signed
// in when stays the same. A sign-in of another user arriving later inside such a run, where that
// run's user resumes is no longer known, gives its span to no user: it is kept as a tombstone
// (lostUser) instead. If the device is still over the bound, the oldest but the first go: the
// first stays, as it decides who the browsing before any sign-in goes to, and the span of the
// dropped ones, from the oldest dropped to the oldest kept, becomes a tombstone in list[1]. A
// sign-in arriving later inside a tombstone's span is dropped too (its user's span would end at a
// dropped sign-in). Each sign-in given to no user is counted (takeLost).
func (g *identities) signedIn(device string, in signIn) bool {
	list := g.users[device]
	wasShared := shared(list)
	if len(list) > 0 && compareSignIns(list[0], in) <= 0 && compareSignIns(in, list[len(list)-1]) <= 0 && list[0].user == in.user && !wasShared && !in.aliased {
		return false // inside the one user's span: nothing to keep (the common case, every call of a logged-in visitor)
	}
	i, seen := slices.BinarySearchFunc(list, in, compareSignIns)
	lost := lostUser(device)
	in.thinned = false
	switch {
	case seen:
		return false
	case i > 0 && list[i-1].user == lost: // inside a span given to no user
		g.lost++
		return false
	case i > 0 && i < len(list) && list[i].thinned && list[i-1].user != in.user:
		in.user, in.thinned = lost, true // the run it splits resumes at a dropped sign-in
		g.lost++
	case i > 0 && i < len(list) && list[i].thinned:
		in.user, in.thinned = list[i-1].user, true
	case i > 0 && list[i-1].user == in.user:
		in.user = list[i-1].user // one string per run
	}
	changed := i == 0 || list[i-1].user != in.user // in starts a run, or starts one earlier
	list = slices.Insert(list, i, in)
	switch {
	case !shared(list):
		if len(list) > 2 { // the first, the last and the aliases' (see signIn.aliased)
			last, kept := list[len(list)-1], list[:1]
			for _, s := range list[1 : len(list)-1] {
				if s.aliased {
					kept = append(kept, s)
				}
			}
			list = append(kept, last)
		}
		changed = true
	case len(list) > MaxDeviceSignIns:
		list = thin(list)
		for len(list) > MaxDeviceSignIns {
			if list[1].user != lost {
				list[1].user = lost
				g.lost++
				continue
			}
			if list[2].user != lost { // else a tombstone that an earlier sign-in, now dropped, moved
				g.lost++
			}
			list = slices.Delete(list, 2, 3)
		}
		changed = true
	}
	g.users[device] = list
	switch {
	case wasShared:
		g.shareDevice(in.user, device)
	case shared(list): // shared from now on: its users so far are the first one and in's
		for _, s := range list {
			g.shareDevice(s.user, device)
		}
	}
	return changed
}

// signedOut takes back the sign-in out of device ("a:" id): the sign-in of a copy of an event
// that an earlier copy superseded (see Output.LaterCopies), which is no sign-in any more, as it is
// none after a restart (store.History leaves superseded copies out). It reports whether that
// changed who was signed in when (the runs DeviceSignIns holds), and whether the device was
// shared before and no longer is. A tombstone (lostUser) is kept: its span's sign-ins are gone.
func (g *identities) signedOut(device string, out signIn) (changed, unshared bool) {
	list := g.users[device]
	i, found := slices.BinarySearchFunc(list, out, compareSignIns)
	if !found || list[i].user == lostUser(device) {
		return false, false
	}
	before, wasShared := g.sharedSignIns(device)
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(g.users, device)
	} else {
		g.users[device] = list
	}
	after, isShared := g.sharedSignIns(device)
	changed = wasShared != isShared || !slices.Equal(before.From, after.From) || !slices.Equal(before.Seqs, after.Seqs) ||
		!slices.Equal(before.Users, after.Users)
	return changed, wasShared && !isShared
}

// shareDevice lists device among the shared devices of user, a "u:" id (not lostUser).
func (g *identities) shareDevice(user, device string) {
	if strings.HasPrefix(user, "u:") {
		g.addOnce(g.sharedDevices, user, device)
	}
}

// addOnce appends id to lists[of] unless it is listed there (see listed), and reports whether
// it did.
func (g *identities) addOnce(lists map[string][]string, of, id string) bool {
	if g.listed[[2]string{of, id}] {
		return false
	}
	g.listed[[2]string{of, id}] = true
	lists[of] = append(lists[of], id)
	return true
}

// thin returns the sign-ins without those inside a run of one user, neither its first nor its
// last, marking the kept sign-in after each dropped one thinned. The runs stay as they were.
func thin(list []signIn) []signIn {
	// In place: the sign-ins read at j (j-1, j, j+1) are not yet overwritten, as out is never
	// longer than j. A device past MaxDeviceSignIns thins at each sign-in, which made a copy of
	// its 4,096 sign-ins (192 KiB) per event.
	out := list[:0]
	for j, s := range list {
		if j > 0 && j < len(list)-1 && list[j-1].user == s.user && s.user == list[j+1].user {
			list[j+1].thinned = true
			continue
		}
		out = append(out, s)
	}
	return out
}

// takeLost returns how many sign-ins were given to lostUser since it was last called.
func (g *identities) takeLost() int {
	n := g.lost
	g.lost = 0
	return n
}

// DeviceSignIns says who was signed in on a device that several userIds used: Users[i] from the
// sign-in at From[i] (unix µs) with Seqs[i] (its place in the partition: the Kafka offset of its
// first delivery, ingest.Event.Seq) until the next one. Sign-ins are listed by the one tie rule
// (README): by time, to the microsecond, sign-ins at the same time in the order the client sent them (Seqs), so
// From may repeat a time: of bob's and alice's sign-ins at 09:05, sent in that order, bob's is
// first. Stored, it decides at query time whose each anonymous event of the device is, by the
// event's time and seq, whatever order the events and logins arrived in:
//
//   - at or after a sign-in: the user signed in last at or before it, comparing (time, seq) in
//     that order: an event at the same time as sign-ins (SDKs that stamp to the second
//     make many) is the user's whose sign-in the client sent last before it. A sign-in and an
//     event with the same time and seq (both stored before seq existed, 0) count the sign-in as
//     first, the rule before seq;
//   - before the first sign-in: the first user to sign in (Users[0]).
//
// That is Adobe Customer Journey Analytics' "device split" for shared devices (anonymous activity
// goes to the last user authenticated before it, and what came before any authentication to the
// first), and PostHog's and Mixpanel's rule that a device's anonymous history goes to the first
// user identified on it, who keeps it when another user identifies later (PostHog refuses to
// merge an already identified person; Mixpanel merges a $device_id with the first $user_id it
// comes with). Those two take "first" in processing order; here it is in event time, then the
// client's order, so that the answer does not depend on the order the messages arrive in. The
// sessionizer stores events and sessions with the same persons (personAt); store's
// signedInRows is its SQL.
//
// A user of NUL then Device stands for no user: a span whose sign-ins the device dropped to stay
// under MaxDeviceSignIns, its anonymous events a person of their own rather than a wrong user.
type DeviceSignIns struct {
	Device string  // the anonymousId
	From   []int64 // unix µs: the time of each run's first sign-in
	Seqs   []int64 // one per From
	Users  []string
}

// sharedSignIns returns the sign-ins of device ("a:" id) when more than one userId signed in
// on it; ok is false otherwise (one user's device needs none: its person is that user's).
func (g *identities) sharedSignIns(device string) (d DeviceSignIns, ok bool) {
	if !shared(g.users[device]) {
		return d, false
	}
	return g.signIns(device), true
}

// signIns returns the sign-ins of device ("a:" id), shared or not: the starts of its runs of one
// user.
func (g *identities) signIns(device string) (d DeviceSignIns) {
	list := g.users[device]
	d.Device = device[2:]
	for i, s := range list {
		if i == 0 || s.user != list[i-1].user { // the start of a run of one user
			d.From, d.Seqs, d.Users = append(d.From, s.us), append(d.Seqs, s.seq), append(d.Users, storedPerson(s.user))
		}
	}
	return d
}

func (g *identities) find(id string) string {
	root := id
	for {
		p, ok := g.parent[root]
		if !ok || p == root {
			break
		}
		root = p
	}
	for id != root { // path compression
		next := g.parent[id]
		g.parent[id] = root
		id = next
	}
	return root
}

// linkResult says what a link did.
type linkResult int

const (
	linkKnown      linkResult = iota // both ids were already one person
	linkMerged                       // two persons became one
	linkAlias                        // an alias of two userIds of one person, new to it: it may rename the person
	linkRefused                      // the merged person would exceed maxIDs (see countIDs)
	linkTwoUserIDs                   // both persons have a userId: distinct users never merge implicitly
)

// link joins the persons of a and b, a being the userId of the call that links them; aliased says
// b is an alias's previousId read as a device (aliasDeviceLink), for the cap (countIDs). Only an
// explicit link (an alias's link of two userIds, made with aliasJoinsUsers alone, see linksOf,
// live or stored, see Sessionizer.storedLink) joins two persons that both have a userId: an anonymousId shared by
// two userIds is a shared device (a family laptop, a shop's tablet), not one person. That is PostHog's rule (it refuses to merge two identified persons) and
// Segment's default identity limit (one user_id per profile); Mixpanel asks clients to reset the
// device instead.
//
// The person's id is personName's, a function of the person's ids and aliases alone, so it does
// not depend on the order in which the links arrive (live, from several partitions), are stored
// or are replayed (after a restart, by waymark resessionize). An alias of two userIds already one
// person that leads to or from a userId no alias of the person did (linkAlias) is kept too: it
// may rename the person (the last of aliases a→b→c→a), and it is stored (Output.Links).
func (g *identities) link(a, b string, explicit, aliased bool) linkResult {
	g.add(a)
	g.add(b)
	alias := strings.HasPrefix(a, "u:") && strings.HasPrefix(b, "u:") // only an alias links two userIds (linksOf)
	ra, rb := g.find(a), g.find(b)
	if ra == rb {
		if !alias || !g.addAlias(ra, a, b) {
			return linkKnown
		}
		g.name[ra] = g.personName(ra)
		return linkAlias
	}
	if !explicit && g.hasUserID(ra) && g.hasUserID(rb) {
		return linkTwoUserIDs
	}
	aliasing := "" // b, when it is an alias's previousId read as a device (not yet an aliaser)
	if aliased {
		aliasing = b
	}
	keyed, unkeyed := g.countIDs(ra, "")
	keyedB, unkeyedB := g.countIDs(rb, aliasing)
	if keyed+keyedB > g.maxIDs || unkeyed+unkeyedB > g.maxIDs {
		return linkRefused
	}
	if len(g.members[ra]) < len(g.members[rb]) {
		ra, rb = rb, ra
	}
	g.parent[rb] = ra
	g.members[ra] = append(g.members[ra], g.members[rb]...)
	delete(g.members, rb)
	delete(g.name, rb)
	if to, ok := g.aliasTo[rb]; ok { // ids of another person: none is in ra's lists
		g.aliasTo[ra], g.aliasFrom[ra] = append(g.aliasTo[ra], to...), append(g.aliasFrom[ra], g.aliasFrom[rb]...)
		delete(g.aliasTo, rb)
		delete(g.aliasFrom, rb)
	}
	if alias {
		g.addAlias(ra, a, b)
	}
	g.name[ra] = g.personName(ra)
	if stages, ok := g.reached[rb]; ok {
		g.reached[ra] |= stages
		delete(g.reached, rb)
	}
	return linkMerged
}

// countIDs returns how many ids of the person rooted at root name a customer key (namesKey), and
// how many name none, each capped at maxIDs (see identities). aliasing is an id an alias's
// previousId names that is being linked (see link), listed among the aliasers only after: it
// names none unless it is a device, or its userId reading is of its person.
func (g *identities) countIDs(root, aliasing string) (keyed, unkeyed int) {
	for _, id := range g.members[root] {
		if strings.HasPrefix(id, "a:") && (!g.namesKey(id) || id == aliasing && !g.devices[id] && !g.userReadingJoined(id)) {
			unkeyed++
		} else {
			keyed++
		}
	}
	return keyed, unkeyed
}

// personName returns the id of the person rooted at root ("u:" or "a:" prefixed). A person with
// aliases of two userIds is named by the userId they lead to: an alias's userId that is no
// alias's previousId, the last of a chain a→b→c (Segment: an alias makes previousId an alias of
// userId), the smallest of several (a→b and a→c); when none is (a cycle, a→b→a), the smallest
// alias userId. A person without them has one userId at most (only an alias joins two), which
// names it, else its smallest id. It depends on the person's ids and aliases alone, never on
// the order they were linked in.
func (g *identities) personName(root string) string {
	if to := g.aliasTo[root]; len(to) > 0 {
		from := make(map[string]bool, len(g.aliasFrom[root]))
		for _, id := range g.aliasFrom[root] {
			from[id] = true
		}
		sink, smallest := "", ""
		for _, id := range to {
			smallest = minName(smallest, id)
			if !from[id] {
				sink = minName(sink, id)
			}
		}
		return cmp.Or(sink, smallest)
	}
	user, smallest := "", ""
	for _, id := range g.members[root] {
		smallest = minName(smallest, id)
		if strings.HasPrefix(id, "u:") {
			user = minName(user, id)
		}
	}
	return cmp.Or(user, smallest)
}

// addAlias records an alias from userId previous to userId user ("u:" ids) of the person rooted
// at root, and reports whether it led to or from an id none of the person's aliases did.
func (g *identities) addAlias(root, user, previous string) bool {
	added := false
	if !slices.Contains(g.aliasTo[root], user) {
		g.aliasTo[root], added = append(g.aliasTo[root], user), true
	}
	if !slices.Contains(g.aliasFrom[root], previous) {
		g.aliasFrom[root], added = append(g.aliasFrom[root], previous), true
	}
	return added
}

// minName is the smaller of two ids, "" counting as none.
func minName(a, b string) string {
	if a == "" || b != "" && b < a {
		return b
	}
	return a
}

// hasUserID reports whether the person rooted at root has a userId.
func (g *identities) hasUserID(root string) bool {
	return slices.ContainsFunc(g.members[root], func(id string) bool { return strings.HasPrefix(id, "u:") })
}

// idLink is one link an event carries: a, the event's userId ("u:" id), with b, read as kind.
type idLink struct {
	a, b string
	kind linkKind
}

// linkKind is what an event's link reads its two ids as.
type linkKind int8

const (
	// signInLink links a userId with the event's own anonymousId: the user signed in on the
	// device (see identities.devices).
	signInLink linkKind = iota
	// aliasUserLink links an alias's userId with its previousId read as an earlier userId: the
	// one explicit link (see link), Segment's alias of two userIds, made with aliasJoinsUsers
	// alone (see linksOf).
	aliasUserLink
	// aliasDeviceLink links an alias's userId with its previousId read as a device's
	// anonymousId (see aliasedFrom): a sign-in on that device, stored device first (see
	// stored).
	aliasDeviceLink
)

// explicit reports whether the link may join two persons that both have a userId (see link).
func (l idLink) explicit() bool { return l.kind == aliasUserLink }

// stored is the link as it is stored (Output.Links): an alias's from a device's id device
// first, so that it replays as the sign-in it was (see Sessionizer.storedLink); the others as
// they are, userId first.
func (l idLink) stored() [2]string {
	if l.kind == aliasDeviceLink {
		return [2]string{l.b, l.a}
	}
	return [2]string{l.a, l.b}
}

// linksOf returns the links an event carries, in the order to apply them. An event with both ids
// links its userId with its anonymousId, an alias too: a device's anonymousId names a device, so
// an alias from it (analytics.js sends alias with previousId the anonymousId) is that user signing
// in on it, like identify (Segment: alias from an anonymous id merges it like identify; PostHog
// refuses to merge two identified persons), and never joins a user signed in on the device before.
// An alias's previousId other than its anonymousId may be an anonymous id or an earlier userId
// (Segment's spec): its anonymousId reading is linked like a sign-in, and its userId reading
// explicitly (the one way two userIds are joined), unless previousId is known as an anonymousId
// and not as a userId: then it is a device, and reading it as a userId would give the device's
// customer key to the alias's person. Those links come first, so that a device of the earlier
// userId the alias carries is then known to be the alias's person, not a conflict. The
// anonymousId reading is a sign-in on the device as well (aliasedFrom), so whose the device's
// anonymous events are does not hang on which of these links was made first.
//
// Once previousId is a device (identities.devices: signed in on by its own events, or seen as an
// event's anonymousId, by this sessionizer or in the stored events, when an alias named it), it
// is never read as a userId, whatever else is known of it: a userId reading of it made earlier
// (an alias read before any event of the device was: a server's alias keyed by its userId, read
// before the device's events, or by a consumer that has not seen the device's partition) would
// join every other user aliasing from the device, where PostHog refuses to merge two identified
// persons. The device decides instead, as it does for users identifying on it (DeviceSignIns).
// Only an alias from an id seen as neither, nor as a device by a stored link, is read as a
// possibly earlier userId too (Segment's alias spec allows both), and only with aliasJoinsUsers
// (--alias-joins-users): the two users aliasing from a device before any event of it are then
// joined (docs/how-it-works.md).
//
// Without it (the default) that reading is never made: an alias never joins two persons that
// each have a userId, whatever order it and their events arrive in (PostHog applies
// $create_alias only when its alias side is not identified yet, and wants $merge_dangerously to
// merge two identified persons; Segment's alias "can't be used to merge profiles in Unify";
// Mixpanel's simplified ID merge gives $create_alias no function). analytics.js fills a missing
// previousId with the signed-in user's id, so on a family laptop alice is signed in on, bob's
// alias(bob) names alice: it is bob signing in on the device (its anonymousId), as an identify
// is. The previousId is still read as a device (a sign-in on it, aliasedFrom), which joins no
// user: a previousId no event had as its anonymousId names no key (see namesKey).
func (g *identities) linksOf(userID, anonymousID, previousID, typ string) []idLink {
	var links []idLink
	if device := aliasedFrom(userID, anonymousID, previousID, typ); device != "" {
		if g.aliasJoinsUsers && g.readsAsUser(device, previousID) {
			links = append(links, idLink{"u:" + userID, "u:" + previousID, aliasUserLink})
		}
		links = append(links, idLink{"u:" + userID, device, aliasDeviceLink})
	}
	if userID != "" && anonymousID != "" {
		links = append(links, idLink{"u:" + userID, "a:" + anonymousID, signInLink})
	}
	return links
}

// readsAsUser reports whether an alias's previousID, read as device ("a:"+previousID), may be an
// earlier userId (see linksOf): it is known as no device, and either not known at all or known
// as a userId too.
func (g *identities) readsAsUser(device, previousID string) bool {
	_, known := g.parent[device]
	_, user := g.parent["u:"+previousID]
	return !g.devices[device] && (!known || user)
}

// add makes id a person of its own, unless it is known.
func (g *identities) add(id string) {
	if _, ok := g.parent[id]; !ok {
		g.parent[id], g.members[id], g.name[id] = id, []string{id}, id
	}
}

// signedInOwn records that device ("a:" id) was signed in on by an event of its own (see
// devices), and reports whether that is new.
func (g *identities) signedInOwn(device string) bool {
	if g.devices[device] {
		return false
	}
	g.devices[device] = true
	return true
}

// aliasedOn records that user ("u:" id) aliased from device ("a:" id), and reports whether that
// is new (see aliasers).
func (g *identities) aliasedOn(device, user string) bool {
	return g.addOnce(g.aliasers, device, user)
}

// aliasedFrom returns the device ("a:" id) an alias's previousId names read as an anonymousId,
// when it is neither the alias's userId nor its anonymousId (an alias from its own anonymousId
// is an event with both ids, a sign-in on its device like identify); "" for any other event.
// Such an alias, a server's (no anonymousId: its key is the userId, often on another partition)
// or a client's, is its userId signing in on that device at the alias's time, as analytics.js's
// alias from the anonymousId and an identify from the device are (Segment's alias spec: an alias
// from an anonymous id merges it like identify), whatever order it and the device's other
// sign-ins arrive in: so the device's sign-ins, not which link came first, decide whose its
// anonymous events are (DeviceSignIns), and a user signed in on it before or after is never
// merged (PostHog refuses to merge two identified persons). When previousId is an earlier userId
// instead, the device it names has no events and this one user: its sign-in changes no person.
func aliasedFrom(userID, anonymousID, previousID, typ string) string {
	if typ != "alias" || previousID == "" || userID == "" || previousID == userID || previousID == anonymousID {
		return ""
	}
	return "a:" + previousID
}
