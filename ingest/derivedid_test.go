package ingest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCollectorDerivedIDsTellCallsAndTwinsApart: a messageId the collector derives for an event
// without one hashes the call type it is stored with (a single call's is its endpoint's) and its
// repeat among the identical events of its request, so a page and an identify sent with one body
// are two events, and so are two identical members of one /v1/batch that state their time; a
// retried call or request, or a queue batched anew with its twins together, gets the same ids
// again (tester 35's F1). Members alike of two batches whose contexts differ are two events, and
// a retried batch is one. Where no part is needed (a body naming its type, the first of twins, a
// batch without a context) the id is the one derived before.
func TestCollectorDerivedIDsTellCallsAndTwinsApart(t *testing.T) {
	e := startCollector(t, nil)
	const at = `"timestamp":"2026-11-29T10:00:00Z"`
	// body is a message of user without type; typed names its type too.
	body := func(user string) string { return `{"anonymousId":"a","userId":"` + user + `",` + at + `}` }
	typed := func(typ, user string) string {
		return `{"type":"` + typ + `","userId":"` + user + `","event":"Product Added","properties":{"sku":"A"},` + at + `}`
	}
	batch := func(members ...string) string { return `{"batch":[` + strings.Join(members, ",") + `]}` }
	type post struct{ path, body string }
	tests := []struct {
		name  string
		user  string
		posts []post
		ids   int    // distinct messageIds stored for user
		old   string // a body whose id, as derived before, is among them
	}{
		{"an identify and a page of one body", "one-body", []post{{"/v1/identify", body("one-body")}, {"/v1/page", body("one-body")}}, 2, ""},
		{"every endpoint, each sent again by its short form", "endpoints", []post{
			{"/v1/identify", body("endpoints")}, {"/v1/page", body("endpoints")}, {"/v1/screen", body("endpoints")}, {"/v1/group", body("endpoints")}, {"/v1/alias", body("endpoints")},
			{"/v1/i", body("endpoints")}, {"/v1/p", body("endpoints")}, {"/v1/s", body("endpoints")}, {"/v1/g", body("endpoints")}, {"/v1/a", body("endpoints")},
		}, 5, ""},
		{"a page sent twice (a retry)", "retry", []post{{"/v1/page", body("retry")}, {"/v1/page", body("retry")}}, 1, ""},
		{"a body naming another type than its endpoint's", "other-type", []post{{"/v1/identify", typed("page", "other-type")}, {"/v1/page", typed("page", "other-type")}}, 2, typed("page", "other-type")},
		{"a track naming its type keeps its id", "named", []post{{"/v1/track", typed("track", "named")}, {"/v1/t", typed("track", "named")}}, 1, typed("track", "named")},
		{"the same track as a call and a batch member", "call-or-batch", []post{{"/v1/track", typed("track", "call-or-batch")}, {"/v1/batch", batch(typed("track", "call-or-batch"))}}, 1, typed("track", "call-or-batch")},
		{"twins of one batch", "twins", []post{{"/v1/batch", batch(typed("track", "twins"), typed("track", "twins"))}}, 2, typed("track", "twins")},
		{"twins of one batch, the batch retried", "twins-retried", []post{
			{"/v1/batch", batch(typed("track", "twins-retried"), typed("track", "twins-retried"))},
			{"/v1/batch", batch(typed("track", "twins-retried"), typed("track", "twins-retried"))},
		}, 2, typed("track", "twins-retried")},
		{"twins batched anew, together", "rebatched", []post{
			{"/v1/batch", batch(typed("track", "rebatched"), typed("track", "rebatched"), typed("page", "rebatched"))},
			{"/v1/batch", batch(typed("page", "rebatched"), typed("track", "rebatched"), typed("track", "rebatched"))},
		}, 3, typed("track", "rebatched")},
		{"twins differing only in sentAt", "sent-twins", []post{{"/v1/batch", batch(
			`{"type":"track","userId":"sent-twins","event":"E",`+at+`,"sentAt":"2026-11-29T10:00:01Z"}`,
			`{"type":"track","userId":"sent-twins","event":"E",`+at+`,"sentAt":"2026-11-29T10:00:02Z"}`)}}, 2, ""},
		{"members alike of batches with other contexts", "contexts", []post{
			{"/v1/batch", `{"batch":[` + typed("track", "contexts") + `],"context":{"ip":"192.0.2.1"}}`},
			{"/v1/batch", `{"batch":[` + typed("track", "contexts") + `],"context":{"ip":"192.0.2.2"}}`},
		}, 2, ""},
		{"a batch with a context, retried", "context-retried", []post{
			{"/v1/batch", `{"batch":[` + typed("track", "context-retried") + `],"context":{"ip":"192.0.2.1"}}`},
			{"/v1/batch", `{"batch":[` + typed("track", "context-retried") + `],"context":{"ip":"192.0.2.1"}}`},
		}, 1, ""},
		{"untimed twins of one batch", "untimed", []post{{"/v1/batch", batch(`{"type":"track","userId":"untimed","event":"E"}`, `{"type":"track","userId":"untimed","event":"E"}`)}}, 2, ""},
	}
	for _, tt := range tests {
		for _, p := range tt.posts {
			if status, _, answer := e.do(t, call{path: p.path, headers: basicWeb, body: []byte(p.body)}); status != 200 {
				t.Fatalf("%s: POST %s %s: %d %v", tt.name, p.path, p.body, status, answer)
			}
		}
	}
	ids := map[string][]string{}
	for _, m := range topicMessages(t, e.broker.Addr(), "events") {
		ev, err := Decode(m.Value, "web", time.Time{})
		if err != nil {
			t.Fatalf("a stored message does not decode: %v\n%s", err, m.Value)
		}
		if !slices.Contains(ids[ev.UserID], ev.MessageID) {
			ids[ev.UserID] = append(ids[ev.UserID], ev.MessageID)
		}
	}
	for _, tt := range tests {
		got := ids[tt.user]
		if len(got) != tt.ids {
			t.Errorf("%s: %d events (%v), want %d", tt.name, len(got), got, tt.ids)
		}
		if old := DerivedMessageID("web", []byte(tt.old), IDParts{}); tt.old != "" && !slices.Contains(got, old) {
			t.Errorf("%s: ids %v, want the one derived before among them, %s", tt.name, got, old)
		}
	}
}

// TestDerivedMessageIDParts: each part of IDParts a message has makes its id another; one it
// lacks (a type its bytes name, repeat 0, no receipt) leaves the id derived from its source and
// bytes alone, as before the parts were hashed.
func TestDerivedMessageIDParts(t *testing.T) {
	const raw = `{"type":"track","userId":"u","event":"E","timestamp":"2026-11-29T10:00:00Z","sentAt":"2026-11-29T10:00:01Z"}`
	plain := DerivedMessageID("web", []byte(raw), IDParts{})
	tests := []struct {
		name   string
		source string
		raw    string
		parts  IDParts
		same   bool // the id is plain
	}{
		{"the type its bytes name", "web", raw, IDParts{CallType: "track"}, true},
		{"another sentAt, and a receivedAt", "web", strings.Replace(raw, `"sentAt":"2026-11-29T10:00:01Z"`, `"sentAt":"2026-11-29T11:00:00Z","receivedAt":"2026-11-29T11:00:01Z"`, 1), IDParts{}, true},
		{"another type than its bytes name", "web", raw, IDParts{CallType: "page"}, false},
		{"the type of bytes naming none", "web", strings.Replace(raw, `"type":"track",`, ``, 1), IDParts{CallType: "track"}, false},
		{"the first repeat", "web", raw, IDParts{Repeat: 1}, false},
		{"a receipt", "web", raw, IDParts{Receipt: Receipt(time.Unix(1, 0), "0")}, false},
		{"another source", "server", raw, IDParts{}, false},
		{"a batch's context", "web", raw, IDParts{BatchContext: []byte(`{"ip":"192.0.2.1"}`)}, false},
	}
	seen := map[string]string{plain: "plain"}
	for _, tt := range tests {
		id := DerivedMessageID(tt.source, []byte(tt.raw), tt.parts)
		if (id == plain) != tt.same {
			t.Errorf("%s: %s, plain %s: want the same %t", tt.name, id, plain, tt.same)
		}
		if other, ok := seen[id]; ok && !tt.same {
			t.Errorf("%s: the id of %s", tt.name, other)
		}
		seen[id] = tt.name
	}
	// Repeats and a type never give one id to two parts.
	if DerivedMessageID("web", []byte(raw), IDParts{Repeat: 2}) == DerivedMessageID("web", []byte(raw), IDParts{Repeat: 1}) {
		t.Error("repeats 1 and 2 have one id")
	}
}

// TestKafkaMessageTimedByItsReceiptIsOneEvent: a message produced straight to Kafka without a
// messageId whose only time is the receipt it names (claimedReceipt) states its time, so two
// productions of it are one event, as two of a message with a timestamp are; without a receipt it
// can claim, each production is an event of its own, named by its place (tester 36's F3).
func TestKafkaMessageTimedByItsReceiptIsOneEvent(t *testing.T) {
	kafkaTime := time.Now().UTC()
	for _, tt := range []struct {
		receivedAt string
		oneEvent   bool
	}{
		{kafkaTime.Add(-6 * 24 * time.Hour).Format(time.RFC3339Nano), true},
		{kafkaTime.Add(-time.Minute).Format(time.RFC3339Nano), true},
		{kafkaTime.Add(-8 * 24 * time.Hour).Format(time.RFC3339Nano), false}, // no receipt: past Kafka's retention
		{"yesterday", false},
	} {
		raw := []byte(`{"type":"track","userId":"k5","event":"E","receivedAt":"` + tt.receivedAt + `"}`)
		first, err := decode(raw, "kafka", kafkaTime, asClient, "0:10")
		if err != nil {
			t.Fatal(err)
		}
		second, err := decode(raw, "kafka", kafkaTime, asClient, "0:11")
		if err != nil {
			t.Fatal(err)
		}
		if got := first.MessageID == second.MessageID; got != tt.oneEvent {
			t.Errorf("receivedAt %s: ids %s and %s, one event %t, want %t", tt.receivedAt, first.MessageID, second.MessageID, got, tt.oneEvent)
		}
	}
}
