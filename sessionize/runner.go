package sessionize

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/waymark-dev/waymark/ingest"
)

// Batch is what the sessionizer hands on: the events as they came, the sessions they changed,
// and the identity links and persons they changed (Version orders person rows).
type Batch struct {
	Events   []ingest.Event
	Channels []string // the channel of each event, by the journey map's channel rules
	// PersonIDs are the person each event is stored with, known at ingest (see Output.PersonIDs).
	PersonIDs []string
	Sessions  []Session
	Links     [][2]string
	Persons   []PersonLink
	SignIns   []DeviceSignIns // devices several userIds used, their sign-ins as they are now
	// Superseded are stored copies of events that an earlier copy replaced (see
	// Output.Superseded): the sink writes them before Events, and queries leave them out.
	Superseded []Copy
	Version    uint64
	// unnamed are superseded copies known by key, time and id (see Output.unnamed), which the
	// Runner names from History before the sink writes the batch (see Runner.store).
	unnamed []unnamedCopy
}

// Sink stores batches. Write returns when the batch is durable.
type Sink interface {
	Write(ctx context.Context, b Batch) error
}

// History loads what the store holds: customers' events and live sessions (History for the keys
// of the consumer's own partitions, which a shortcut may rule out when they were never stored by
// the time it loaded or since by this process; ForeignHistory for keys of other partitions, which
// other processes store, with no such shortcut), and identity links:
// all of them (IdentityLinks), or those stored at a version of since or later with an end among
// ids (IdentityLinksOf), or with the first end among ids (IdentityLinksFrom: a lookup by the
// links' primary key). DeviceLinks is IdentityLinksOf of devices ("a:" ids) in the same read,
// with the devices among them that are the anonymousId of a stored event (seen), the customer
// key of such an event: a lookup by the events' primary key. SharedDevices is every stored
// device's sign-ins as last written (Device and Users are read, From and Seqs may be left out).
type History interface {
	History(ctx context.Context, keys []string) ([]ingest.Event, []Session, error)
	ForeignHistory(ctx context.Context, keys []string) ([]ingest.Event, []Session, error)
	IdentityLinks(ctx context.Context) ([][2]string, error)
	IdentityLinksOf(ctx context.Context, ids []string, since uint64) ([][2]string, error)
	IdentityLinksFrom(ctx context.Context, ids []string, since uint64) ([][2]string, error)
	DeviceLinks(ctx context.Context, devices []string, since uint64) (links [][2]string, seen []string, err error)
	SharedDevices(ctx context.Context) ([]DeviceSignIns, error)
}

// Runner puts a Sessionizer between the Kafka consumer (it is an ingest.Sink) and a store.
// Sessions whose write failed are written again with the next batch, so a retried batch of
// events, which the sessionizer has already absorbed, loses no session.
//
// A panic while a batch is prepared or stored leaves the sessionizer holding part of it, so the
// Runner then forgets what the sessionizer holds (customers and identity links), as a restart
// would, and panics on: the consumer recovers and writes the batch again in parts (ingest.Consumer
// isolates the events that panic). The customers of the batches that follow are restored from the
// store, so their sessions come out as in a run without the panic, less the events dead-lettered.
// A batch prepared before the state was forgotten is prepared again before it is stored.
//
// Several consumers (one Kafka group) each read some partitions, so each makes the links of its
// own: an alias chain a→b→c whose aliases are keyed by b and c may be linked half by one and
// half by the other. After a batch's links are stored, the Runner reads the stored links of the
// persons they made (see learn), so the links of other partitions join its graph and the persons
// it wrote are written again as all the stored links name them. At a start (and after a panic)
// it writes every person of the stored links (see restore), so overrides an older build left are
// repaired too. The aliases another consumer read from the id of a device whose events this one
// reads are learned before the device's events are taken in (see learnDeviceKeys), and an alias
// this one read from a device not seen yet is looked up again for a while (see learnDevices), so
// the device's browsing is its user's whichever consumer came first. A device's sign-ins written
// by several consumers (its own, and those that read its users' aliases) are completed from the
// store and written again after each store that wrote or learned them (see learn).
type Runner struct {
	mu            sync.Mutex
	core          *Sessionizer
	sink          Sink
	history       History
	now           func() time.Time
	pending       Batch // what failed to be written, written with the next batch
	linksRestored bool
	// linksSince is the version (unix ns) from which stored links may be unknown to the
	// sessionizer: those stored before were all read when it restored them (see restore), less
	// LinkClockSkew; learn reads only those stored since.
	linksSince uint64
	// unlearned are ids ("u:"/"a:") of links stored whose persons' other stored links were not
	// read yet (see learn): the read failed, and is done again with the next batch.
	unlearned []string
	// unwritten are the devices (anonymousIds) whose sign-ins a batch wrote that learn did not
	// complete from the store (see learn): the read failed, and is done again with the next batch.
	unwritten []string
	// unseen are the devices ("a:" ids) aliases this consumer read named, no event of which was
	// seen or stored when the alias was read, each with when to stop looking: learnDevices asks
	// whether they are stored with later batches (see aliasRace).
	unseen  []unseenDevice
	metrics *runnerMetrics
	// openCountedAt is when open sessions were last counted (an O(customers) walk).
	openCountedAt time.Time
	// generation counts the times the sessionizer's state was forgotten after a panic; a batch
	// prepared in an earlier generation is prepared again before it is stored.
	generation uint64
}

// NewRunner wires a Sessionizer to a Sink. When history is not nil, a customer the sessionizer
// does not hold (after a restart, a rebalance, or eviction) is first restored from it, so sessions
// continue exactly where the stored ones left off.
func NewRunner(core *Sessionizer, sink Sink, history History, reg prometheus.Registerer) (*Runner, error) {
	m, err := newRunnerMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Runner{core: core, sink: sink, history: history, now: time.Now, metrics: m}, nil
}

// Write sessionizes events and writes them with the changed sessions.
func (r *Runner) Write(ctx context.Context, events []ingest.Event) error {
	store, err := r.Prepare(ctx, events)
	if err != nil {
		return err
	}
	return store(ctx)
}

// Prepare sessionizes events and returns the rest of the write: a function that stores them with
// the sessions, links and persons they changed. Batches are prepared one at a time and in order;
// their stores may run while the next batch is prepared, one at a time and in the same order.
// A store that fails keeps what it held for the next batch, so a batch whose events the
// sessionizer has already absorbed, prepared again, loses no session.
func (r *Runner) Prepare(ctx context.Context, events []ingest.Event) (func(context.Context) error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.forgetOnPanic()
	if err := r.restore(ctx, events); err != nil {
		return nil, err
	}
	out, stats := r.core.Push(r.now(), events)
	r.metrics.observe(stats)
	cloned := false // the caller's events stay as they are
	for i := range events {
		if events[i].Seq != out.Seqs[i] { // an event delivered again keeps its first Seq
			if !cloned {
				events, cloned = slices.Clone(events), true
			}
			events[i].Seq = out.Seqs[i]
		}
	}
	personIDs := out.PersonIDs
	if len(out.LaterCopies) > 0 { // the earliest copy of an event is the one stored
		if !cloned {
			events = slices.Clone(events)
		}
		personIDs = slices.Clone(personIDs)
		for _, i := range slices.Backward(out.LaterCopies) {
			events = slices.Delete(events, i, i+1)
			personIDs = slices.Delete(personIDs, i, i+1)
		}
	}
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = r.core.channel(&events[i])
	}
	b := Batch{
		Events:    events,
		Channels:  channels,
		PersonIDs: personIDs,
		Sessions:  append(r.pending.Sessions, out.Sessions...),
		Links:     append(r.pending.Links, out.Links...),
		Persons:   latestPersons(append(r.pending.Persons, out.Persons...)),
		SignIns:   latestSignIns(append(r.pending.SignIns, out.SignIns...)),
		// Kept for a retry as sessions are: the sessionizer has absorbed the earlier copies,
		// and does not see them replace anything again.
		Superseded: append(r.pending.Superseded, out.Superseded...),
		Version:    out.Version,
		unnamed:    append(r.pending.unnamed, out.unnamed...),
	}
	r.pending = Batch{}
	r.metrics.customers.Set(float64(r.core.Customers()))
	if now := r.now(); now.Sub(r.openCountedAt) > 5*time.Second {
		r.metrics.open.Set(float64(r.core.OpenSessions()))
		r.openCountedAt = now
	}
	gen := r.generation
	return func(ctx context.Context) error { return r.store(ctx, b, out.Sessions, gen) }, nil
}

// forgetOnPanic, deferred with r.mu held, forgets the sessionizer's state when the function
// panics, and panics on.
func (r *Runner) forgetOnPanic() {
	if v := recover(); v != nil {
		r.forget()
		panic(v)
	}
}

// forget drops what the sessionizer holds, as a restart would: customers are restored from the
// store when they come back, identity links before the next batch. r.mu must be held.
func (r *Runner) forget() {
	r.core.Forget()
	r.linksRestored = false
	r.generation++
}

// store writes a prepared batch. On failure its sessions, links and persons go back to pending
// (written again with the next batch: rows repeated with the same version change nothing). A
// batch prepared before the sessionizer's state was forgotten (gen is old) is prepared again.
func (r *Runner) store(ctx context.Context, b Batch, changed []Session, gen uint64) error {
	r.mu.Lock()
	stale := gen != r.generation
	r.mu.Unlock()
	if stale {
		store, err := r.Prepare(ctx, b.Events)
		if err != nil {
			return err
		}
		return store(ctx)
	}
	err := r.name(ctx, &b)
	if err == nil {
		err = r.write(ctx, b)
	}
	if err != nil {
		r.mu.Lock()
		r.pending = Batch{
			Sessions:   append(b.Sessions, r.pending.Sessions...),
			Links:      append(b.Links, r.pending.Links...),
			Persons:    latestPersons(append(b.Persons, r.pending.Persons...)),
			SignIns:    latestSignIns(append(b.SignIns, r.pending.SignIns...)),
			Superseded: append(b.Superseded, r.pending.Superseded...),
			unnamed:    append(b.unnamed, r.pending.unnamed...),
		}
		r.mu.Unlock()
		return fmt.Errorf("store %d events and %d sessions: %w", len(b.Events), len(b.Sessions), err)
	}
	for _, s := range changed {
		if !s.Deleted {
			r.metrics.sessions.WithLabelValues(s.EndReason).Inc()
		}
	}
	r.mu.Lock()
	ids := r.unlearned
	r.unlearned = nil
	r.mu.Unlock()
	for _, l := range b.Links {
		ids = append(ids, l[0], l[1])
	}
	written := slices.Clone(b.SignIns)
	r.mu.Lock()
	for _, d := range r.unwritten { // a failed learn's: read again, and written whatever it wrote
		written = append(written, DeviceSignIns{Device: d})
	}
	r.unwritten = nil
	r.mu.Unlock()
	for _, d := range written {
		ids = append(ids, "a:"+d.Device) // its aliases other consumers stored are read too
	}
	owned := map[string]bool{}
	for i := range b.Events {
		owned[b.Events[i].CustomerKey()] = true
	}
	if err := r.learn(ctx, ids, written, func(key string) bool { return owned[key] }); err != nil {
		r.mu.Lock()
		r.unlearned = append(r.unlearned, ids...)
		for _, d := range written {
			r.unwritten = append(r.unwritten, d.Device)
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// LinkClockSkew is how far behind this consumer's clock another's may be for its links to be
// learned live (Runner.learn): links are versioned by their writer's clock, and learn reads
// those stored since a little before this consumer read them all. A consumer further behind has
// its links learned by the others at their next restart (or `waymark resessionize`).
const LinkClockSkew = 10 * time.Minute

// learn reads the stored identity links of the persons of ids (those of a batch's links, just
// stored) to their closure: links other consumers stored, of partitions this one does not read,
// join the graph, and the persons they merged or renamed are written again (see
// Sessionizer.Learn), at a version above the batch's. Every consumer reads after it stored its
// links and persons, so of two that store links of one person at once, the one reading last reads
// both and writes the person after the other wrote its own (versions are times: consumers' clocks
// must agree to better than that). Without a History, or links, there is nothing to read.
//
// A device's sign-ins (DeviceSignIns) are read whole the same way: those of the devices whose
// sign-ins the batch wrote (written) that users aliased from, and of the devices of aliases among
// the links read that several users signed in on, some by an alias whose sign-in this consumer
// has not read (another consumer read that user's server alias, keyed by the userId: tester 42's
// F6), are completed from the stored events (the aliases, under their users' keys; the device's
// own, unless owned says the batch held events of it) and written again at a version taken after
// that read (see Sessionizer.missingSignIns). Before, each alias's consumer saw one user of the
// device, none wrote its sign-ins with both, and its browsing went to one of them for good. It
// costs one read of the device's links per batch that wrote a shared device's sign-ins, and of
// the keys missing, for devices users aliased from alone.
func (r *Runner) learn(ctx context.Context, ids []string, written []DeviceSignIns, owned func(key string) bool) error {
	if r.history == nil || len(ids) == 0 {
		return nil
	}
	r.mu.Lock()
	ids = r.core.personIDs(ids)
	limit, since := 2*r.core.cfg.MaxIDsPerPerson, r.linksSince // ids that name keys, and as many that name none
	r.mu.Unlock()
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	var links [][2]string
	stored := map[[2]string]bool{}
	// Each read adds the ids the links it found lead to. A person holds at most limit ids, so its
	// links are found in limit reads, and it adds at most limit ids: a closure past that would
	// only be refused (linkRefused).
	most := len(ids) * (limit + 1)
	for round, next := 0, ids; len(next) > 0 && round < limit && len(seen) <= most; round++ {
		found, err := r.history.IdentityLinksOf(ctx, next, since)
		if err != nil {
			return fmt.Errorf("read the stored links of %d ids: %w", len(next), err)
		}
		next = nil
		for _, l := range found {
			if stored[l] {
				continue
			}
			stored[l] = true
			links = append(links, l)
			for _, id := range l {
				if !seen[id] {
					seen[id] = true
					next = append(next, id)
				}
			}
		}
	}
	r.mu.Lock()
	persons, version := r.core.Learn(r.now(), links)
	var aliased, wrote []string // devices aliased from, by the links found; those whose sign-ins the batch wrote
	for _, l := range links {
		if storedKind(l) == storedDeviceAlias {
			aliased = append(aliased, l[0])
		}
	}
	for _, d := range written {
		wrote = append(wrote, "a:"+d.Device)
	}
	devices, keys := r.core.missingSignIns(aliased, wrote, owned)
	r.mu.Unlock()
	var signIns []DeviceSignIns
	if len(devices) > 0 {
		var events []ingest.Event
		if len(keys) > 0 {
			var err error
			if events, _, err = r.history.ForeignHistory(ctx, keys); err != nil {
				return fmt.Errorf("read the sign-ins of %d devices: %w", len(devices), err)
			}
		}
		r.mu.Lock()
		var v uint64
		if signIns, v = r.core.learnSignIns(r.now(), devices, events); len(signIns) > 0 {
			version = v // above the persons' too
		}
		r.mu.Unlock()
	}
	if len(persons) == 0 && len(signIns) == 0 {
		return nil
	}
	if err := r.write(ctx, Batch{Persons: persons, SignIns: signIns, Version: version}); err != nil {
		return fmt.Errorf("store %d persons and %d devices' sign-ins of links other consumers stored: %w", len(persons), len(signIns), err)
	}
	return nil
}

// name adds to b's Superseded its unnamed copies (superseded at a merge, see mergeCopies), named
// by their messageId from the stored events of their keys. It runs where the batch is
// stored, after the batches before it are: the copies were stored by those. Without a History
// there is nothing stored to look up, and they are dropped.
func (r *Runner) name(ctx context.Context, b *Batch) error {
	if len(b.unnamed) == 0 {
		return nil
	}
	if r.history != nil {
		var keys []string
		for _, u := range b.unnamed {
			if !slices.Contains(keys, u.key) {
				keys = append(keys, u.key)
			}
		}
		// Other keys of a merged person: other partitions' as often as not.
		stored, _, err := r.history.ForeignHistory(ctx, keys)
		if err != nil {
			return fmt.Errorf("look up %d copies superseded at a merge: %w", len(b.unnamed), err)
		}
		b.Superseded = append(b.Superseded, nameCopies(b.unnamed, stored)...)
	}
	b.unnamed = nil
	return nil
}

// write hands b to the sink; when the sink panics, it forgets the sessionizer's state (the
// sessions in b are not stored) and panics on.
func (r *Runner) write(ctx context.Context, b Batch) error {
	defer func() {
		if v := recover(); v != nil {
			r.mu.Lock()
			r.forget()
			r.mu.Unlock()
			panic(v)
		}
	}()
	return r.sink.Write(ctx, b)
}

// latestPersons keeps the last link of each customer key: later ones come from newer merges.
func latestPersons(links []PersonLink) []PersonLink {
	return latest(links, func(l PersonLink) string { return l.CustomerKey })
}

// latestSignIns keeps the last sign-ins of each device: later ones come from newer batches.
func latestSignIns(signIns []DeviceSignIns) []DeviceSignIns {
	return latest(signIns, func(d DeviceSignIns) string { return d.Device })
}

// latest keeps the last item of each key, in order.
func latest[T any](items []T, key func(T) string) []T {
	last := map[string]int{}
	for i, it := range items {
		last[key(it)] = i
	}
	out := items[:0:0]
	for i, it := range items {
		if last[key(it)] == i {
			out = append(out, it)
		}
	}
	return out
}

// restore loads, in one history load, the customers the sessionizer does not hold of the batch and
// of the persons of its events (see Sessionizer.toRestore).
func (r *Runner) restore(ctx context.Context, events []ingest.Event) error {
	if r.history == nil {
		return nil
	}
	if !r.linksRestored {
		since := uint64(max(r.now().Add(-LinkClockSkew).UnixNano(), 0))
		links, err := r.history.IdentityLinks(ctx)
		if err != nil {
			return fmt.Errorf("restore identity links: %w", err)
		}
		r.core.RestoreLinks(links)
		// Who signed in on the shared devices, which the links do not say: a user's retry of a
		// message a shared device holds brings the device back with it (see toRestore).
		devices, err := r.history.SharedDevices(ctx)
		if err != nil {
			return fmt.Errorf("restore identity links: read the users of shared devices: %w", err)
		}
		r.core.RestoreSharedDevices(devices)
		// The devices aliases named that no event was seen from when they were read: those whose
		// events are stored now (by a consumer that did not know the alias) name their key.
		if ids := r.core.AliasedNonDevices(); len(ids) > 0 {
			_, seen, err := r.history.DeviceLinks(ctx, ids, math.MaxUint64)
			if err != nil {
				return fmt.Errorf("restore identity links: read the stored events of %d devices aliased from: %w", len(ids), err)
			}
			r.core.SeenAsDevices(seen)
		}
		r.linksRestored, r.linksSince = true, since
		// Written with this batch: every person as the stored links name it, over any override a
		// consumer wrote knowing only some of them (see learn), or an older build left.
		r.pending.Persons = append(r.core.Persons(), r.pending.Persons...)
	}
	if err := r.learnDevices(ctx, events); err != nil {
		return err
	}
	if err := r.learnDeviceKeys(ctx, events); err != nil {
		return err
	}
	keys := r.core.toRestore(events)
	if len(keys) == 0 {
		return nil
	}
	if err := r.restoreKeys(ctx, events, keys); err != nil {
		return err
	}
	// An anonymous event of a shared device brings the person its sign-ins give it (see
	// toRestore), which are known once the device's events are restored: that person's keys
	// not loaded yet are loaded then, in a second read.
	if !r.core.sharedAmong(keys) {
		return nil
	}
	tried := make(map[string]bool, len(keys))
	for _, k := range keys {
		tried[k] = true
	}
	if more := slices.DeleteFunc(r.core.toRestore(events), func(k string) bool { return tried[k] }); len(more) > 0 {
		return r.restoreKeys(ctx, events, more)
	}
	return nil
}

// restoreKeys loads, in one history load, the customers keys that events bring back
// (see restore).
func (r *Runner) restoreKeys(ctx context.Context, events []ingest.Event, keys []string) error {
	// The events' own keys are this consumer's partitions'; the rest (the other keys of their
	// persons, a device's aliasers') are other partitions', which other processes store.
	own := map[string]bool{}
	for i := range events {
		own[events[i].CustomerKey()] = true
	}
	mine, foreign := keys[:0:0], []string(nil)
	for _, k := range keys {
		if own[k] {
			mine = append(mine, k)
		} else {
			foreign = append(foreign, k)
		}
	}
	start := time.Now()
	past, sessions, err := r.history.History(ctx, mine)
	if err == nil && len(foreign) > 0 {
		var p []ingest.Event
		var ss []Session
		p, ss, err = r.history.ForeignHistory(ctx, foreign)
		past, sessions = append(past, p...), append(sessions, ss...)
	}
	if err != nil {
		return fmt.Errorf("restore %d customers: %w", len(keys), err)
	}
	r.metrics.restoreSeconds.Observe(time.Since(start).Seconds())
	r.metrics.restoredEvents.Add(float64(len(past)))
	r.metrics.restored.Add(float64(r.core.RestoreHistory(keys, past, sessions)))
	return nil
}

// unseenDevice is a device an alias named that no event was seen of (see Runner.unseen).
type unseenDevice struct {
	device string
	until  time.Time
}

// aliasRace is how long after an alias from a device not seen yet (no event of it held or
// stored) a Runner looks for the device's events in the store with its later batches, and
// maxUnseen how many such devices it looks for at once, the oldest dropped first. It covers the
// race learnDeviceKeys leaves: another consumer took in the device's first events before the
// alias's link was stored, and stored them after this one looked (see learnDevices). A minute is
// many times a batch's store; a store slower than that leaves the device's browsing its own
// person until a restart (see Runner.restore).
const (
	aliasRace = time.Minute
	maxUnseen = 1024
)

// learnDevices reads, before events are pushed, what the store holds of the devices their
// aliases from a device's id name (aliasedFrom): such an alias is keyed by its userId, often on a
// partition another consumer reads than the device's, and whether previousId names a device
// decides whether it is read as a userId (identities.linksOf). It names one when the device was
// signed in on by its own events (a link device and device, see Output.Links), which another
// consumer may have stored since this one last read the device's links, or when it is the
// anonymousId of a stored event (a device that only browsed has no links): those are remembered
// in identities.devices, after the links are learned, as a restart replays the links with no
// such mark. Reading after the alias would be too late: a merge is not undone. The persons the
// links changed are written with the batch. An alias from an id neither stored as a device nor
// held as one (Sessionizer.heldAsDevice) is still read as a possibly earlier userId, as Segment's
// alias spec has it (docs/how-it-works.md).
//
// The devices of earlier batches' aliases found neither stored nor held (unseen) are asked for
// again in the same read, for aliasRace after their alias: another consumer may have taken in the
// device's first events while this one read the alias, each before the other stored (neither
// learnDeviceKeys there nor this read here saw the other's). Found stored, the device names its
// key, and its person is written with the batch: its events, stored with the device's own
// person, are its user's, as one consumer (or a restart, see restore) makes them. One read
// (DeviceLinks) per batch holding aliases from devices not known as devices yet, or while
// unseen ones wait; none otherwise.
func (r *Runner) learnDevices(ctx context.Context, events []ingest.Event) error {
	now := r.now()
	var devices []string
	seen := map[string]bool{}
	for i := range events {
		e := &events[i]
		if d := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); d != "" && !seen[d] && !r.core.ids.devices[d] {
			seen[d] = true
			devices = append(devices, d)
		}
	}
	fresh := len(devices) // the batch's; after them the unseen still waited for
	r.unseen = slices.DeleteFunc(r.unseen, func(u unseenDevice) bool { return now.After(u.until) || r.core.ids.devices[u.device] })
	waiting := make(map[string]bool, len(r.unseen))
	for _, u := range r.unseen {
		waiting[u.device] = true
		if !seen[u.device] {
			seen[u.device] = true
			devices = append(devices, u.device)
		}
	}
	if len(devices) == 0 {
		return nil
	}
	links, browsed, err := r.history.DeviceLinks(ctx, devices, r.linksSince)
	if err != nil {
		return fmt.Errorf("read the stored links and events of %d devices aliased from: %w", len(devices), err)
	}
	persons, _ := r.core.Learn(now, links)
	r.pending.Persons = append(r.pending.Persons, persons...)
	r.pending.Persons = append(r.pending.Persons, r.core.SeenAsDevices(browsed)...)
	// The batch's devices neither stored nor held wait (Push marks those held as devices, see
	// Sessionizer.link); those found stored are devices now, and leave the list next time.
	for _, d := range devices[:fresh] {
		if !waiting[d] && !r.core.ids.devices[d] && !r.core.heldAsDevice(d[2:]) {
			r.unseen = append(r.unseen, unseenDevice{d, now.Add(aliasRace)})
		}
	}
	if over := len(r.unseen) - maxUnseen; over > 0 {
		r.unseen = slices.Delete(r.unseen, 0, over)
	}
	return nil
}

// learnDeviceKeys reads, before events are pushed, the links stored since the sessionizer read
// them all (linksSince) that name first a device whose events are among them and that it does
// not hold (a customer toRestore restores): an alias from the device's id, keyed by its userId,
// which another consumer read (it reads the user's partition, this one the device's) before any
// event of the device was stored, is then learned before the device's events are taken in. They
// are stored with the user's person, the device names its key (Sessionizer.SeenAsDevices: its
// events are taken in now), and its person is written with the batch, as one consumer, which
// read the alias, stores them (tester 42's F1: the funnel of a device's views and its user's
// order counted two persons with two consumers until a restart, one with one). The device's key
// read so takes along the users' keys the alias is stored under (toRestore, after this), so the
// alias's sign-in is the device's too. The persons of the links learned are read to their
// closure after the batch is stored (learn, through unlearned), as those of its own links are.
//
// Only links naming the device first are read, a lookup by the links' primary key
// (History.IdentityLinksFrom): those another consumer stores of a device are its users' aliases
// from its id, stored device first (see Output.Links); the links naming it second are sign-ins
// by its own events, on its own partition, which the device's stored events restore (Restore).
// One read per batch holding devices not held, none otherwise.
func (r *Runner) learnDeviceKeys(ctx context.Context, events []ingest.Event) error {
	var devices []string
	seen := map[string]bool{}
	for i := range events {
		if a := events[i].AnonymousID; a != "" && !seen[a] && !r.core.holds(a) {
			seen[a] = true
			devices = append(devices, "a:"+a)
		}
	}
	if len(devices) == 0 {
		return nil
	}
	links, err := r.history.IdentityLinksFrom(ctx, devices, r.linksSince)
	if err != nil {
		return fmt.Errorf("read the stored links of %d devices not held: %w", len(devices), err)
	}
	if len(links) == 0 {
		return nil
	}
	persons, _ := r.core.Learn(r.now(), links)
	var aliased []string
	for _, l := range links {
		if storedKind(l) == storedDeviceAlias {
			aliased = append(aliased, l[0])
		}
	}
	persons = append(persons, r.core.SeenAsDevices(aliased)...)
	if len(persons) == 0 {
		return nil // links the graph knew (this consumer's own, of a device it let go)
	}
	r.pending.Persons = append(r.pending.Persons, persons...)
	for _, l := range links {
		r.unlearned = append(r.unlearned, l[0], l[1])
	}
	return nil
}

type runnerMetrics struct {
	restored       prometheus.Counter
	restoredEvents prometheus.Counter
	restoreSeconds prometheus.Histogram
	customers      prometheus.Gauge
	open           prometheus.Gauge
	sessions       *prometheus.CounterVec
	duplicates     prometheus.Counter
	late           prometheus.Counter
	beyondLateness prometheus.Counter
	links          prometheus.Counter
	merges         prometheus.Counter
	runaway        prometheus.Counter
	userConflicts  prometheus.Counter
	signInsLost    prometheus.Counter
	evicted        prometheus.Counter
	stageEntries   *prometheus.CounterVec
	orders         *prometheus.CounterVec
	revenue        *prometheus.CounterVec
	refunds        *prometheus.CounterVec
	ignoredAmounts *prometheus.CounterVec
	ignoredScores  *prometheus.CounterVec
	npsAnswers     *prometheus.CounterVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &runnerMetrics{
		restored:       counter("waymark_sessionizer_customers_restored_total", "Customers whose state was restored from ClickHouse (after a restart, rebalance or eviction)."),
		restoredEvents: counter("waymark_sessionizer_restored_events_total", "Stored events loaded to restore customers (a batch's own and the other keys of their persons)."),
		restoreSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "waymark_sessionizer_restore_duration_seconds", Help: "Time to load a batch's unknown customers from ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
		}),
		customers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "waymark_sessionizer_customers", Help: "Customers the sessionizer holds state for.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "waymark_sessionizer_open_sessions", Help: "Sessions whose last event is within the session gap of the newest event.",
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_sessionizer_session_updates_total", Help: "Sessions emitted (new or changed), by end reason.",
		}, []string{"end_reason"}),
		duplicates:     counter("waymark_sessionizer_duplicates_total", "Copies of an event seen before (same messageId, by any path): dropped, or taking the place of a later copy."),
		late:           counter("waymark_sessionizer_late_events_total", "Events older than their customer's newest event by more than the session gap."),
		beyondLateness: counter("waymark_sessionizer_events_beyond_lateness_total", "Events older than the newest event by more than the allowed lateness (stored, counted)."),
		links:          counter("waymark_sessionizer_identity_links_total", "Identity links seen (identify, alias, events carrying both ids)."),
		merges:         counter("waymark_sessionizer_identity_merges_total", "Identity links that joined two persons."),
		evicted:        counter("waymark_sessionizer_evictions_total", "Customers dropped from memory to stay under the cap (restored from ClickHouse if they return)."),
		runaway:        counter("waymark_sessionizer_runaway_merges_total", "Identity links refused because the person would exceed the id cap."),
		userConflicts:  counter("waymark_sessionizer_identity_conflicts_total", "Identity links refused because they would join two persons with distinct userIds: through a shared anonymousId (a shared device), or by an alias whose previousId is another person's userId (unless --alias-joins-users)."),
		signInsLost:    counter("waymark_sessionizer_sign_ins_lost_total", fmt.Sprintf("Sign-ins on shared devices dropped past the %d a device keeps: the device's anonymous events in their span go to no user.", MaxDeviceSignIns)),
		stageEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_stage_entries_total", Help: "Persons entering a journey stage (the first event of the person reaching it to arrive), by stage and first-touch channel.",
		}, []string{"stage", "channel"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_orders_total", Help: "Order Completed events, by first-touch channel.",
		}, []string{"channel"}),
		revenue: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_revenue_total", Help: "Positive amounts of Order Completed events (properties.revenue, else total), by first-touch channel and currency (properties.currency's ISO 4217 code; --default-currency, USD unless set, when the event names none).",
		}, []string{"channel", "currency"}),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_refunds_total", Help: "Refunds: negative amounts of Order Completed events and amounts of Order Refunded events, as absolute values, by first-touch channel and currency (properties.currency's ISO 4217 code; --default-currency, USD unless set, when the event names none).",
		}, []string{"channel", "currency"}),
		ignoredAmounts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_amounts_ignored_total", Help: "Order Completed amounts left out of revenue and refunds (the events are stored), by reason: not_a_number, not_finite, out_of_range, unknown_currency.",
		}, []string{"reason"}),
		ignoredScores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_scores_ignored_total", Help: "Survey scores (NPS Submitted, Survey Answered) left out of the stages' Net Promoter Scores and mean scores (the events are stored), by reason: not_a_number, not_finite, out_of_scale, no_stage (given before its person reached any stage).",
		}, []string{"reason"}),
		npsAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_nps_responses_total", Help: "Answers to the Net Promoter question (NPS Submitted, 0-10) by the stage the person is in when it arrives and category: promoter (9-10), passive (7-8), detractor (0-6). Net Promoter Score = 100 * (promoter - detractor) / all.",
		}, []string{"stage", "category"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.restored, m.restoredEvents, m.restoreSeconds, m.customers, m.open, m.sessions, m.duplicates, m.late, m.beyondLateness,
			m.links, m.merges, m.runaway, m.userConflicts, m.signInsLost, m.evicted, m.stageEntries, m.orders, m.revenue, m.refunds, m.ignoredAmounts, m.ignoredScores, m.npsAnswers} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register sessionizer metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *runnerMetrics) observe(s Stats) {
	m.duplicates.Add(float64(s.Duplicates))
	m.late.Add(float64(s.Late))
	m.beyondLateness.Add(float64(s.BeyondLateness))
	m.links.Add(float64(s.IdentityLinks))
	m.merges.Add(float64(s.IdentityMerges))
	m.runaway.Add(float64(s.RunawayMerges))
	m.userConflicts.Add(float64(s.UserIDConflicts))
	m.signInsLost.Add(float64(s.SignInsLost))
	m.evicted.Add(float64(s.Evicted))
	for k, n := range s.StageEntries {
		m.stageEntries.WithLabelValues(k.Stage, k.Channel).Add(float64(n))
	}
	for ch, n := range s.Orders {
		m.orders.WithLabelValues(ch).Add(float64(n))
	}
	for k, v := range s.Revenue {
		m.revenue.WithLabelValues(k.Channel, k.Currency).Add(v)
	}
	for k, v := range s.Refunds {
		m.refunds.WithLabelValues(k.Channel, k.Currency).Add(v)
	}
	for reason, n := range s.IgnoredAmounts {
		m.ignoredAmounts.WithLabelValues(reason).Add(float64(n))
	}
	for reason, n := range s.IgnoredScores {
		m.ignoredScores.WithLabelValues(reason).Add(float64(n))
	}
	for k, n := range s.NPSAnswers {
		m.npsAnswers.WithLabelValues(k.Stage, k.Category).Add(float64(n))
	}
}
