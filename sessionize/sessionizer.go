package sessionize

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"iter"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-faster/city"
	"golang.org/x/text/currency"

	"github.com/waymark-dev/waymark/ingest"
)

// Config configures a Sessionizer.
type Config struct {
	Gap         time.Duration // inactivity that ends a session; default 30m
	MaxDuration time.Duration // longest session, cut after it; default 24h
	// AllowedLateness is how far behind the newest event time an event may arrive and still be
	// expected; older ones are stored and counted as beyond lateness. Default 72h (Snowplow's).
	AllowedLateness time.Duration
	// MaxIDsPerPerson caps identity merges: a person holds at most this many ids that name a
	// customer key, and as many that name none (an alias's previousId no event has used; see
	// identities); default 500.
	MaxIDsPerPerson int
	// MaxCustomers caps the customers held in memory; above it the ones with the oldest newest
	// event are evicted (a Runner restores them from the store if they come back). Default 1,000,000.
	MaxCustomers int
	// MaxEventsPerSession cuts a session after this many events (end reason max_events): a bot or
	// a broken integration must not grow one session without bound. Default 10,000.
	MaxEventsPerSession int
	// OwnDomains are domains whose referrers are the shop's own navigation besides the page's own
	// site (a checkout or payment site on another domain), each with its subdomains, lower case
	// (ParseOwnDomains): a touchpoint referred from one has no referrer for its channel (see
	// ownSite). Default none.
	OwnDomains []string
	// DefaultCurrency is the currency of an order's amount whose event names none (no
	// properties.currency, or a blank one): an ISO 4217 code in capitals, or CurrencyNone to keep
	// such amounts in a series of their own. Default USD, as Segment's e-commerce spec assumes
	// ("If this isn't set, Segment assumes the revenue to be in US dollars").
	DefaultCurrency string
	// AliasJoinsUsers reads an alias's previousId as a possibly earlier userId too, joining the
	// two userIds' persons for good: for shops that re-key their users with alias (an email,
	// then a database id; Segment's alias for downstream tools). Off by default: an alias never
	// joins two persons that each have a userId (see identities.linksOf), as PostHog applies
	// $create_alias only to an anonymous side and wants $merge_dangerously to merge two
	// identified persons, and Segment's Unify keeps one user_id per profile. The analogue of
	// PostHog's $merge_dangerously is turning this on. Turning it off again splits no persons it
	// joined: their events were stored under the joined person, and the stored alias replays as
	// the join it was (see storedLink; Mixpanel: "Merging identities is irreversible").
	AliasJoinsUsers bool
}

func (c *Config) setDefaults() {
	if c.Gap == 0 {
		c.Gap = 30 * time.Minute
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = 24 * time.Hour
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = 72 * time.Hour
	}
	if c.MaxIDsPerPerson == 0 {
		c.MaxIDsPerPerson = 500
	}
	if c.MaxCustomers == 0 {
		c.MaxCustomers = 1_000_000
	}
	if c.MaxEventsPerSession == 0 {
		c.MaxEventsPerSession = 10_000
	}
	if c.DefaultCurrency == "" {
		c.DefaultCurrency = "USD"
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.Gap <= 0 {
		return fmt.Errorf("session gap: must be positive, got %s", c.Gap)
	}
	if c.MaxDuration < c.Gap {
		return fmt.Errorf("session max duration: must be at least the gap %s, got %s", c.Gap, c.MaxDuration)
	}
	switch {
	case c.AllowedLateness < 0:
		return fmt.Errorf("allowed lateness: must not be negative, got %s", c.AllowedLateness)
	case c.MaxCustomers < 0:
		return fmt.Errorf("max customers: must be positive, got %d", c.MaxCustomers)
	case c.MaxIDsPerPerson < 0:
		return fmt.Errorf("max ids per person: must be positive, got %d", c.MaxIDsPerPerson)
	case c.MaxEventsPerSession < 0:
		return fmt.Errorf("max events per session: must be positive, got %d", c.MaxEventsPerSession)
	}
	for _, d := range c.OwnDomains {
		if err := checkDomain(d); err != nil {
			return fmt.Errorf("own domains: %w", err)
		}
	}
	if code, err := ParseDefaultCurrency(c.DefaultCurrency); c.DefaultCurrency != "" && (err != nil || code != c.DefaultCurrency) {
		return fmt.Errorf("default currency: %q: want an ISO 4217 code in capitals (USD) or %s", c.DefaultCurrency, CurrencyNone)
	}
	return nil
}

// ParseDefaultCurrency reads Config.DefaultCurrency's value: an ISO 4217 code in any case
// (returned in capitals), or CurrencyNone.
func ParseDefaultCurrency(s string) (string, error) {
	if s = strings.TrimSpace(s); s == CurrencyNone {
		return s, nil
	}
	u, err := currency.ParseISO(s)
	if err != nil {
		return "", fmt.Errorf("%q is no ISO 4217 currency code (USD, EUR, …) nor %s", s, CurrencyNone)
	}
	return u.String(), nil
}

// Why a session ended.
const (
	EndTimeout       = "timeout"        // the customer's next event came after more than the gap
	EndMaxDuration   = "max_duration"   // the session reached the longest allowed duration
	EndClientSession = "client_session" // the client's own session id changed
	EndMaxEvents     = "max_events"     // the session reached MaxEventsPerSession events
	EndOpen          = "open"           // no later event of the customer yet
)

// Session is a run of one customer's events. Sessions are re-emitted with a higher Version when
// late events change them; a session that a late event merged into another is emitted once more
// with Deleted set. Readers keep, per ID, the row with the highest Version.
type Session struct {
	ID          string // stable while the session's start does not change
	CustomerKey string // the device (see ingest.Event.CustomerKey)
	// PersonID is the person of the session's last touchpoint when it was sessionized (a userId
	// when one was known); later merges are applied at query time, as for events.
	PersonID   string
	Start, End time.Time // the first and last touchpoints' times, to the µs
	// StartSeq is the first touchpoint's Seq (ingest.Event.Seq): with Start, its place in the
	// tie rule (comparePoints), so the store can place events of Start's µs in the visit that
	// starts there or in the one before (store's sessionSplit.split). 0 in rows stored before it.
	StartSeq      int64
	Events        int
	EntryEvent    string // the first touchpoint (event name, or type for unnamed pages)
	ExitEvent     string // the last touchpoint
	EntryChannel  string // channel of the first touchpoint (see Channel)
	EntryCampaign string // utm_campaign of the first touchpoint
	// Stages are the stages of the journey map whose rules the session's events match (reached),
	// in map order: what the visit did, whatever the person's stage. A stage reached after a
	// further one is listed though the person does not enter it (EnteredStages), as a converted
	// customer's later visit that adds to a cart lists consideration.
	Stages     []string
	EndReason  string
	MapVersion string
	Version    uint64
	Deleted    bool
}

// point is what the sessionizer keeps of one event: 56 bytes, strings interned.
type point struct {
	us       int64  // event time, unix microseconds (ingest.Event.Timestamp.UnixMicro)
	seq      int64  // place in the partition (ingest.Event.Seq): orders equal times as the client sent them
	id       uint64 // TieID of the messageId: drops duplicates, and orders ties Seq leaves
	rules    uint64 // bit i: the base conditions of rule i hold
	touch    uint32 // touchpoint label (interned)
	channel  uint32 // channel (interned)
	campaign uint32 // utm_campaign (interned)
	// session is the hash of the client's session id in bits 0-30 (bit 0 set), 0 when none; bit
	// 31 is signedInBit.
	session uint32
	// payload is the hash of the copy's path and bytes (ingest.Event.Source and Raw, see
	// Sessionizer.payloadHash): a copy at the same time with other bytes, or by another path, is
	// another copy, not the same one delivered again.
	payload uint32
}

// signedInBit marks, in a point's session, an event that carried a userId and the device's
// anonymousId: a sign-in, which the device's sign-ins may need again (see signIn).
const signedInBit = 1 << 31

// clientSession is the hash of the client's session id, 0 when none.
func (p point) clientSession() uint32 { return p.session &^ signedInBit }

// signedIn reports whether the point's event carried a userId and an anonymousId.
func (p point) signedIn() bool { return p.session&signedInBit != 0 }

// identityLabel is the touchpoint label of an identify, alias or group call: such points are kept
// to drop their copies, but they are not touchpoints, so they are never part of a session, and
// their label, ingest.Internal then the type (no event or page name may hold ingest.Internal),
// marks them.
func identityLabel(typ string) string { return ingest.Internal + typ }

// isIdentity reports whether p is an identify, alias or group call.
func (s *Sessionizer) isIdentity(p point) bool {
	return strings.HasPrefix(s.strs[p.touch], ingest.Internal)
}

// TouchpointTypes are the Segment calls that are touchpoints: track, page and screen. The identity
// calls identify, alias and group say who someone is, not what they did: they are never part of a
// session, a path or a fork (a funnel step may still name them).
func TouchpointTypes() []string { return []string{"track", "page", "screen"} }

// IsTouchpoint reports whether an event of type typ is a touchpoint (see TouchpointTypes).
func IsTouchpoint(typ string) bool { return slices.Contains(TouchpointTypes(), typ) }

// channel classifies the touchpoint e with the map's channel rules and the configured own domains.
func (s *Sessionizer) channel(e *ingest.Event) string { return s.jm.channel(e, s.cfg.OwnDomains) }

// newPoint keeps what sessions need of an event.
func (s *Sessionizer) newPoint(e *ingest.Event) point {
	channel := s.channel(e)
	label := touchpoint(e)
	if !IsTouchpoint(e.Type) {
		label = identityLabel(e.Type)
	}
	p := point{us: e.Timestamp.UnixMicro(), seq: e.Seq, id: TieID(e.MessageID), rules: s.matchRules(e, channel),
		touch: s.intern(label), channel: s.intern(channel), campaign: s.intern(e.CampaignName), payload: s.payloadHash(e)}
	if e.SessionID != "" {
		h := fnv.New32a()
		h.Write([]byte(e.SessionID))
		p.session = (h.Sum32() | 1) &^ signedInBit
	}
	if e.UserID != "" && e.AnonymousID != "" {
		p.session |= signedInBit
	}
	return p
}

// intern returns the index of str in the sessionizer's string table, adding it if new.
func (s *Sessionizer) intern(str string) uint32 {
	if i, ok := s.strIndex[str]; ok {
		return i
	}
	i := uint32(len(s.strs))
	s.strs = append(s.strs, str)
	s.strIndex[str] = i
	return i
}

// storedSession is what the sessionizer keeps of a session it emitted, to diff later versions
// against: 72 bytes, strings interned, stages as bits.
type storedSession struct {
	startUs, endUs int64 // unix µs, as Session.Start and End
	startSeq       int64 // Session.StartSeq
	version        uint64
	events         uint32
	entry, exit    uint32
	channel        uint32
	campaign       uint32
	reason         uint32
	person         uint32
	stages         uint64
}

type customer struct {
	points   []point // sorted by comparePoints up to sorted; appended after
	sorted   int
	ids      *[]uint64       // the ids of points, sorted, once there are more than idIndexFrom
	sessions []storedSession // as last emitted
	dirty    bool
	latest   int64 // newest event time, unix µs
	// reached is the journey stages whose live entries counted the customer's person while that
	// person is the customer key alone (its id never linked); then the identity graph keeps them
	// (see Sessionizer.journey).
	reached      uint64
	firstChannel string // channel of the first touchpoint that arrived ("" before one): identify, alias and group are none
	byUser       bool   // the customer key is a userId (calls without an anonymousId), not a device
}

// Stats counts what one Push saw, for metrics.
type Stats struct {
	Events int // events pushed
	// Duplicates are copies of an event seen before (same messageId, by any path, at any time):
	// dropped, or, when earlier than the copy held, taking its place, or, when the same bytes at
	// the same time (delivered again), stored again (see Output.LaterCopies); and the copies
	// superseded when a merge joins two persons' keys that both held one (see mergeCopies).
	Duplicates     int
	Late           int // events older than their customer's newest event by more than the gap
	BeyondLateness int // events older than the newest event overall by more than AllowedLateness
	IdentityLinks  int // id pairs linked by identify, alias or events carrying both ids
	IdentityMerges int // links that joined two persons
	RunawayMerges  int // links refused because the person would exceed MaxIDsPerPerson
	// UserIDConflicts counts links refused because they would join two persons that both have a
	// userId: through a shared anonymousId (a shared device), or, with Config.AliasJoinsUsers
	// off, by an alias whose previousId is known, when it is read, as the userId of another
	// person (see identities.linksOf).
	UserIDConflicts int
	// SignInsLost counts sign-ins on shared devices dropped past the bound a device keeps, whose
	// span's anonymous events then go to no user (see identities.signedIn).
	SignInsLost int
	Evicted     int // customers dropped from memory to stay under MaxCustomers
	// StageEntries counts persons entering a journey stage, by stage and the first-touch
	// channel of the customer key of the event that entered it: the first event to arrive by
	// which its person reaches the stage, as the stages query counts persons, unless the person
	// had reached a further stage before it arrived (EnteredStages: skipped). The person is the
	// one the event is stored with (identities.personAt): its userId's person, else on a device
	// several users signed in on the user signed in at its time (DeviceSignIns), else its
	// device's person, with the merges made by identify, alias and events carrying both ids. An
	// nth rule (a repeat order) counts the person's distinct events under every key of theirs
	// the sessionizer holds, the shared devices they signed in on included. So the live entries
	// agree with the stages query whenever the events arrive after the links that make their
	// person one and the sessionizer holds the person's keys: after a restart or an eviction a
	// Runner restores the keys of the persons a batch names (toRestore), but not a shared device
	// another user's sign-in joined to them, until its own events come again.
	//
	// A counter cannot go down, so when a merge reveals that two keys counted one person (a
	// phone's anonymous visit, then a login there), both entries stay, as a live count in
	// Mixpanel or Amplitude does not change retroactively; from the merge on, the person enters
	// each stage at most once. A stage the merged person reaches only with the events of both
	// keys (the second order of an nth: 2 rule was on the other key) is counted at the merge:
	// a demanding reader of the live graph wants every person who reached a stage counted once,
	// at least (never fewer than the query's persons), rather than a stage the person reached
	// left uncounted until some later event. Likewise a sign-in arriving after events it
	// splits between two users of a device takes no entry back, and a merge that finds copies
	// of one message under the two persons' keys (see mergeCopies) takes back neither the
	// entries nor the orders, revenue and refunds the later copy counted when it arrived.
	StageEntries map[StageChannel]int
	Orders       map[string]int              // Order Completed events by first-touch channel
	Revenue      map[ChannelCurrency]float64 // their positive amounts (see OrderAmount), by channel and currency
	// Refunds are the negative amounts of Order Completed events and the amounts of Order
	// Refunded events (Segment's e-commerce spec), as absolute values, by channel and currency.
	Refunds map[ChannelCurrency]float64
	// IgnoredAmounts counts amounts left out of Revenue and Refunds, by reason (AmountNotANumber,
	// AmountNotFinite, AmountOutOfRange, AmountUnknownCurrency): the events are stored all the same.
	IgnoredAmounts map[string]int
	// IgnoredScores counts survey scores left out of the stages' mean scores, by reason
	// (ScoreReasons: SurveyScore's, and ScoreNoStage for one whose person had reached no stage
	// when it arrived): the events are stored all the same.
	IgnoredScores map[string]int
	// NPSAnswers counts the answers to the Net Promoter question (NPSEvent, within its scale) by
	// the stage the person is in when it arrives (the furthest entered so far, as the stages
	// query places a score; answers of persons in no stage yet are not counted, as there) and
	// NPSCategory: a live Net Promoter Score per stage is (promoters − detractors) / all × 100.
	NPSAnswers map[StageCategory]int
}

// StageCategory is a stage and an NPS category (NPSCategory).
type StageCategory struct{ Stage, Category string }

// StageChannel is a stage and a channel.
type StageChannel struct{ Stage, Channel string }

// ChannelCurrency names a sum of amounts: of a first-touch channel, in one currency (see
// OrderCurrency). Amounts in two currencies are never added together.
type ChannelCurrency struct{ Channel, Currency string }

// Sessionizer cuts customers' events into sessions on event time. It is a plain data structure:
// not safe for concurrent use, and it takes the current time as a parameter.
type Sessionizer struct {
	cfg       Config
	jm        *Map
	rules     []Rule               // all rules of the map, flattened
	ruleStage []int                // stage index of each rule
	customers map[string]*customer // held decoded: the most recently active (see cool)
	cold      map[string][]byte    // held encoded (see cold.go)
	hotCap    int                  // customers held decoded at most (see cool)
	ids       *identities
	watermark int64 // newest event time seen, unix µs
	version   uint64
	restored  []string             // customers restored since the last Push, to recompute and diff
	resigned  map[string]bool      // devices ("a:" ids) whose sign-ins restores changed since the last Push (see restoreSignIns)
	evicting  map[string]*customer // customers the last Push changed and evicted (see holds)
	strs      []string             // interned strings
	strIndex  map[string]uint32
	compactAt int          // size of strs at which it is rebuilt from the strings in use (see compactStrings)
	seed      maphash.Seed // of payloadHash: held in memory only, and computed again on restore
	idBuf     []byte       // scratch of copyElsewhere
}

// New builds a Sessionizer for the journey map jm.
func New(cfg Config, jm *Map) (*Sessionizer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sessionizer config: %w", err)
	}
	s := &Sessionizer{cfg: cfg, jm: jm, customers: map[string]*customer{}, cold: map[string][]byte{},
		hotCap: defaultHotCustomers, ids: newIdentities(cfg.MaxIDsPerPerson, cfg.AliasJoinsUsers), strIndex: map[string]uint32{},
		compactAt: minCompactStrings, seed: maphash.MakeSeed()}
	for i, st := range jm.Stages {
		for _, r := range st.Rules {
			s.rules = append(s.rules, r)
			s.ruleStage = append(s.ruleStage, i)
		}
	}
	if len(s.rules) > 64 {
		return nil, fmt.Errorf("journey map %s: at most 64 rules in all, got %d", jm.Version, len(s.rules))
	}
	return s, nil
}

// Output is what one Push changed: sessions (new, changed or deleted) and the person of every
// customer key whose person changed, all with Version.
type Output struct {
	Sessions []Session
	Persons  []PersonLink
	// Links are the identity links to store and restore (RestoreLinks, Learn), four kinds told
	// apart by their ids' namespaces (see storedLink):
	//   - (userId, userId): an alias of two userIds that merged two persons or named one
	//     (already one person), made with Config.AliasJoinsUsers alone;
	//   - (userId, device): a user signed in on a device by an event of the device's own (an
	//     event carrying both ids) that merged two persons;
	//   - (device, userId): a user's alias from a device's id (aliasedFrom), a sign-in on it,
	//     when it merged two persons or the user is new to aliasing from that device: a Runner
	//     restores the user's key, which holds that alias, with the device's;
	//   - (device, device): the device was signed in on by an event of its own (see
	//     identities.devices), new to this sessionizer, whatever its link did: no alias from
	//     its id is read as a userId from then on, by any consumer that reads the link.
	Links   [][2]string
	Version uint64
	// SignIns are the devices used by several userIds whose sign-ins changed, as they are now.
	SignIns []DeviceSignIns
	// PersonIDs are the person each pushed event is stored with (see identities.personAt): a
	// userId whenever one is known at ingest. Later merges are in Persons.
	PersonIDs []string
	// Seqs are the Seq each pushed event is stored with: its own, or for an event delivered again
	// the first delivery's, so the copies ClickHouse keeps agree on the order of ties.
	Seqs []int64
	// LaterCopies are the indexes, ascending, of the pushed events that must not be stored: copies
	// of an event (same messageId) of the same customer key at a later time than a copy the
	// sessionizer holds (a retry that was stamped again, a resend without timestamp),
	// and the copies of this push that an earlier copy pushed after them replaced. The earliest
	// copy by event time is the event, whatever order the copies arrive in, as queries count
	// it (store's dedupe keeps each person's earliest copy by time, seq, id). A copy under another
	// key of the person is handled alike (see copyElsewhere): at the time of the held copy or
	// later it is not stored; earlier, it is, and the held copy is superseded and taken out of
	// its key's sessions. The other key is held after a restart, a rebalance or an eviction too:
	// a Runner restores the keys of the persons of a batch's events with the batch's own, in one
	// load (see toRestore). Copies under two keys joined into one person only after both arrived
	// are found at the merge, and the later superseded (see mergeCopies). Copies stay stored, and
	// queries keep the person's earliest, where the sessionizer cannot know of the other: a copy
	// not stored yet when its key is restored (the keys' partitions read by two consumers; a
	// Runner learns which users signed in on a shared device from the store at its start only),
	// or a device's anonymous copy given to a user by a shared device's sign-ins (see
	// DeviceSignIns), whose person in the graph is another, by a sign-in arriving after both
	// copies. Copies on a shared device that its sign-ins give to the person when a copy arrives
	// are found (see copyElsewhere), and only those: one they give to another user is that
	// user's event, stored too, though the graph gives the device to its first user (tester 47's
	// F1), at a merge too (see givenTo). A copy dropped, whose device's sign-ins give it to another
	// user only through a sign-in arriving after both copies, stays dropped: nothing looks for
	// dropped copies then, as nothing looks for copies to drop (the case above).
	//
	// A message is its messageId alone, whatever path brought each copy (ingest.Event.Source:
	// the collector's write key, Kafka, a replay): Segment's deduplication "is not scoped to a
	// specific source or a workspace, and applies to all events being received by Segment"
	// (https://www.twilio.com/docs/segment/guides/duplicate-data), and RudderStack's keys on the
	// messageId alone too. So a copy produced straight to Kafka or replayed of a message the
	// collector took is a copy like any other.
	//
	// Of the copies at the time held, the first to arrive is the event, as Segment keeps the
	// first copy of a messageId: one with other bytes (a resend with another amount, another
	// name, or only another receivedAt) or by another path is a later copy too, never stored.
	// The same bytes by the same path (see payloadHash) are the same message delivered again (a
	// Kafka redelivery, a batch the consumer writes again after its write failed, which the
	// sessionizer had absorbed): stored again, with the held copy's Seq, an identical row. So every row of an event at its time
	// carries the first copy's payload, and answers do not depend on which row ClickHouse keeps
	// when it merges them (the events table keeps the one inserted last) or a read meets first.
	//
	// A copy earlier than the one held replaces it: the customer's point moves to the earlier
	// time (its sessions are cut again, and the changed ones emitted), and the copy is stored.
	// The held copy's row, stored before, stays until ClickHouse merges it away. The events
	// table (store/schema.go) is a ReplacingMergeTree without a version column, ordered by
	// (customer_key, source, message_id) and partitioned by month: on merge it keeps the row
	// inserted last, the earlier copy (batches are stored in the order they are pushed, and a
	// later copy is never stored after an earlier one), but it merges rows within a partition
	// and of one source only, so a held copy in another month than the earlier one, or that
	// came by another path, would stay for good, and a
	// query of its month alone, which does not read the earlier copy, would count it. Until a
	// merge, every query keeping a person's earliest copy (store's dedupe) would count the
	// earlier one, but the sessions query would take the held row for a later copy cut into a
	// session. So the replaced copy is in Superseded, which the store writes before the events
	// and every read of events leaves out: before and after merges, in any month, the earlier
	// copy is the only one read, as if the copies had arrived in time order.
	//
	// The identity links a copy carries (identify, alias, an event with both ids: see
	// identities.linksOf) count whichever copy is the event: a later copy, not stored, still links
	// its ids (see laterCopy), as a superseded copy's links, made when it arrived, stay. So a
	// client that sends an identify and a track under one messageId gets one person in every
	// arrival order, live, after a restart (the links are stored, Output.Links) and in waymark
	// resessionize (which rebuilds persons from the stored links). Taking a superseded copy's
	// links back instead (it is no event) cannot be done alike: the identity graph is a
	// union-find whose merges are not undone, and what a merge decided after it (a link refused
	// as joining two userIds, copies superseded at the merge, see mergeCopies, the persons
	// stored) would have to be replayed from events no longer held. A copy's sign-in
	// (DeviceSignIns) is the one thing it gives only while it is the event: a superseded copy's is
	// taken back (see supersede), a later copy makes none, and a restart, which rebuilds sign-ins
	// from the stored events, finds neither. PostHog and Mixpanel, which deduplicate on the event
	// name too (https://posthog.com/docs/how-posthog-works/ingestion-pipeline,
	// https://docs.mixpanel.com/reference/event-deduplication), keep such an identify and its link.
	LaterCopies []int
	// Superseded are the stored copies (of the pushed copy's key or another key of its person)
	// that an earlier copy pushed now replaced, to be left out of every answer (see LaterCopies).
	Superseded []Copy
	// unnamed are superseded copies known by key, time and id only (see supersede): the Runner
	// names them from the store (see nameCopies) and writes them with Superseded.
	unnamed []unnamedCopy
}

// unnamedCopy is a stored copy of an event known by its customer key, time (unix µs) and id
// (TieID) only.
type unnamedCopy struct {
	key string
	us  int64
	id  uint64
}

// nameCopies returns the copies of unnamed found among stored, events of their keys as the store
// holds them, named by their messageId. A copy not found is not stored (it cannot be, being held
// as stored) and needs no leaving out.
func nameCopies(unnamed []unnamedCopy, stored []ingest.Event) []Copy {
	var out []Copy
	for _, u := range unnamed {
		for i := range stored {
			e := &stored[i]
			if e.Timestamp.UnixMicro() == u.us && e.CustomerKey() == u.key && TieID(e.MessageID) == u.id {
				out = append(out, Copy{u.key, e.MessageID, time.UnixMicro(u.us).UTC()})
				break
			}
		}
	}
	return out
}

// Copy names one stored copy of an event: its customer key, messageId and time. Its source is
// not part of it: a message is its messageId, whatever path each copy came by (see
// Output.LaterCopies), and every row of the message under the key at that time is the copy.
type Copy struct {
	CustomerKey, MessageID string
	Time                   time.Time
}

// Push adds events and returns the sessions and persons they created or changed, each with a
// version above every earlier one, and what it saw. Events already seen (same messageId, by any
// path) are ignored, so redelivered batches change nothing.
func (s *Sessionizer) Push(now time.Time, events []ingest.Event) (Output, Stats) {
	ps := &pushState{events: events, touched: s.restored, stats: Stats{Events: len(events), StageEntries: map[StageChannel]int{},
		Orders: map[string]int{}, Revenue: map[ChannelCurrency]float64{}, Refunds: map[ChannelCurrency]float64{}, IgnoredAmounts: map[string]int{},
		IgnoredScores: map[string]int{}, NPSAnswers: map[StageCategory]int{}}}
	stats := &ps.stats
	s.restored = nil
	for d := range s.resigned { // written when shared (see restoreSignIns)
		ps.signedIn(d)
	}
	s.resigned = nil
	s.devicesOfBatch(ps, events)
	personIDs, seqs := make([]string, len(events)), make([]int64, len(events))
	for i := range events {
		ps.i = i
		e := &events[i]
		key := e.CustomerKey()
		c := s.customer(key)
		p := s.newPoint(e)
		created := c == nil
		if created {
			c = &customer{byUser: e.AnonymousID == ""}
			s.customers[key] = c
		}
		if held, ok := c.held(p); ok {
			stats.Duplicates++
			if p.payload != held.payload { // another copy at the same time: the first to arrive is the event
				ps.later = append(ps.later, i)
				s.laterCopy(ps, key, c, e, held)
			}
			personIDs[i], seqs[i] = storedPerson(s.ids.personAt(e.UserID, e.AnonymousID, held.us, held.seq)), held.seq
			continue // the same bytes delivered again: stored again, which changes nothing
		}
		if c.holds(p.id) { // a copy at another time (a retry re-stamped): the earliest one counts
			stats.Duplicates++
			j := c.copyOf(p.id)
			if p.us >= c.points[j].us {
				ps.later = append(ps.later, i)
				s.laterCopy(ps, key, c, e, c.points[j])
				continue
			}
			// An earlier copy: it is the event from now on (see Output.LaterCopies).
			moved := c.points[j]
			c.replace(j, p)
			s.supersede(ps, key, c, moved)
			s.earlierCopy(ps, key, c, e, p)
			personIDs[i], seqs[i] = storedPerson(s.ids.personAt(e.UserID, e.AnonymousID, p.us, p.seq)), p.seq
			continue
		}
		other, oc, j := s.copyElsewhere(e, p)
		if oc != nil {
			// A copy under another key of the person (see Output.LaterCopies).
			stats.Duplicates++
			q := oc.points[j]
			if p.us >= q.us {
				ps.later = append(ps.later, i)
				s.laterCopy(ps, key, c, e, q)
				personIDs[i], seqs[i] = storedPerson(s.ids.personAt(e.UserID, e.AnonymousID, q.us, q.seq)), q.seq
				if created && len(c.points) == 0 {
					delete(s.customers, key) // nothing of it is stored
				}
				continue
			}
			// An earlier copy: it is the event; the other key's copy is superseded.
			oc.remove(j)
			s.supersede(ps, other, oc, q)
		}
		if c.firstChannel == "" && !s.isIdentity(p) {
			c.firstChannel = s.strs[p.channel]
		}
		s.link(ps, key, c, e, p, false)
		person := s.ids.personAt(e.UserID, e.AnonymousID, p.us, p.seq)
		s.observe(key, c, e, p, person, stats, oc != nil)
		s.signInsOf(ps, c, e, p)
		personIDs[i], seqs[i] = storedPerson(person), p.seq
		c.add(p)
		ps.touch(key, c)
	}
	s.evicting = nil // those the last Push evicted and this one did not take back are gone
	stats.SignInsLost = s.ids.takeLost()
	later := ps.later
	slices.Sort(later)
	later = slices.Compact(later)
	s.version = max(s.version+1, uint64(now.UnixNano()))
	out := Output{Version: s.version, Links: slices.Concat(ps.merged, ps.aliased, ps.devices), PersonIDs: personIDs, Seqs: seqs, LaterCopies: later,
		Superseded: ps.superseded, unnamed: ps.unnamed}
	for _, device := range slices.Sorted(maps.Keys(ps.signIns)) {
		if d, ok := s.ids.sharedSignIns(device); ok {
			out.SignIns = append(out.SignIns, d)
		} else if ps.unshared[device] { // replaces the stored shared ones: the one user's
			out.SignIns = append(out.SignIns, s.ids.signIns(device))
		}
	}
	emitted := map[string]bool{}
	for _, pair := range ps.merged {
		if root := s.ids.find(pair[0]); !emitted[root] { // each merged person once
			emitted[root] = true
			out.Persons = append(out.Persons, s.ids.person(root)...)
		}
	}
	for _, d := range ps.named {
		if root := s.ids.find(d); !emitted[root] {
			emitted[root] = true
			out.Persons = append(out.Persons, s.ids.person(root)...)
		}
	}
	for _, key := range ps.touched {
		c := s.customers[key]
		c.dirty = false
		c.sort()
		next := s.cut(key, c)
		out.Sessions = append(out.Sessions, s.diff(key, c, next)...)
	}
	stats.Evicted = s.evict(ps.touched)
	s.cool()
	s.compactStrings()
	return out, *stats
}

// pushState is what one Push gathers while it takes in its events. It stays on the stack: the
// maps it makes only when needed, as what goes into the Output takes them to the heap.
type pushState struct {
	events     []ingest.Event // the pushed events
	i          int            // the index of the event being taken in
	stats      Stats
	merged     [][2]string     // identity links that merged two persons, or named one (Output.Links)
	named      []string        // devices that name their key from now on (see seeDevice): their persons are written
	later      []int           // Output.LaterCopies, unsorted
	superseded []Copy          // Output.Superseded
	unnamed    []unnamedCopy   // Output.unnamed
	aliased    [][2]string     // devices and users new to identities.aliasers (Output.Links)
	devices    [][2]string     // devices new to identities.devices, each twice (Output.Links)
	signIns    map[string]bool // devices whose sign-ins changed (nil: none)
	unshared   map[string]bool // of them, those shared before that no longer are (see signOut)
	touched    []string        // customer keys whose sessions are cut again
}

// signedIn marks device's sign-ins changed.
func (ps *pushState) signedIn(device string) {
	if ps.signIns == nil {
		ps.signIns = map[string]bool{}
	}
	ps.signIns[device] = true
}

// touch marks customer key c changed: its sessions are cut again at the end of the push.
func (ps *pushState) touch(key string, c *customer) {
	if !c.dirty {
		c.dirty = true
		ps.touched = append(ps.touched, key)
	}
}

// supersede records that q, a copy customer key c held, was replaced by an earlier copy and is
// no longer c's (the caller took it out of c's points, or replaced it there): its sign-in is
// taken back (its identity links stay, see Output.LaterCopies), the copies of it pushed before in
// this push are not stored, the stored copy is left out of every answer (Output.Superseded), and
// c's sessions are cut again (see Output.LaterCopies). The copy's messageId is a pushed copy's
// when there is one; else (a copy found at a merge, see mergeCopies) only its id is known, and
// the Runner names it from the store before the batch is written (see nameCopies).
func (s *Sessionizer) supersede(ps *pushState, key string, c *customer, q point) {
	s.signOut(ps, key, q)
	pushed := pushedCopies(ps.events[:ps.i], key, q)
	at := time.UnixMicro(q.us).UTC()
	switch e := &ps.events[ps.i]; {
	case TieID(e.MessageID) == q.id:
		ps.superseded = append(ps.superseded, Copy{key, e.MessageID, at})
	case len(pushed) > 0:
		e = &ps.events[pushed[0]]
		ps.superseded = append(ps.superseded, Copy{key, e.MessageID, at})
	default:
		ps.unnamed = append(ps.unnamed, unnamedCopy{key, q.us, q.id})
	}
	ps.later = append(ps.later, pushed...)
	ps.touch(key, c)
}

// minCompactStrings is the size of the string table below which it is never rebuilt.
const minCompactStrings = 1 << 16

// compactStrings rebuilds the string table from the strings the customers held still refer to,
// once it has doubled since the last rebuild (and has at least minCompactStrings). Without it the
// strings of evicted customers stayed forever, and a client sending a new event name or campaign
// with every event grew the table until the process ran out of memory. It walks every point held,
// so its cost, amortized over the strings interned since the last rebuild, is constant.
func (s *Sessionizer) compactStrings() {
	if len(s.strs) < s.compactAt {
		return
	}
	strs, index := make([]string, 0, len(s.strs)/2), make(map[string]uint32, len(s.strs)/2)
	add := func(str string) uint32 {
		j, ok := index[str]
		if !ok {
			j = uint32(len(strs))
			strs = append(strs, str)
			index[str] = j
		}
		return j
	}
	keep := func(i *uint32) { *i = add(s.strs[*i]) }
	for key, data := range s.cold {
		c := s.decodeCold(key, data)
		keepStrings(c, keep)
		s.cold[key] = encodeCustomer(c, add(c.firstChannel))
	}
	for _, c := range chainMaps(s.customers, s.evicting) {
		keepStrings(c, keep)
	}
	s.strs, s.strIndex = strs, index
	s.compactAt = max(2*len(strs), minCompactStrings)
}

// keepStrings applies keep to every string-table index the customer holds.
func keepStrings(c *customer, keep func(*uint32)) {
	for k := range c.points {
		p := &c.points[k]
		keep(&p.touch)
		keep(&p.channel)
		keep(&p.campaign)
	}
	for k := range c.sessions {
		ss := &c.sessions[k]
		keep(&ss.entry)
		keep(&ss.exit)
		keep(&ss.channel)
		keep(&ss.campaign)
		keep(&ss.reason)
		keep(&ss.person)
	}
}

// chainMaps yields the entries of both maps.
func chainMaps(a, b map[string]*customer) iter.Seq2[string, *customer] {
	return func(yield func(string, *customer) bool) {
		for _, m := range []map[string]*customer{a, b} {
			for k, c := range m {
				if !yield(k, c) {
					return
				}
			}
		}
	}
}

// evict drops the customers whose newest event is oldest, a tenth at a time, once more than
// MaxCustomers are held. Their sessions are stored; a Runner restores them if they come back.
// Those the Push changed (touched) are kept aside until the next Push (see holds): the Push's
// events are being stored while the next batch is prepared, and a restore then would read the
// customer without them.
//
// The keys of a person are aged by the newest event among them, and evicted together: a key
// the sessionizer holds is asked for copies of the events of the person's other keys (see
// copyElsewhere), and restored with them when they come back (see toRestore), so a key kept
// while another of its person went would be restored with every batch of the other.
func (s *Sessionizer) evict(touched []string) int {
	if s.Customers() <= s.cfg.MaxCustomers {
		return 0
	}
	type aged struct {
		key    string
		person string // the root of the key's person, "" for a key linked to none
		latest int64
	}
	all := make([]aged, 0, s.Customers())
	for k, c := range s.customers {
		all = append(all, aged{k, "", c.latest})
	}
	for k, data := range s.cold {
		all = append(all, aged{k, "", coldLatest(data)})
	}
	newest := map[string]int64{} // by person
	for i := range all {
		a := &all[i]
		for _, prefix := range [2]string{"u:", "a:"} {
			s.idBuf = append(append(s.idBuf[:0], prefix...), a.key...)
			if _, linked := s.ids.parent[string(s.idBuf)]; linked {
				a.person = s.ids.find(string(s.idBuf))
				newest[a.person] = max(newest[a.person], a.latest)
				break
			}
		}
	}
	for i := range all {
		if all[i].person != "" {
			all[i].latest = newest[all[i].person]
		}
	}
	slices.SortFunc(all, func(a, b aged) int {
		return cmp.Or(cmp.Compare(a.latest, b.latest), strings.Compare(a.person, b.person))
	})
	n := len(all) - s.cfg.MaxCustomers + s.cfg.MaxCustomers/10
	inPush := make(map[string]bool, len(touched))
	for _, k := range touched {
		inPush[k] = true
	}
	s.evicting = map[string]*customer{}
	for _, a := range all[:n] {
		if inPush[a.key] {
			s.evicting[a.key] = s.customers[a.key]
		}
		delete(s.customers, a.key)
		delete(s.cold, a.key)
	}
	return n
}

// held returns the point the customer holds with p's time and id, if any.
func (c *customer) held(p point) (point, bool) {
	i, _ := slices.BinarySearchFunc(c.points[:c.sorted], p.us, func(q point, us int64) int { return cmp.Compare(q.us, us) })
	for ; i < c.sorted && c.points[i].us == p.us; i++ {
		if c.points[i].id == p.id {
			return c.points[i], true
		}
	}
	for _, q := range c.points[c.sorted:] {
		if q.us == p.us && q.id == p.id {
			return q, true
		}
	}
	return point{}, false
}

// idIndexFrom is the number of points from which a customer keeps its points' ids sorted: below
// it, a scan of the points is as fast and costs no memory (most customers have a few events).
const idIndexFrom = 256

// holds reports whether the customer holds an event with id, at any time.
func (c *customer) holds(id uint64) bool {
	if c.ids == nil {
		return slices.ContainsFunc(c.points, func(q point) bool { return q.id == id })
	}
	_, found := slices.BinarySearch(*c.ids, id)
	return found
}

// copyOf returns the index in points of the customer's point with id, which it holds.
func (c *customer) copyOf(id uint64) int {
	i := slices.IndexFunc(c.points, func(q point) bool { return q.id == id })
	if i < 0 {
		panic(fmt.Sprintf("BUG: customer holds id %x but no point has it", id))
	}
	return i
}

// replace puts p, a copy of the event of points[i] (same id), in its place: appended unsorted,
// as add does. The index of ids stays as it is.
func (c *customer) replace(i int, p point) {
	c.points = slices.Delete(c.points, i, i+1)
	if i < c.sorted {
		c.sorted--
	}
	c.points = append(c.points, p)
}

// remove drops points[i], a copy another key's earlier copy replaced.
func (c *customer) remove(i int) {
	id := c.points[i].id
	c.points = slices.Delete(c.points, i, i+1)
	if i < c.sorted {
		c.sorted--
	}
	if c.ids != nil {
		if k, found := slices.BinarySearch(*c.ids, id); found {
			*c.ids = slices.Delete(*c.ids, k, k+1)
		}
	}
}

// pushedCopies returns the indexes of the events of pushed (a push's events so far) that are
// copies of held, a point of customer key that a copy earlier in time has replaced: they were
// to be stored, and must not be now.
func pushedCopies(pushed []ingest.Event, key string, held point) []int {
	var out []int
	for i := range pushed {
		e := &pushed[i]
		if e.Timestamp.UnixMicro() == held.us && e.CustomerKey() == key && TieID(e.MessageID) == held.id {
			out = append(out, i)
		}
	}
	return out
}

// add appends a point the customer does not hold.
func (c *customer) add(p point) {
	c.points = append(c.points, p)
	switch {
	case c.ids != nil:
		i, _ := slices.BinarySearch(*c.ids, p.id)
		*c.ids = slices.Insert(*c.ids, i, p.id)
	case len(c.points) > idIndexFrom:
		c.indexIDs()
	}
}

// indexIDs builds the sorted index of the points' ids (see idIndexFrom).
func (c *customer) indexIDs() {
	ids := make([]uint64, len(c.points))
	for i, q := range c.points {
		ids[i] = q.id
	}
	slices.Sort(ids)
	c.ids = &ids
}

func (c *customer) sort() {
	if c.sorted < len(c.points) {
		slices.SortFunc(c.points, comparePoints)
		c.points = slices.Clip(c.points)
		c.sorted = len(c.points)
	}
}

// comparePoints orders points by time (to the µs: Segment's Python, Go and Java libraries send
// microseconds), equal times in the client's order (Seq), then by id (TieID, ClickHouse's
// cityHash64 of the messageId): the one tie rule, which the store's queries follow too, on the
// same three keys (store's compareScanned; docs/how-it-works.md says why µs).
func comparePoints(a, b point) int {
	return cmp.Or(cmp.Compare(a.us, b.us), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id))
}

// signInsOf records the sign-ins e, point p of customer key c, carries, marking the devices whose
// sign-ins changed: on its device (c) when it carries both ids, and on the device an alias from a
// device's id names (aliasedFrom), another key, whose customer is looked up.
func (s *Sessionizer) signInsOf(ps *pushState, c *customer, e *ingest.Event, p point) {
	if e.UserID != "" && e.AnonymousID != "" {
		device := "a:" + e.AnonymousID
		if s.signIn(device, c, signIn{us: p.us, seq: p.seq, id: p.id, user: "u:" + e.UserID}) {
			ps.signedIn(device)
		}
	}
	if device := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); device != "" {
		user := "u:" + e.UserID
		if s.signIn(device, s.customerOf(device), signIn{us: p.us, seq: p.seq, id: p.id, user: user, aliased: true}) {
			ps.signedIn(device)
		}
		if s.ids.aliasedOn(device, user) {
			ps.aliased = append(ps.aliased, [2]string{device, user})
		}
	}
}

// signIn records the sign-in in on device ("a:" id), whose customer is c (nil when not held),
// and reports whether that changed the device's sign-ins. While one user signs in on a device,
// identities keep only the first and last of their sign-ins, and those of aliases (see
// identities.signedIn); when a second user comes, the first user's others are taken back from
// the device's points that carried a userId, all of them the first user's, so the device's
// sign-ins come out the same in any arrival order.
func (s *Sessionizer) signIn(device string, c *customer, in signIn) bool {
	first := ""
	if list := s.ids.users[device]; len(list) > 0 && !shared(list) {
		first = list[0].user
	}
	changed := s.ids.signedIn(device, in)
	if first != "" && first != in.user && c != nil {
		for _, q := range c.points {
			if q.signedIn() {
				s.ids.signedIn(device, signIn{us: q.us, seq: q.seq, id: q.id, user: first})
			}
		}
	}
	return changed
}

// signOut takes back the sign-ins of q, a point of customer key that an earlier copy superseded
// (see identities.signedOut): on its device, the key, when it carried both ids, and when q is an
// alias from a device's id, on that device, which the pushed copy superseding it names (a copy
// of the same message, see aliasedFrom). It marks a device's sign-ins changed when they did, and
// unshared when it is no longer shared.
func (s *Sessionizer) signOut(ps *pushState, key string, q point) {
	if q.signedIn() {
		s.signOutOf(ps, "a:"+key, q)
	}
	if e := &ps.events[ps.i]; TieID(e.MessageID) == q.id {
		if device := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); device != "" {
			s.signOutOf(ps, device, q)
		}
	}
}

// signOutOf takes back the sign-in of q on device ("a:" id), as signOut.
func (s *Sessionizer) signOutOf(ps *pushState, device string, q point) {
	changed, noLonger := s.ids.signedOut(device, signIn{us: q.us, seq: q.seq, id: q.id})
	if changed {
		ps.signedIn(device)
	}
	if noLonger {
		if ps.unshared == nil {
			ps.unshared = map[string]bool{}
		}
		ps.unshared[device] = true
	}
}

// observe updates the counters an arriving event of customer key c feeds: lateness and the live
// journey (stage entries of its person, in arrival order, orders, revenue and refunds). person
// is the event's (identities.personAt). copied says another key of the person held a later copy
// of it (see copyElsewhere), whose arrival counted the message.
func (s *Sessionizer) observe(key string, c *customer, e *ingest.Event, p point, person string, stats *Stats, copied bool) {
	gap := s.cfg.Gap.Microseconds()
	if len(c.points) > 0 && p.us < c.latest-gap {
		stats.Late++
	}
	if p.us < s.watermark-s.cfg.AllowedLateness.Microseconds() {
		stats.BeyondLateness++
	}
	c.latest = max(c.latest, p.us)
	s.watermark = max(s.watermark, p.us)
	order := e.Type == "track" && (e.Event == "Order Completed" || e.Event == "Order Refunded")
	entered := s.reach(key, c, p, person)
	if (order || entered != 0) && copied {
		return // its first copy was counted: the stages it reaches are reached, uncounted
	}
	s.countEntries(c, entered, stats)
	if text, ok := e.Property(ScoreProperty); ok && e.Type == "track" && !copied {
		score, why, counts := SurveyScore(e.Event, text)
		reached, _ := s.journey(key, c, person)
		if counts && reached == 0 {
			why = ScoreNoStage // as the stages query leaves it out: given in no stage
		}
		switch {
		case why != "":
			stats.IgnoredScores[why]++
		case counts && e.Event == NPSEvent:
			stage := s.jm.Stages[bits.Len64(reached)-1].Name
			stats.NPSAnswers[StageCategory{stage, NPSCategory(score)}]++
		}
	}
	if !order {
		return
	}
	v, why := OrderAmount(e)
	currency, unknown := OrderCurrency(e)
	if currency == CurrencyNone {
		currency = s.cfg.DefaultCurrency
	}
	if why == "" && v != 0 {
		why = unknown
	}
	if e.Event == "Order Completed" {
		stats.Orders[c.firstChannel]++
	} else {
		v = -math.Abs(v) // Order Refunded: whatever its sign, an amount paid back
	}
	switch {
	case why != "":
		stats.IgnoredAmounts[why]++
	case v > 0:
		stats.Revenue[ChannelCurrency{c.firstChannel, currency}] += v
	case v < 0:
		stats.Refunds[ChannelCurrency{c.firstChannel, currency}] -= v
	}
}

// copyElsewhere finds a copy of e (same messageId) that another customer key of e's
// persons holds (the persons of its userId and of its anonymousId, which e may be about to join):
// a server's retry under the userId of a message the client sent from the device, or a copy from
// another device of the person. It returns that key, its customer and the copy's index in its
// points, or a nil customer. The earliest copy is the event, of copies at one time the first to
// arrive (see Output.LaterCopies); a later copy is not stored, as a later copy on its own key is
// not, and as Segment drops a repeated messageId, but its identity links count (see laterCopy).
// The first copy's arrival fed the live counters, which count a message once, as queries do. The keys of those
// persons that the sessionizer no longer held (evicted, or not restored since a restart) a Runner
// restored before the push (see toRestore); without a Runner they are not asked, and both copies
// stay stored (see Output.LaterCopies for the copies it cannot know of).
//
// The person's keys are those of its ids and the shared devices its users signed in on
// (identities.sharedDevices), whose copies DeviceSignIns gives to the person: on a family laptop
// the graph gives the device to its first user, and a server's retry under the second user's
// userId of an order the browser sent while she was signed in found no copy, and was counted
// again (tester 45's F1). For the same reason an anonymous event of a shared device looks through
// the person DeviceSignIns gives it (see personAt), not the device's person in the graph.
//
// A shared device is in the graph its first user's, but its events are the persons' its sign-ins
// give them (DeviceSignIns): a copy held under it is the person's only when they give the copy
// to the person (see givenTo), and the persons looked through are the event's (its userId's, or
// for an anonymous event of a shared device the one its sign-ins give it) and those it may join.
// An event carrying a userId never joins its anonymousId's person when that has another userId
// (only an alias may join two userIds, see identities.link), so that person is not looked
// through. Else the first user's server resending a message whose copy from the device falls
// in a later user's sign-in was kept once, the later user's, and a copy from the device given
// to the later user found the first user's copy (tester 47's F1): one messageId under two
// persons is two events, as queries, which dedupe per person, count it.
func (s *Sessionizer) copyElsewhere(e *ingest.Event, p point) (string, *customer, int) {
	key := e.CustomerKey()
	var roots [3]string // the persons looked through, by the root of their ids
	ids := [3][2]string{{"u:", e.UserID}, {"a:", e.AnonymousID}}
	if e.UserID == "" && e.AnonymousID != "" && len(s.ids.sharedDevices) > 0 {
		s.idBuf = append(append(s.idBuf[:0], "a:"...), e.AnonymousID...)
		if shared(s.ids.users[string(s.idBuf)]) { // the user signed in at p's time
			person := s.ids.personAt("", e.AnonymousID, p.us, p.seq)
			ids[2] = [2]string{person[:2], person[2:]}
		}
	}
	for i, id := range ids {
		if id[1] == "" || i == 1 && ids[2][1] != "" { // a shared device's: its sign-ins' person is ids[2]
			continue
		}
		// Most ids are linked to none (a device never signed in on, a user only ever seen
		// alone): such an id is a person of its own, whose only key is the id. It is told
		// without building the id's string, which every event would otherwise allocate.
		s.idBuf = append(append(s.idBuf[:0], id[0]...), id[1]...)
		if _, linked := s.ids.parent[string(s.idBuf)]; !linked {
			if c, j := s.heldUnder(id[1], key, p); c != nil {
				return id[1], c, j
			}
			if len(s.ids.sharedDevices[string(s.idBuf)]) > 0 {
				user := string(s.idBuf)
				if k, c, j := s.sharedCopy(user, user, key, p); c != nil {
					return k, c, j
				}
			}
			continue
		}
		root := s.ids.find(string(s.idBuf))
		if slices.Contains(roots[:i], root) {
			continue // a person looked through already
		}
		if i == 1 && e.UserID != "" && e.Type != "alias" && s.ids.hasUserID(root) {
			continue // another user's person, which e does not join (roots[0] is e's)
		}
		roots[i] = root
		for _, m := range s.ids.members[root] {
			if c, j := s.heldUnder(m[2:], key, p); c != nil && s.givenTo(m, c, c.points[j], root) {
				return m[2:], c, j
			}
		}
		if len(s.ids.sharedDevices) == 0 {
			continue
		}
		for _, m := range s.ids.members[root] {
			if k, c, j := s.sharedCopy(m, root, key, p); c != nil {
				return k, c, j
			}
		}
	}
	return "", nil, -1
}

// sharedCopy finds a copy of p that a shared device user ("u:" id) signed in on holds
// (identities.sharedDevices), other than under key, and that DeviceSignIns gives to the person
// of ids root: the device, its customer and the copy's index in its points, or a nil customer. A
// copy the device's sign-ins give to another of its users is another person's event, which
// queries keep apart too.
func (s *Sessionizer) sharedCopy(user, root, key string, p point) (string, *customer, int) {
	for _, d := range s.ids.sharedDevices[user] {
		c, j := s.heldUnder(d[2:], key, p)
		if c == nil || c.byUser {
			continue
		}
		if q := c.points[j]; s.ids.find(s.ids.personAt("", d[2:], q.us, q.seq)) == root {
			return d[2:], c, j
		}
	}
	return "", nil, -1
}

// givenTo reports whether q, a point of customer c held under the key of id (an id of the person
// of ids root), is an event of that person: a shared device's (identities.users holds sign-ins of
// several userIds) only when DeviceSignIns gives it to the person, as queries and heldPoints read
// it; any other id's always. It looks up nothing more for an id that is no shared device.
func (s *Sessionizer) givenTo(id string, c *customer, q point, root string) bool {
	if !strings.HasPrefix(id, "a:") || !shared(s.ids.users[id]) {
		return true
	}
	return !c.byUser && s.ids.find(s.ids.personAt("", id[2:], q.us, q.seq)) == root
}

// devicesOfBatch marks as devices (identities.devices) the ids a batch's aliases name as
// previousId (aliasedFrom) that are an anonymousId of an event of the batch, wherever it is in
// the batch: the consumer takes a batch's partitions in an order of its own, so a server's alias
// (keyed by its userId) may come before the device's event the client sent first in the same
// request (tester 21's kiosk: eight aliases and the kiosk's own events in one batch joined four
// users). Only a batch with such aliases is looked at twice.
func (s *Sessionizer) devicesOfBatch(ps *pushState, events []ingest.Event) {
	var named map[string]bool
	for i := range events {
		e := &events[i]
		if d := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); d != "" && !s.ids.devices[d] {
			if named == nil {
				named = map[string]bool{}
			}
			named[d] = true
		}
	}
	if named == nil {
		return
	}
	for i := range events {
		if d := "a:" + events[i].AnonymousID; events[i].AnonymousID != "" && named[d] && s.seeDevice(d) {
			ps.named = append(ps.named, d)
		}
	}
}

// seeDevice records that device ("a:" id), which an alias's previousId names, was seen as an
// event's anonymousId (see identities.devices), and reports whether its person is to be written
// again: an alias read before it was seen linked it, and it names its customer key from now on
// (identities.namesKey), so that its anonymous events stored before, by a consumer that did not
// know the alias, are its user's.
func (s *Sessionizer) seeDevice(device string) bool {
	if s.ids.devices[device] {
		return false
	}
	renamed := !s.ids.namesKey(device)
	s.ids.devices[device] = true
	return renamed
}

// AliasedNonDevices returns the ids ("a:" ids) aliases' previousIds named, read as devices, that
// are not known as devices (see identities.namesKey): without Config.AliasJoinsUsers, their
// keys name no person until they are seen as an event's anonymousId. A caller that rebuilt the
// identity graph from the stored links (a Runner's start, waymark resessionize) looks them up
// in the stored events (History.DeviceLinks) and gives those found to SeenAsDevices: the
// browsing of a device stored by a consumer that did not know the alias is then its user's.
func (s *Sessionizer) AliasedNonDevices() []string {
	var out []string
	for _, d := range slices.Sorted(maps.Keys(s.ids.aliasers)) {
		if !s.ids.namesKey(d) {
			out = append(out, d)
		}
	}
	return out
}

// SeenAsDevices records that devices ("a:" ids) were seen as an event's anonymousId (see
// AliasedNonDevices), and returns the persons to write again: those of the devices that name
// their key from now on.
func (s *Sessionizer) SeenAsDevices(devices []string) []PersonLink {
	var out []PersonLink
	done := map[string]bool{}
	for _, d := range devices {
		if s.seeDevice(d) {
			if root := s.ids.find(d); !done[root] {
				done[root] = true
				out = append(out, s.ids.person(root)...)
			}
		}
	}
	return out
}

// heldAsDevice reports whether the sessionizer holds events under key as a device's: a customer
// keyed by an anonymousId (not customer.byUser), live or restored, hot, cold or evicted by the
// last Push, its events those of this batch before the one being taken in too. It decodes
// nothing: an alias, which asks, costs a map lookup or two.
func (s *Sessionizer) heldAsDevice(key string) bool {
	held, byUser := s.heldKind(key)
	return held && !byUser
}

// heldKind reports whether the sessionizer holds a customer under key (see heldAsDevice), and
// whether it is keyed by a userId (customer.byUser).
func (s *Sessionizer) heldKind(key string) (held, byUser bool) {
	if c := s.customers[key]; c != nil {
		return true, c.byUser
	}
	if c := s.evicting[key]; c != nil {
		return true, c.byUser
	}
	if data, ok := s.cold[key]; ok {
		return true, coldByUser(data)
	}
	return false, false
}

// otherUser reports whether previousID is known as the userId of a person other than userID's:
// linked in the identity graph, or the key of a customer held whose events carry no
// anonymousId (a server's). An alias from it would have joined two persons with userIds.
func (s *Sessionizer) otherUser(previousID, userID string) bool {
	if _, linked := s.ids.parent["u:"+previousID]; linked {
		_, known := s.ids.parent["u:"+userID]
		return !known || s.ids.find("u:"+previousID) != s.ids.find("u:"+userID)
	}
	_, byUser := s.heldKind(previousID)
	return byUser
}

// customer returns the customer held under key, decoded: hot, cold (warmed, see cool), or one the
// last Push changed and evicted (taken back, see holds); nil when the sessionizer holds none.
func (s *Sessionizer) customer(key string) *customer {
	if c := s.customers[key]; c != nil {
		return c
	}
	if c := s.evicting[key]; c != nil {
		s.customers[key] = c
		delete(s.evicting, key)
		return c
	}
	return s.warm(key)
}

// heldUnder returns the customer held under key k, another than the event's own key, when it
// holds a copy of p, and the copy's index in its points; else nil.
func (s *Sessionizer) heldUnder(k, own string, p point) (*customer, int) {
	if k == own {
		return nil, -1
	}
	c := s.customer(k)
	if c == nil || !c.holds(p.id) {
		return nil, -1
	}
	return c, c.copyOf(p.id)
}

// earlierCopy takes in a copy of an event the customer holds at a later time, which replaced
// that point (see Output.LaterCopies): the identity links and the sign-in it carries, and the
// stages its point reaches that the customer had not reached. It is the same message, so it is
// not late, and the live orders, revenue and refunds, counted when its first copy arrived (with
// that copy's amount), are not counted again: counters cannot be taken back.
func (s *Sessionizer) earlierCopy(ps *pushState, key string, c *customer, e *ingest.Event, p point) {
	s.link(ps, key, c, e, p, false)
	s.countEntries(c, s.reach(key, c, p, s.ids.personAt(e.UserID, e.AnonymousID, p.us, p.seq)), &ps.stats)
	s.signInsOf(ps, c, e, p)
}

// laterCopy takes in e, a copy of an event that customer key c holds as q (under key or another
// key of e's persons) at an earlier time, or at q's time and arriving after it with other
// bytes: it is no event (see Output.LaterCopies), but the identity links it carries count, as
// the links of every copy of a message do (see Output.LaterCopies). Its sign-in does not: a
// sign-in is when an event of the user was on the device, and the copy is not stored.
func (s *Sessionizer) laterCopy(ps *pushState, key string, c *customer, e *ingest.Event, q point) {
	s.link(ps, key, c, e, q, true)
}

// link applies the identity links an event e (point p) of customer key c carries, counts the
// stage entries a merge reveals (see enterMerged), and keeps one copy of each event the joined
// persons both held (see mergeCopies). p is left to reach its stages (see reach), unless held:
// then p is the copy of e held, which reached them when it arrived (see laterCopy).
func (s *Sessionizer) link(ps *pushState, key string, c *customer, e *ingest.Event, p point, held bool) {
	stats := &ps.stats
	if device := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); device != "" && !s.ids.devices[device] {
		if s.heldAsDevice(e.PreviousID) { // an alias from a device's id: a sign-in on it (see identities.linksOf)
			if s.seeDevice(device) {
				ps.named = append(ps.named, device)
			}
		} else if !s.ids.aliasJoinsUsers && s.ids.readsAsUser(device, e.PreviousID) && s.otherUser(e.PreviousID, e.UserID) {
			stats.UserIDConflicts++ // an alias of two userIds, which joins no persons (see identities.linksOf)
			s.ids.conflicted[device] = true
		}
	}
	s.countForgedAlias(e.UserID, stats)
	for _, l := range s.ids.linksOf(e.UserID, e.AnonymousID, e.PreviousID, e.Type) {
		stats.IdentityLinks++
		if l.kind == signInLink && s.ids.signedInOwn(l.b) {
			ps.devices = append(ps.devices, [2]string{l.b, l.b})
		}
		result, joined := s.linkIDs(l.a, l.b, l.explicit(), l.kind == aliasDeviceLink)
		switch result {
		case linkMerged:
			if l.kind != aliasDeviceLink || s.ids.devices[l.b] || s.ids.userReadingJoined(l.b) {
				// A previousId read as a device that names no key (namesKey: the alias makes it
				// an aliaser) joins no one's events: no merge to count (tester 39's F2), though
				// the link is kept and stored.
				stats.IdentityMerges++
			}
			ps.merged = append(ps.merged, l.stored())
			root := s.ids.find(l.a)
			s.enterMerged(key, c, p, held, root, stats)
			s.mergeCopies(ps, root, joined)
		case linkAlias:
			// Stored with the merges, so a restart knows every alias that names the person, and
			// its persons written again, in case it renamed them.
			ps.merged = append(ps.merged, l.stored())
		case linkRefused:
			stats.RunawayMerges++
		case linkTwoUserIDs:
			stats.UserIDConflicts++
		}
	}
}

// countForgedAlias counts, in stats.UserIDConflicts, an alias read before userID was known as
// a userId whose previousId is userID and whose userId is another's: an alias of two userIds,
// which joins no persons (see identities.linksOf), counted as one read after userID's events is
// (Sessionizer.link), once per previousId (identities.conflicted). Without it the order of the
// calls, which whoever holds the public write key chooses, decided whether the metric saw a
// forged alias (tester 42's F2). With Config.AliasJoinsUsers such an alias is a join, and
// nothing is counted; a previousId seen as an event's anonymousId is a device, whose aliases are
// sign-ins. Each consumer counts what it reads: the alias and userID's events on two of them
// are counted by neither (the answers are right either way).
func (s *Sessionizer) countForgedAlias(userID string, stats *Stats) {
	if userID == "" || len(s.ids.aliasers) == 0 || s.ids.aliasJoinsUsers {
		return
	}
	// Looked up before device is made: a key built in the index expression is not kept, so it
	// needs no allocation, and most users are no alias's previousId (an event of each userId
	// comes here).
	users := s.ids.aliasers["a:"+userID]
	if len(users) == 0 {
		return
	}
	device := "a:" + userID
	if s.ids.devices[device] || s.ids.conflicted[device] {
		return
	}
	for _, u := range users {
		if u != "u:"+userID {
			stats.UserIDConflicts++
			s.ids.conflicted[device] = true
			return
		}
	}
}

// mergeCopies finds the copies of one event (same messageId) that the keys of two
// persons a merge joined into the person of ids root hold, one under each, and keeps the
// earliest by comparePoints as the event (the copy queries keep, see Output.LaterCopies): the
// others are superseded as an earlier copy arriving later supersedes them (see supersede), so
// every answer counts the event once, with the earliest copy's time and payload, whatever order
// the copies and the link arrived in. joined is how many ids the smaller person had, the last
// of root's members (see identities.link): its keys' points are looked up in the other person's
// keys (customer.holds), so a device joining a user with many events costs a scan of the
// device's few. Keys not held are not asked; a Runner restores the keys of both persons before
// the push that links them (see toRestore). The live counters, which counted both copies when
// they arrived, are not taken back (see Stats.StageEntries).
//
// A shared device's sign-ins (DeviceSignIns) give its anonymous events to the user signed in
// at their time, who may hold a copy of one under another key: no merge joins them, and both
// copies stay stored (see Output.LaterCopies). A copy under a shared device of the merged person
// is one of its copies only when the sign-ins give it to the person (see givenTo): the device's
// first user's phone joining her person, which holds the laptop, leaves both of a messageId's
// copies stored when the laptop's is a later user's (tester 47's F1).
func (s *Sessionizer) mergeCopies(ps *pushState, root string, joined int) {
	type held struct {
		id string // "u:" or "a:" id
		c  *customer
	}
	members := s.ids.members[root]
	var others []held
	for _, m := range members[:len(members)-joined] {
		if c := s.customerOf(m); c != nil && len(c.points) > 0 {
			others = append(others, held{m, c})
		}
	}
	if len(others) == 0 {
		return
	}
	for _, m := range members[len(members)-joined:] {
		c := s.customerOf(m)
		if c == nil {
			continue
		}
		for k := 0; k < len(c.points); k++ {
			q := c.points[k]
			for _, o := range others {
				if !o.c.holds(q.id) {
					continue
				}
				j := o.c.copyOf(q.id)
				r := o.c.points[j]
				if !s.givenTo(m, c, q, root) || !s.givenTo(o.id, o.c, r, root) {
					continue // another person's event (a shared device's)
				}
				ps.stats.Duplicates++
				if comparePoints(q, r) < 0 {
					o.c.remove(j)
					s.supersede(ps, o.id[2:], o.c, r)
					continue
				}
				c.remove(k)
				s.supersede(ps, m[2:], c, q)
				k--
				break
			}
		}
	}
}

// reach marks the stages p, an event of customer key c with person (identities.personAt),
// reaches as reached by its person (in arrival order: a person enters a stage once), and returns
// those the person enters (EnteredStages: not those reached after a further one; see
// Stats.StageEntries). A copy of p held is p, not another event.
func (s *Sessionizer) reach(key string, c *customer, p point, person string) uint64 {
	reached, root := s.journey(key, c, person)
	var stages uint64
	for r := range s.rules {
		if p.rules&(1<<r) == 0 {
			continue
		}
		// Counted only until the stage is entered (it enters once), and only up to nth: a person
		// with a million matching events costs no scan per event.
		if nth := s.rules[r].Needs(); nth > 1 && reached&(1<<s.ruleStage[r]) == 0 && 1+s.matches(key, c, root, r, p.id, nth-1) < nth {
			continue
		}
		stages |= 1 << s.ruleStage[r]
	}
	if stages&^reached != 0 {
		s.setJourney(c, root, reached|stages)
	}
	return EnteredStages(reached, stages)
}

// enterMerged counts the stage entries of the person of ids root that a merge made: the stages
// of nth rules that its held events reach together and that neither part had entered (see
// Stats.StageEntries). p, the event of customer key c carrying the link, is left to reach,
// unless held (the copy held of a later copy carrying the link, see laterCopy): then it is one of
// the person's events. The entries go to c's first-touch channel, or when the link is c's first
// call (a login on a new device), to the first-touch channel of another key of the person.
func (s *Sessionizer) enterMerged(key string, c *customer, p point, held bool, root string, stats *Stats) {
	reached := s.ids.reached[root]
	stages := reached
	for r := range s.rules {
		nth := s.rules[r].Needs()
		if nth <= 1 || stages&(1<<s.ruleStage[r]) != 0 {
			continue
		}
		n := s.matches(key, c, root, r, p.id, nth)
		if held && p.rules&(1<<r) != 0 {
			n++
		}
		if n >= nth {
			stages |= 1 << s.ruleStage[r]
		}
	}
	entered := EnteredStages(reached, stages)
	s.ids.reached[root] = stages
	if entered == 0 {
		return
	}
	channel := c.firstChannel
	for _, m := range s.ids.members[root] {
		if channel != "" {
			break
		}
		if o := s.customerOf(m); o != nil {
			channel = o.firstChannel
		}
	}
	s.countEntriesAs(channel, entered, stats)
}

// matches counts the held events of the person of ids root ("" for customer key c alone) that
// match rule r, other than the event with id except, up to limit.
func (s *Sessionizer) matches(key string, c *customer, root string, r int, except uint64, limit int) int {
	n := 0
	for q := range s.heldPoints(key, c, root, 1<<r) {
		if q.id != except {
			if n++; n >= limit {
				break
			}
		}
	}
	return n
}

// journey returns the stages whose live entries counted person, the person of an event of
// customer key c, and the root of its ids: "" when the person is the key alone (never linked),
// whose stages c keeps.
func (s *Sessionizer) journey(key string, c *customer, person string) (reached uint64, root string) {
	if _, linked := s.ids.parent[person]; !linked && person[2:] == key {
		return c.reached, ""
	}
	root = s.ids.find(person) // a linked id's root, or lostUser's own
	return s.ids.reached[root], root
}

// setJourney records the stages whose live entries counted the person of root (see journey).
func (s *Sessionizer) setJourney(c *customer, root string, reached uint64) {
	if root == "" {
		c.reached = reached
	} else {
		s.ids.reached[root] = reached
	}
}

// linkIDs links two ids (see identities.link). An id linked for the first time was a person of
// its own, whose entered stages its customer kept: they go with it into the identity graph.
func (s *Sessionizer) linkIDs(a, b string, explicit, aliased bool) (result linkResult, joined int) {
	sizes := [2]int{1, 1} // the ids of a's and b's persons
	for i, id := range [2]string{a, b} {
		if _, linked := s.ids.parent[id]; linked {
			sizes[i] = len(s.ids.members[s.ids.find(id)])
			continue
		}
		if c := s.customerOf(id); c != nil && c.reached != 0 {
			s.ids.reached[id] = c.reached
			c.reached = 0
		}
	}
	return s.ids.link(a, b, explicit, aliased), min(sizes[0], sizes[1])
}

// customerOf returns the customer held under id's key ("u:" a userId's, "a:" a device's), nil
// when none is held (see customer), or the key's customer is of the other kind.
func (s *Sessionizer) customerOf(id string) *customer {
	c := s.customer(id[2:])
	if c == nil || c.byUser != strings.HasPrefix(id, "u:") {
		return nil
	}
	return c
}

// heldPoints yields the points the sessionizer holds of the person of ids root ("" for customer
// key c alone) that match one of rules (bits by rule index): those of the customer keys of its
// ids, of the shared devices its users signed in on, and of key, the key of the event being
// counted; of a key whose events belong to several persons (a shared device), those
// DeviceSignIns gives to it, which is looked up for matching points only. Customers not held
// (evicted, not restored since a restart) are not read.
func (s *Sessionizer) heldPoints(key string, c *customer, root string, rules uint64) iter.Seq[point] {
	return func(yield func(point) bool) {
		if root == "" {
			for _, q := range c.points {
				if q.rules&rules != 0 && !yield(q) {
					return
				}
			}
			return
		}
		own := "a:" + key
		if c.byUser {
			own = "u:" + key
		}
		ids := append([]string{own}, s.ids.members[root]...)
		for _, m := range s.ids.members[root] {
			ids = append(ids, s.ids.sharedDevices[m]...)
		}
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			kc := c
			if id != own {
				if kc = s.customerOf(id); kc == nil {
					continue
				}
			}
			whole, split := s.keyPerson(id)
			if !split && whole != root {
				continue
			}
			for _, q := range kc.points {
				if q.rules&rules == 0 || split && s.ids.find(s.ids.personAt("", id[2:], q.us, q.seq)) != root {
					continue
				}
				if !yield(q) {
					return
				}
			}
		}
	}
}

// keyPerson returns the root of the person whose events are those of the customer key of id (a
// "u:" or "a:" id), "" when id was never linked; split is true instead when the key is a device
// several users signed in on, whose events are the person's DeviceSignIns gives each.
func (s *Sessionizer) keyPerson(id string) (root string, split bool) {
	if _, linked := s.ids.parent[id]; !linked {
		return "", false
	}
	if strings.HasPrefix(id, "a:") && shared(s.ids.users[id]) {
		return "", true
	}
	return s.ids.find(id), false
}

// countEntries counts the customer's entries into stages (bits by stage index), by its first
// channel.
func (s *Sessionizer) countEntries(c *customer, stages uint64, stats *Stats) {
	s.countEntriesAs(c.firstChannel, stages, stats)
}

// countEntriesAs counts entries into stages (bits by stage index) by channel.
func (s *Sessionizer) countEntriesAs(channel string, stages uint64, stats *Stats) {
	for i, st := range s.jm.Stages {
		if stages&(1<<i) != 0 {
			stats.StageEntries[StageChannel{st.Name, channel}]++
		}
	}
}

// MaxOrderAmount bounds the amount of one order (or refund) that live metrics count: a larger one
// is a broken integration or an attack, and one such value would swamp every revenue graph (two of
// 1e308 overflow a counter to +Inf). Waymark's own rule; it leaves sums far inside the range where
// float64 holds whole numbers exactly (2^53).
const MaxOrderAmount = 1e12

// Why an order's amount is left out of the live revenue and refund metrics.
const (
	AmountNotANumber = "not_a_number" // not a JSON number or numeric string, e.g. "12 EUR", true, [5] ({} and null are no value: no amount)
	AmountNotFinite  = "not_finite"   // NaN or ±Infinity (as strings), or beyond float64 (1e999)
	AmountOutOfRange = "out_of_range" // larger in magnitude than MaxOrderAmount
	// AmountUnknownCurrency: properties.currency names no ISO 4217 currency ("US$", "dollars",
	// 978): the amount cannot be added to any other.
	AmountUnknownCurrency = "unknown_currency"
)

// CurrencyNone is the currency OrderCurrency gives an amount whose event names none
// (properties.currency absent, null or blank), which the sessionizer counts in
// Config.DefaultCurrency; as that, it keeps such amounts in a series of their own.
const CurrencyNone = "none"

// OrderCurrency reads the currency of an order's amount: properties.currency (Segment's
// e-commerce spec: "Currency code associated with the transaction"), as its ISO 4217 code in
// capitals ("eur" is EUR), recognized by golang.org/x/text/currency's table (about 300 codes, so
// the metrics' currency label stays bounded); CurrencyNone when the event names none. A value
// that is no ISO 4217 code gives AmountUnknownCurrency: live metrics sum amounts per currency,
// and amounts in an unknown one could only be added to amounts in another (the live revenue
// counted 10,000 JPY and 100 USD as 10,100, tester 19's T4).
func OrderCurrency(e *ingest.Event) (code, ignored string) {
	v, ok := e.Property("currency")
	if v = strings.TrimSpace(v); !ok || v == "" {
		return CurrencyNone, ""
	}
	u, err := currency.ParseISO(v)
	if err != nil {
		return "", AmountUnknownCurrency
	}
	return u.String(), ""
}

// OrderAmount reads an Order Completed (or Order Refunded) event's amount: properties.revenue,
// else properties.total (Segment's e-commerce spec names both), the first of them that is set. A
// property is unset when absent, null, {} or "": an empty string is no value (docs/values.md), as
// form serialisers and PHP or Java backends send an unset field, so "revenue":"" with a total is
// that total, as "revenue":null is (tester 33's F6). A negative amount of Order Completed is a
// refund. It returns 0 and "" when neither is set, and 0 and a reason (AmountNotANumber,
// AmountNotFinite, AmountOutOfRange) when the value cannot be counted; then the amount stays out of
// the metrics, and the event is stored like any other.
func OrderAmount(e *ingest.Event) (amount float64, ignored string) {
	for _, name := range []string{"revenue", "total"} {
		v, ok := e.Property(name)
		if !ok || v == "" {
			continue
		}
		f, number := ParseNumber(v)
		switch {
		case math.IsInf(f, 0) || !number && notFinite(v):
			return 0, AmountNotFinite
		case !number:
			return 0, AmountNotANumber
		case exceedsOrderAmount(v):
			return 0, AmountOutOfRange
		}
		return f, ""
	}
	return 0, ""
}

// exceedsOrderAmount reports whether the amount v, a number (ParseNumber), is larger in magnitude
// than MaxOrderAmount as written, compared exactly as a step filter compares it: an amount of
// 1000000000000.0000000000001 exceeds it, though the float64 nearest it does not.
func exceedsOrderAmount(v string) bool {
	d, _ := ParseDecimal(v)
	return d.Abs().Compare(decimalOf(MaxOrderAmount)) > 0
}

// notFinite reports whether v, no number (ParseNumber), is a text that names an infinity or NaN
// ("Infinity", "-inf", "NaN"), which a client sends for an amount its arithmetic broke: such an
// amount is counted as not finite rather than as no number.
func notFinite(v string) bool {
	f, err := strconv.ParseFloat(v, 64)
	return err == nil && (math.IsNaN(f) || math.IsInf(f, 0))
}

// Forget drops every customer and identity link the sessionizer holds, as a restart would; only
// the version counter stays, so versions keep rising. A Runner calls it when a panic may have left
// a batch half absorbed, and restores customers from the store as they come back.
func (s *Sessionizer) Forget() {
	s.ForgetCustomers()
	s.ids = newIdentities(s.cfg.MaxIDsPerPerson, s.cfg.AliasJoinsUsers)
}

// ForgetCustomers drops every customer the sessionizer holds and keeps its identity graph and
// version counter: a caller that restores stored customers part by part (waymark resessionize)
// holds one part at a time, every part's persons named by the one graph.
func (s *Sessionizer) ForgetCustomers() {
	s.customers, s.cold = map[string]*customer{}, map[string][]byte{}
	s.watermark = 0
	s.restored, s.resigned, s.evicting = nil, nil, nil
	s.strs, s.strIndex = nil, map[string]uint32{}
}

// OpenSessions counts customers whose last session may still grow: their newest event is within
// the gap of the newest event overall.
func (s *Sessionizer) OpenSessions() int {
	n, from := 0, s.watermark-s.cfg.Gap.Microseconds()
	for _, c := range s.customers {
		if c.latest >= from {
			n++
		}
	}
	for _, data := range s.cold {
		if coldLatest(data) >= from {
			n++
		}
	}
	return n
}

// RestoreLinks replays stored identity links (pairs of "u:"/"a:" ids, see Output.Links) into
// the identity graph, without emitting anything: the persons they make are already stored. Each
// person is named as it was live, whatever order the links come in (identities.personName).
// Call it before restoring customers (Restore, RestoreHistory): a person whose customers are
// restored apart (waymark resessionize's chunks) is then one person in each.
func (s *Sessionizer) RestoreLinks(links [][2]string) {
	for _, l := range replayOrder(links) {
		s.storedLink(l)
	}
}

// storedLink replays one stored identity link (see Output.Links for the kinds), and reports what
// it did. Only an alias of two userIds is explicit (it joins two persons that have userIds, as
// it did live), whatever Config.AliasJoinsUsers says now: that flag decides how an alias is read
// (only with it on is one stored so, or by a build from before it), and a join it made stays, as
// the events were stored under the joined person (Mixpanel's and PostHog's merges are not undone
// either); a link with a device replays as the sign-in it was, so two users never become
// one person through a device, whichever consumers linked them (each consumer links the keys of
// its partitions: a device's, and the users whose server aliases from its id are keyed by their
// userId). A device signed in on by its own events is marked so first (replayOrder): an alias
// from its id is then no alias of two userIds (see identities.linksOf), and replays as its
// sign-in on the device alone. The device's own sign-ins replay before aliases' from its id, so
// the device joins its own signed-in user's person, whichever consumer read an alias first. A
// user's alias from a device's id is listed as signed in on it (identities.aliasers):
// toRestore and RestoreKeys restore the user's key, which holds that alias, with the device's.
func (s *Sessionizer) storedLink(l [2]string) linkResult {
	var r linkResult
	switch storedKind(l) {
	case storedDevice:
		s.ids.signedInOwn(l[0])
		return linkKnown
	case storedUserAlias:
		if s.ids.devices["a:"+l[1][2:]] {
			return linkKnown // its sign-in on the device is stored too, device first
		}
		r, _ = s.linkIDs(l[0], l[1], true, false)
	case storedSignIn:
		r, _ = s.linkIDs(l[0], l[1], false, false)
	case storedDeviceAlias:
		s.ids.aliasedOn(l[0], l[1])
		r, _ = s.linkIDs(l[1], l[0], false, true)
	}
	return r
}

// The kinds of stored links (see Output.Links), in the order they are replayed (replayOrder).
const (
	storedDevice      = iota // (device, device): signed in on by its own events
	storedUserAlias          // (userId, userId): an alias of two userIds
	storedSignIn             // (userId, device): a sign-in on the device by its own event
	storedDeviceAlias        // (device, userId): an alias from the device's id
)

// storedKind returns the kind of the stored link l (see Output.Links).
func storedKind(l [2]string) int {
	deviceFirst, deviceSecond := strings.HasPrefix(l[0], "a:"), strings.HasPrefix(l[1], "a:")
	switch {
	case deviceFirst && deviceSecond:
		return storedDevice
	case deviceFirst:
		return storedDeviceAlias
	case deviceSecond:
		return storedSignIn
	}
	return storedUserAlias
}

// replayOrder returns stored links in the order they are replayed (storedLink): by kind, each
// kind in the order given.
func replayOrder(links [][2]string) [][2]string {
	out := slices.Clone(links)
	slices.SortStableFunc(out, func(a, b [2]string) int { return cmp.Compare(storedKind(a), storedKind(b)) })
	return out
}

// RestoreSharedDevices records, of the devices several users signed in on as their stored
// sign-ins say (DeviceSignIns; From and Seqs are not read), which users signed in on them
// (identities.sharedDevices): an identity link joins a device to one user, so after a restart the
// other users' sign-ins are known only from the device's events, and a copy of a message under
// such a user's key would not bring back the device holding the first copy (see toRestore and
// copyElsewhere). Who was signed in when is still read from the device's events when it is
// restored.
func (s *Sessionizer) RestoreSharedDevices(devices []DeviceSignIns) {
	for _, d := range devices {
		users := slices.DeleteFunc(slices.Clone(d.Users), func(u string) bool { return strings.HasPrefix(u, ingest.Internal) })
		if slices.Sort(users); len(slices.Compact(users)) < 2 {
			continue
		}
		for _, u := range users {
			s.ids.shareDevice("u:"+u, "a:"+d.Device)
		}
	}
}

// RestoreKeys returns keys and, after them, the keys to restore with them: those of the users
// whose aliases from the id of a device among keys signed them in on it (see toRestore), each
// once. A caller that restores customers part by part (waymark resessionize) restores a part's
// RestoreKeys, so a device's sign-ins are whole whichever part holds the alias.
func (s *Sessionizer) RestoreKeys(keys []string) []string {
	out := slices.Clone(keys)
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		seen[k] = true
	}
	for _, k := range keys {
		for _, u := range s.ids.aliasers["a:"+k] {
			if !seen[u[2:]] {
				seen[u[2:]] = true
				out = append(out, u[2:])
			}
		}
	}
	return out
}

// Persons returns the person of every id the identity graph links to another, one PersonLink
// per customer key of each person (see identities.person), persons in the order of their roots.
// A Runner writes them after it restores the stored links (see Runner.restore): an override
// stored by a consumer that did not know every link of its person (another partition's alias,
// see Runner.learn) is written again as the links name the person. An id whose every link was
// refused is a person of its own, which no override was written for.
func (s *Sessionizer) Persons() []PersonLink {
	var out []PersonLink
	for _, root := range slices.Sorted(maps.Keys(s.ids.members)) {
		if len(s.ids.members[root]) > 1 {
			out = append(out, s.ids.person(root)...)
		}
	}
	return out
}

// PersonsOf returns the persons of the customer keys (userIds or anonymousIds) as Persons does,
// each person once: waymark resessionize writes them for the customers it rebuilds.
func (s *Sessionizer) PersonsOf(keys []string) []PersonLink {
	var out []PersonLink
	done := map[string]bool{}
	for _, key := range keys {
		for _, id := range [2]string{"u:" + key, "a:" + key} {
			if _, linked := s.ids.parent[id]; !linked {
				continue
			}
			if root := s.ids.find(id); !done[root] {
				done[root] = true
				out = append(out, s.ids.person(root)...)
			}
		}
	}
	return out
}

// SignInsOf returns the sign-ins of the devices among keys (anonymousIds) that several users
// signed in on (see DeviceSignIns): waymark resessionize writes them for the customers it
// rebuilds, which it restores with the keys of the users aliasing from their ids (RestoreKeys),
// so each is whole, whichever consumers wrote it live. A device not among keys is left as
// stored: the aliases restored with it give it but part of its sign-ins.
func (s *Sessionizer) SignInsOf(keys []string) []DeviceSignIns {
	var out []DeviceSignIns
	for _, key := range keys {
		if d, ok := s.ids.sharedSignIns("a:" + key); ok {
			out = append(out, d)
		}
	}
	return out
}

// personIDs returns every id ("u:"/"a:" prefixed) of the persons of ids, ids not linked as
// themselves, each once.
func (s *Sessionizer) personIDs(ids []string) []string {
	var out []string
	seen, persons := map[string]bool{}, map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range ids {
		if _, linked := s.ids.parent[id]; !linked {
			add(id)
			continue
		}
		if root := s.ids.find(id); !persons[root] {
			persons[root] = true
			for _, m := range s.ids.members[root] {
				add(m)
			}
		}
	}
	return out
}

// Learn adds stored identity links (pairs of "u:"/"a:" ids, as RestoreLinks takes them) to the
// identity graph: links other consumers stored, of the partitions this one does not read (see
// Runner.learn). It returns the persons they merged or renamed, each with every id (see
// identities.person), and a version above every earlier one to write them with; none when the
// graph knew them all. As in RestoreLinks nothing else is done for a merge: copies under keys of
// both persons and the live stage entries are left as they are (see Output.LaterCopies and
// Stats.StageEntries on what a consumer cannot know of another's partitions).
func (s *Sessionizer) Learn(now time.Time, links [][2]string) ([]PersonLink, uint64) {
	var changed []string
	for _, l := range replayOrder(links) {
		if r := s.storedLink(l); r == linkMerged || r == linkAlias {
			changed = append(changed, l[0])
		}
	}
	if len(changed) == 0 {
		return nil, 0
	}
	var out []PersonLink
	done := map[string]bool{}
	for _, id := range changed {
		if root := s.ids.find(id); !done[root] {
			done[root] = true
			out = append(out, s.ids.person(root)...)
		}
	}
	s.version = max(s.version+1, uint64(now.UnixNano()))
	return out, s.version
}

// Known reports whether the sessionizer holds state for a customer.
func (s *Sessionizer) Known(key string) bool {
	_, hot := s.customers[key]
	_, cold := s.cold[key]
	return hot || cold
}

// holds reports whether the sessionizer holds a customer, or will take it back: one the last
// Push changed and evicted is taken back by the next Push rather than restored, as its events
// may not be stored yet.
func (s *Sessionizer) holds(key string) bool {
	_, evicting := s.evicting[key]
	return s.Known(key) || evicting
}

// toRestore returns the customer keys a Runner restores before it pushes events, each once, the
// events' own keys first: those the sessionizer does not hold (see holds) of the events' keys and
// of the other keys of their persons, which copyElsewhere looks through for a copy of an event (a
// server's retry under the userId of a message a device sent, a copy from the person's other
// device). Those persons are the persons of each event's userId and anonymousId, and of an alias's
// previousId: the push may join them all. So after a restart, a rebalance or an eviction of the
// key that holds the first copy, a later copy under another key of the person is still found.
// With a device's key go the keys of the users whose aliases from its id signed them in on it
// (identities.aliasers): those sign-ins are under the users' keys, and without them the device
// would give its anonymous events to another user. With a user's go the shared devices it signed
// in on (identities.sharedDevices), and an anonymous event of a shared device brings the person
// its sign-ins give it: copyElsewhere looks through them too. After a restart those are known
// once the device's events are restored (its sign-ins are in them, not in the identity links).
//
// The cost is bounded by the identity graph's cap: a person has at most 2 × MaxIDsPerPerson ids, so
// an event adds at most that many keys, once per person a batch. Most keys of a person are held
// whenever one is (evict ages a person's keys together), and a key without stored events costs
// the store's filter of stored keys a lookup (see store.History).
func (s *Sessionizer) toRestore(events []ingest.Event) []string {
	var keys []string
	seen := map[string]bool{}
	var add func(k string)
	add = func(k string) {
		if !seen[k] {
			seen[k] = true
			if !s.holds(k) {
				keys = append(keys, k)
			}
			for _, u := range s.ids.aliasers["a:"+k] { // their aliases sign them in on the device k
				add(u[2:])
			}
		}
	}
	for i := range events {
		add(events[i].CustomerKey())
	}
	persons := map[string]bool{} // by root
	for i := range events {
		e := &events[i]
		ids := [5][2]string{{"u:", e.UserID}, {"a:", e.AnonymousID}}
		if e.Type == "alias" {
			ids[2], ids[3] = [2]string{"u:", e.PreviousID}, [2]string{"a:", e.PreviousID}
		}
		if e.UserID == "" && e.AnonymousID != "" && len(s.ids.sharedDevices) > 0 {
			s.idBuf = append(append(s.idBuf[:0], "a:"...), e.AnonymousID...)
			if shared(s.ids.users[string(s.idBuf)]) { // the person its sign-ins give it (see copyElsewhere)
				person := s.ids.personAt("", e.AnonymousID, e.Timestamp.UnixMicro(), e.Seq)
				ids[4] = [2]string{person[:2], person[2:]}
			}
		}
		for _, id := range ids {
			if id[1] == "" {
				continue
			}
			s.idBuf = append(append(s.idBuf[:0], id[0]...), id[1]...)
			if _, linked := s.ids.parent[string(s.idBuf)]; !linked {
				add(id[1]) // a person of its own, whose only key is the id
				for _, d := range s.ids.sharedDevices[string(s.idBuf)] {
					add(d[2:]) // and the shared devices it signed in on (see copyElsewhere)
				}
				continue
			}
			if root := s.ids.find(string(s.idBuf)); !persons[root] {
				persons[root] = true
				for _, m := range s.ids.members[root] {
					add(m[2:])
				}
				for _, m := range s.ids.members[root] {
					for _, d := range s.ids.sharedDevices[m] {
						add(d[2:])
					}
				}
			}
		}
	}
	return keys
}

// sharedAmong reports whether keys name a device several users signed in on, as the sign-ins
// the sessionizer holds say.
func (s *Sessionizer) sharedAmong(keys []string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return shared(s.ids.users["a:"+k]) })
}

// Restore gives the sessionizer a customer's stored history: every stored event and the live
// sessions as last stored. Of the stored copies of an event at other times (both are stored
// until ClickHouse merges them) it keeps the earliest, as Push does (see Output.LaterCopies). The next Push recomputes the customer's sessions and emits only what
// differs from the stored ones (e.g. sessions a crash kept from being stored). Each point's
// payload hash is taken from the stored bytes (Raw), so a copy at the time of a stored one is
// told from the same message delivered again as it was before the restart.
func (s *Sessionizer) Restore(key string, events []ingest.Event, sessions []Session) {
	c := &customer{dirty: true, byUser: len(events) > 0 && events[0].AnonymousID == ""}
	// The identities first: they decide the events' persons.
	s.restoreSignIns(events)
	for i := range events {
		e := &events[i]
		for _, l := range s.ids.linksOf(e.UserID, e.AnonymousID, e.PreviousID, e.Type) {
			if l.kind == signInLink {
				s.ids.signedInOwn(l.b)
			}
			if l.kind == aliasUserLink {
				// Made live only when previousId was not known as a device then (see
				// identities.linksOf), which a restored alias cannot tell: the stored links hold
				// it if it was (Output.Links), replayed before (RestoreLinks). Made again here, a
				// device's second aliaser's alias, read as a sign-in live, would join the first.
				continue
			}
			s.linkIDs(l.a, l.b, l.explicit(), l.kind == aliasDeviceLink)
		}
	}
	for i := range events {
		e := &events[i]
		p := s.newPoint(e)
		if !c.holds(p.id) {
			c.add(p)
		} else if j := c.copyOf(p.id); comparePoints(p, c.points[j]) < 0 {
			// Copies at other times are all stored until ClickHouse merges them: the earliest
			// is the event, as in Push (see Output.LaterCopies).
			c.replace(j, p)
		}
	}
	c.sort()
	if len(c.points) > 0 {
		c.latest = c.points[len(c.points)-1].us
		if i := slices.IndexFunc(c.points, func(p point) bool { return !s.isIdentity(p) }); i >= 0 {
			c.firstChannel = s.strs[c.points[i].channel]
		}
	}
	s.restoreJourney(key, c)
	for _, ss := range sessions {
		c.sessions = append(c.sessions, s.store(ss))
	}
	// In start order (time, then Seq, as comparePoints orders their first points); of sessions
	// starting in one microsecond with one Seq (rows stored before StartSeq), the one ending first
	// is first.
	slices.SortStableFunc(c.sessions, func(a, b storedSession) int {
		return cmp.Or(cmp.Compare(a.startUs, b.startUs), cmp.Compare(a.startSeq, b.startSeq), cmp.Compare(a.endUs, b.endUs))
	})
	s.watermark = max(s.watermark, c.latest)
	s.customers[key] = c
	delete(s.cold, key)
	s.restored = append(s.restored, key)
}

// restoreSignIns records the sign-ins stored events carry (see signInsOf): on their device when
// they carry both ids, and on the device an alias from a device's id names (a key restored
// apart, see aliasedFrom). The sign-ins of one event of each user go first, so that a device
// several users signed in on keeps all of theirs (see signIn).
//
// The devices whose sign-ins that changed are listed in resigned: the next Push writes those
// shared then (Output.SignIns), as a restore may be the first this sessionizer learns of a
// device's second user (an aliaser's key restored with the device's, see toRestore), which no
// pushed event changes then.
func (s *Sessionizer) restoreSignIns(events []ingest.Event) {
	resign := func(device string, changed bool) {
		if changed {
			if s.resigned == nil {
				s.resigned = map[string]bool{}
			}
			s.resigned[device] = true
		}
	}
	firstOf := map[string]bool{}
	for all := range 2 {
		for i := range events {
			if e := &events[i]; e.UserID != "" && e.AnonymousID != "" && (all == 1 || !firstOf[e.UserID]) {
				firstOf[e.UserID] = true
				device := "a:" + e.AnonymousID
				resign(device, s.ids.signedIn(device, signIn{us: e.Timestamp.UnixMicro(), seq: e.Seq, id: TieID(e.MessageID), user: "u:" + e.UserID}))
			}
		}
	}
	for i := range events {
		e := &events[i]
		if device := aliasedFrom(e.UserID, e.AnonymousID, e.PreviousID, e.Type); device != "" {
			resign(device, s.signIn(device, s.customerOf(device), signIn{us: e.Timestamp.UnixMicro(), seq: e.Seq, id: TieID(e.MessageID), user: "u:" + e.UserID, aliased: true}))
			s.ids.aliasedOn(device, "u:"+e.UserID)
		}
	}
	s.ids.takeLost() // counted when they arrived (Stats.SignInsLost), not each time restored
}

// missingSignIns returns the devices ("a:" ids) whose sign-ins a Runner completes from the store
// and writes again after it stored a batch (see Runner.learn), and the customer keys whose
// stored events hold what is missing here. A device's sign-ins are on keys of two kinds: its own
// events (identify, any event with both ids), on its partition, and its users' aliases from its
// id, a server's keyed by the userId, often on another consumer's partition (tester 42's F6); a
// link of such an alias learned from the store says who, not when. So several consumers may
// write a device's sign-ins, each with what it holds: the device's consumer, and those that read
// an alias from its id (with the device's key restored, as it was stored then). Of the devices
// whose sign-ins the batch wrote (written), those users aliased from (identities.aliasers, which
// the links read after the store complete) are written again: other consumers may have written
// them. Of aliased, the devices of the aliases from a device's id among the links read after the
// store, those several users are known on whose aliasers gave them no sign-in here are written
// too. Each one's key is read again unless owned says the batch held events of it (then this
// sessionizer is the device's consumer, and holds them all), and its aliasers' keys when their
// alias's sign-in is not here.
func (s *Sessionizer) missingSignIns(aliased, written []string, owned func(key string) bool) (devices, keys []string) {
	seen, loaded := map[string]bool{}, map[string]bool{}
	load := func(key string) {
		if !loaded[key] {
			loaded[key] = true
			keys = append(keys, key)
		}
	}
	for i, d := range slices.Concat(written, aliased) {
		if seen[d] || len(s.ids.aliasers[d]) == 0 {
			continue
		}
		seen[d] = true
		users, signedIn := map[string]bool{}, map[string]bool{} // every user known on d; those whose alias's sign-in is here
		for _, in := range s.ids.users[d] {
			users[in.user] = true
			if in.aliased {
				signedIn[in.user] = true
			}
		}
		var missing []string
		for _, u := range s.ids.aliasers[d] {
			users[u] = true
			if !signedIn[u] {
				missing = append(missing, u[2:])
			}
		}
		if i >= len(written) && (len(missing) == 0 || len(users) < 2) {
			continue // every alias's sign-in is here, or the device is one user's
		}
		devices = append(devices, d)
		if !owned(d[2:]) {
			load(d[2:])
		}
		for _, k := range missing {
			load(k)
		}
	}
	return devices, keys
}

// learnSignIns records the sign-ins the stored events of the keys missingSignIns returned carry
// (without holding those customers: they are other consumers'), and returns the sign-ins of the
// devices that are shared, with a version above every earlier one to write them with. Taken
// after the read, it orders the consumers' writes of a device's sign-ins as their reads: the
// last to read the store after its store, which read what the others stored, writes last. So a
// consumer that learned another's alias from a device's id (a server's, keyed by its userId)
// writes the device's sign-ins with every user's, as one consumer does, whichever of the aliases
// it read.
func (s *Sessionizer) learnSignIns(now time.Time, devices []string, events []ingest.Event) ([]DeviceSignIns, uint64) {
	s.restoreSignIns(events)
	var out []DeviceSignIns
	for _, d := range devices {
		if after, ok := s.ids.sharedSignIns(d); ok {
			out = append(out, after)
			delete(s.resigned, d) // written now
		}
	}
	if len(out) == 0 {
		return nil, 0
	}
	s.version = max(s.version+1, uint64(now.UnixNano()))
	return out, s.version
}

// restoreJourney records the stages a restored customer key's events reach as entered by their
// persons (see Stats.StageEntries): every stored event arrived before. A device several users
// signed in on gives each of them its events DeviceSignIns gives them.
func (s *Sessionizer) restoreJourney(key string, c *customer) {
	id := "a:" + key
	if c.byUser {
		id = "u:" + key
	}
	whole, split := s.keyPerson(id)
	counts := map[string][]int{} // per person's root: the points matching each rule
	for _, q := range c.points {
		root := whole
		if split {
			root = s.ids.find(s.ids.personAt("", key, q.us, q.seq))
		}
		n := counts[root]
		if n == nil {
			n = make([]int, len(s.rules))
			counts[root] = n
		}
		for r := range s.rules {
			if q.rules&(1<<r) != 0 {
				n[r]++
			}
		}
	}
	for root, n := range counts {
		reached := c.reached
		if root != "" {
			reached = s.ids.reached[root]
		}
		for r, count := range n {
			if count >= s.rules[r].Needs() {
				reached |= 1 << s.ruleStage[r]
			}
		}
		s.setJourney(c, root, reached)
	}
}

// RestoreHistory restores every customer of keys that has stored events or sessions, from one
// load of history for all of them, and returns how many it restored.
func (s *Sessionizer) RestoreHistory(keys []string, events []ingest.Event, sessions []Session) int {
	byKey := map[string][]ingest.Event{}
	for _, e := range events {
		byKey[e.CustomerKey()] = append(byKey[e.CustomerKey()], e)
	}
	sessByKey := map[string][]Session{}
	for _, ss := range sessions {
		sessByKey[ss.CustomerKey] = append(sessByKey[ss.CustomerKey], ss)
	}
	n := 0
	for _, k := range keys {
		if len(byKey[k]) > 0 || len(sessByKey[k]) > 0 {
			s.Restore(k, byKey[k], sessByKey[k])
			n++
		}
	}
	return n
}

func (s *Sessionizer) stageIndex(name string) int {
	for i, st := range s.jm.Stages {
		if st.Name == name {
			return i
		}
	}
	return -1
}

// Customers returns how many customers the sessionizer holds state for.
func (s *Sessionizer) Customers() int { return len(s.customers) + len(s.cold) }

func (s *Sessionizer) matchRules(e *ingest.Event, channel string) uint64 {
	var mask uint64
	for i := range s.rules {
		if s.rules[i].Matches(e, channel) {
			mask |= 1 << i
		}
	}
	return mask
}

// cut splits one customer's sorted points into sessions. Identity calls are left out: they are
// not touchpoints, so they neither start, end nor extend a session. A session's person is the
// person of its last touchpoint as known now (see identities.personAt).
func (s *Sessionizer) cut(key string, c *customer) []Session {
	points := c.points
	if slices.ContainsFunc(points, s.isIdentity) {
		points = slices.DeleteFunc(slices.Clone(points), s.isIdentity)
	}
	person := func(p point) string {
		if c.byUser {
			return storedPerson(s.ids.personOf("u:" + key))
		}
		return storedPerson(s.ids.personAt("", key, p.us, p.seq))
	}
	gap, maxDur := s.cfg.Gap.Microseconds(), s.cfg.MaxDuration.Microseconds()
	// counts is, per person, their events so far matching each rule: a rule that needs the nth
	// matching event counts one person's events, not the device's, as the queries do (bob's
	// first order on alice's device is not her second). Persons are looked up only then.
	counts := map[string][]int{}
	var sessions []Session
	var stages uint64
	start := 0
	closeAt := func(end int, reason string) {
		first, last := points[start], points[end-1]
		startMs, nth := first.us/1000, int64(0)
		if n := len(sessions); n > 0 && sessions[n-1].Start.UnixMilli() == startMs {
			nth = sessionNth(sessions, n-1) + 1
		}
		sessions = append(sessions, Session{
			ID:            sessionID(key, startMs, nth),
			CustomerKey:   key,
			PersonID:      person(last),
			Start:         time.UnixMicro(first.us).UTC(),
			StartSeq:      first.seq,
			End:           time.UnixMicro(last.us).UTC(),
			Events:        end - start,
			EntryEvent:    s.strs[first.touch],
			ExitEvent:     s.strs[last.touch],
			EntryChannel:  s.strs[first.channel],
			EntryCampaign: s.strs[first.campaign],
			Stages:        s.stageNames(stages),
			EndReason:     reason,
			MapVersion:    s.jm.Version,
		})
		stages = 0
		start = end
	}
	// client is the client's session id (hashed) the current session last carried, 0 while none
	// of its events carried one. The rules for a client's session id, taking an event without one
	// as outside any session, not as a cut, as Amplitude does (unlike Amplitude, which groups
	// events by id, a session here is one stretch of time, so A, B, A is three sessions): an event carrying another id than the session's last one ends the session
	// (client_session), however many events without an id lie between them (A, none, C is two
	// sessions); one carrying the session's id keeps it open across a gap from the event before
	// it (A, none 20 minutes later, A 40 minutes after that is one session); and an event without
	// an id after a gap keeps it open too when the next event carrying an id carries the
	// session's (A, none 40 minutes later, A 5 minutes after that is one session, as A, A 45
	// minutes apart is: a server call sent during the pause does not split the client's session).
	// Otherwise an event without an id is cut by the gap rule alone. nextID[i] is the id of the
	// first event from i on carrying one, 0 when none does.
	nextID := make([]uint32, len(points)+1)
	for i := len(points) - 1; i >= 0; i-- {
		if nextID[i] = points[i].clientSession(); nextID[i] == 0 {
			nextID[i] = nextID[i+1]
		}
	}
	var client uint32
	for i, p := range points {
		if i > start {
			prev := points[i-1]
			ps := p.clientSession()
			// The event carries the session's id, or carries none and the next that does
			// carries the session's.
			sameClientSession := client != 0 && nextID[i] == client
			switch {
			case ps != 0 && client != 0 && ps != client:
				closeAt(i, EndClientSession)
			case p.us-prev.us > gap && !sameClientSession:
				closeAt(i, EndTimeout)
			case p.us-points[start].us >= maxDur:
				closeAt(i, EndMaxDuration)
			case i-start >= s.cfg.MaxEventsPerSession:
				closeAt(i, EndMaxEvents)
			}
		}
		if i == start {
			client = 0
		}
		if ps := p.clientSession(); ps != 0 {
			client = ps
		}
		who := ""
		for r := range s.rules {
			if p.rules&(1<<r) == 0 {
				continue
			}
			nth := s.rules[r].Needs()
			if nth > 1 {
				if who == "" {
					who = person(p)
				}
				n := counts[who]
				if n == nil {
					n = make([]int, len(s.rules))
					counts[who] = n
				}
				if n[r]++; n[r] < nth {
					continue
				}
			}
			stages |= 1 << s.ruleStage[r]
		}
	}
	if len(points) > start {
		closeAt(len(points), EndOpen)
	}
	return sessions
}

func (s *Sessionizer) stageNames(mask uint64) []string {
	var names []string
	for i, st := range s.jm.Stages {
		if mask&(1<<i) != 0 {
			names = append(names, st.Name)
		}
	}
	return names
}

// diff returns the sessions of next that are new or changed, and deletions for the customer's
// stored sessions that are gone, all stamped with the current version; it then keeps next as the
// customer's stored sessions.
func (s *Sessionizer) diff(key string, c *customer, next []Session) []Session {
	// A session is known by its start and its place among those starting in that millisecond,
	// as its id is (sessionID).
	type start struct{ ms, nth int64 }
	startOf := func(ss []storedSession, i int) start {
		nth := 0
		ms := ss[i].startUs / 1000
		for j := i - 1; j >= 0 && ss[j].startUs/1000 == ms; j-- {
			nth++
		}
		return start{ms, int64(nth)}
	}
	old := make(map[start]int, len(c.sessions))
	for i := range c.sessions {
		old[startOf(c.sessions, i)] = i
	}
	var out []Session
	kept := make([]storedSession, len(next))
	for i := range next {
		n := &next[i]
		kept[i] = s.store(*n)
		at := startOf(kept, i)
		if j, ok := old[at]; ok {
			delete(old, at)
			if prev := c.sessions[j]; sameSession(prev, kept[i]) {
				kept[i] = prev
				continue
			}
		}
		n.Version, kept[i].version = s.version, s.version
		out = append(out, *n)
	}
	for i, o := range c.sessions {
		if _, gone := old[startOf(c.sessions, i)]; gone {
			g := s.expand(key, o, startOf(c.sessions, i).nth)
			g.Version, g.Deleted = s.version, true
			out = append(out, g)
		}
	}
	c.sessions = kept
	return out
}

func sameSession(a, b storedSession) bool {
	a.version, b.version = 0, 0
	return a == b
}

// store compacts a session for keeping.
func (s *Sessionizer) store(ss Session) storedSession {
	var stages uint64
	for _, name := range ss.Stages {
		if i := s.stageIndex(name); i >= 0 {
			stages |= 1 << i
		}
	}
	return storedSession{
		startUs: ss.Start.UnixMicro(), endUs: ss.End.UnixMicro(), startSeq: ss.StartSeq, version: ss.Version, events: uint32(ss.Events),
		entry: s.intern(ss.EntryEvent), exit: s.intern(ss.ExitEvent), channel: s.intern(ss.EntryChannel),
		campaign: s.intern(ss.EntryCampaign), reason: s.intern(ss.EndReason), person: s.intern(ss.PersonID), stages: stages,
	}
}

// expand turns a kept session back into a Session; nth is its place among the customer's
// sessions starting in its millisecond (see sessionID).
func (s *Sessionizer) expand(key string, o storedSession, nth int64) Session {
	return Session{
		ID: sessionID(key, o.startUs/1000, nth), CustomerKey: key, PersonID: s.strs[o.person],
		Start: time.UnixMicro(o.startUs).UTC(), StartSeq: o.startSeq, End: time.UnixMicro(o.endUs).UTC(), Events: int(o.events),
		EntryEvent: s.strs[o.entry], ExitEvent: s.strs[o.exit], EntryChannel: s.strs[o.channel],
		EntryCampaign: s.strs[o.campaign], Stages: s.stageNames(o.stages), EndReason: s.strs[o.reason],
		MapVersion: s.jm.Version, Version: o.version,
	}
}

// sessionID is derived from the customer, the start (unix ms) and nth, the number of the
// customer's sessions before it starting in the same millisecond (a client session id that
// changes, or max_events cutting events of one millisecond), so it is the same in every run and
// two sessions never share one. The first of a millisecond has the id it had before nth existed.
func sessionID(key string, startMs, nth int64) string {
	name := key + "\x00" + strconv.FormatInt(startMs, 10)
	if nth > 0 {
		name += "\x00" + strconv.FormatInt(nth, 10)
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:12])
}

// sessionNth returns the number of sessions before sessions[i] starting in its millisecond.
func sessionNth(sessions []Session, i int) int64 {
	var nth int64
	for j := i - 1; j >= 0 && sessions[j].Start.UnixMilli() == sessions[i].Start.UnixMilli(); j-- {
		nth++
	}
	return nth
}

// touchpoint labels an event for entry and exit: its name, or its type when it has none.
func touchpoint(e *ingest.Event) string {
	if e.Event != "" {
		return e.Event
	}
	return e.Type
}

// payloadHash hashes the path and bytes of a copy of an event (ingest.Event.Source and Raw, as
// stored and as read back on restore): the same message delivered again (a Kafka redelivery, a
// batch written again after a failed write) comes by the same path with the same bytes, while
// another copy sent with the same messageId has other bytes (at least the receivedAt the
// collector stamps on each call) or comes by another path (the same line produced to Kafka and
// replayed), whose own redelivery stores it should its write fail. 32 bits: two copies with other
// bytes and one hash (one pair in 4 billion) are both stored, as copies at one time were before.
func (s *Sessionizer) payloadHash(e *ingest.Event) uint32 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(e.Source)
	h.WriteByte(0)
	h.Write(e.Raw)
	return uint32(h.Sum64())
}

// TieID is the id of an event with messageId messageID: ClickHouse's cityHash64 of it, the
// CityHash64 of CityHash 1.0.2, at which ClickHouse fixed it (ClickHouse's documentation,
// "Native protocol", "CityHash", which names github.com/go-faster/city for Go: its CH64 is that
// variant; a library, not our own CityHash). It is the tie rule's last key (comparePoints: events
// of one µs and one Seq), and the store's scans read the same number from the engine,
// cityHash64(message_id), to order theirs (store's compareScanned), so the sessionizer's sessions
// and the store's answers order such events alike. It also identifies an event's copies, whatever
// path (source) they came by (see Output.LaterCopies): copies share a messageId, so its TieID.
func TieID(messageID string) uint64 { return city.CH64([]byte(messageID)) }
