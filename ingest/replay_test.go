package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSegmentReplayKeepsEventTimes: a replayed Segment export keeps its events' times: a line
// dated by originalTimestamp alone gets the timestamp Segment's rule gives it from its own
// sentAt and receivedAt, and one dated by receivedAt alone that receivedAt, so a replay through the collector (which drops the events' sentAt, see
// collectorSender) stores it at the same time as one straight to Kafka; a line over the event
// limit is skipped with the reason.
func TestSegmentReplayKeepsEventTimes(t *testing.T) {
	lines := strings.Join([]string{
		`{"type":"track","event":"A","userId":"u","messageId":"a","timestamp":"2024-10-02T10:00:00Z","originalTimestamp":"2024-10-02T08:00:00Z","sentAt":"2024-10-02T08:00:01Z","receivedAt":"2024-10-02T10:00:01Z"}`,
		`{"type":"track","event":"B","userId":"u","messageId":"b","originalTimestamp":"2024-10-02T08:05:00Z","sentAt":"2024-10-02T08:05:01Z","receivedAt":"2024-10-02T10:05:01Z"}`,
		`{"type":"track","event":"C","userId":"u","messageId":"c","properties":{"blob":"` + strings.Repeat("x", 40<<10) + `"}}`,
		`{"type":"track","event":"D","userId":4.2e3,"messageId":"d","timestamp":"2024-10-02T10:10:00Z"}`,
		`{"type":"track","event":"E","userId":"u","messageId":"e","receivedAt":"2024-10-02T10:15:00Z"}`,
		// More than 23 hours after its receivedAt: set to it (PostHog's rule), on both ways.
		`{"type":"track","event":"F","userId":"u","messageId":"f","timestamp":"2099-12-31T23:59:59Z","receivedAt":"2024-10-02T10:20:00Z"}`,
		`{"type":"track","event":"G","userId":"u","messageId":"g","timestamp":"2024-11-01T10:00:00Z","originalTimestamp":"2024-11-01T09:00:00Z","receivedAt":"2024-10-02T10:25:00Z"}`,
	}, "\n")
	var msgs []Message
	var skips []Skip
	skip := func(s Skip) { skips = append(skips, s) }
	if err := readSegment(strings.NewReader(lines), 0, withinEventLimit(func(m Message) error { msgs = append(msgs, m); return nil }, skip), skip); err != nil {
		t.Fatal(err)
	}
	if len(skips) != 1 || skips[0].Line != 3 || !strings.Contains(skips[0].Reason, ReasonTooLarge) {
		t.Errorf("skipped %v, want line 3 as %s", skips, ReasonTooLarge)
	}
	want := []string{"2024-10-02T10:00:00Z", "2024-10-02T10:05:00Z", "2024-10-02T10:10:00Z", "2024-10-02T10:15:00Z", "2024-10-02T10:20:00Z", "2024-10-02T10:25:00Z"}
	wantOriginal := map[string]string{"f": "2099-12-31T23:59:59Z", "g": "2024-11-01T09:00:00Z"} // of the lines moved
	if len(msgs) != len(want) {
		t.Fatalf("messages %d, want %d", len(msgs), len(want))
	}
	c := offlineCollector()
	for i, m := range msgs {
		direct, err := Decode(m.Value, "replay-segment", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Through the collector: the body collectorSender posts, the collector's output.
		var members []member
		members, _ = objectMembers(m.forCollector(), members)
		body := `{"batch":[` + string(appendObject(nil, m.forCollector(), members, []string{"sentAt"}, nil)) + `]}`
		req, err := parseRequest([]byte(body), "batch")
		if err != nil {
			t.Fatal(err)
		}
		accepted, rejected := c.prepare(req, "web", time.Now())
		if len(accepted) != 1 {
			t.Fatalf("line %d: collector rejected %v", m.Line, rejected)
		}
		viaCollector, err := Decode(accepted[0].raw, "web", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for path, e := range map[string]Event{"straight to Kafka": direct, "through the collector": viaCollector} {
			if got := e.Timestamp.Format(time.RFC3339); got != want[i] {
				t.Errorf("line %d %s: stored at %s, want %s", m.Line, path, got, want[i])
			}
			if orig, ok := wantOriginal[e.MessageID]; ok && e.OriginalTimestamp.Format(time.RFC3339) != orig {
				t.Errorf("line %d %s: originalTimestamp %s, want %s", m.Line, path, e.OriginalTimestamp, orig)
			}
		}
		if _, moved := wantOriginal[direct.MessageID]; m.FutureTimestamp != moved {
			t.Errorf("line %d: FutureTimestamp %v, want %v", m.Line, m.FutureTimestamp, moved)
		}
	}
	// A fresh pass gives a numeric id a fresh one too, from all its digits.
	msgs = nil
	line := `{"type":"track","event":"A","userId":12345678901234567890,"anonymousId":4.2e3,"timestamp":"2024-10-02T10:00:00Z"}`
	if err := readSegment(strings.NewReader(line), 1, func(m Message) error { msgs = append(msgs, m); return nil }, skip); err != nil {
		t.Fatal(err)
	}
	var ids struct{ UserID, AnonymousID string }
	if len(msgs) != 1 || json.Unmarshal(msgs[0].Value, &ids) != nil || ids.UserID != "12345678901234567890~1" || ids.AnonymousID != "4200~1" {
		t.Errorf("pass 1 sent %v, want userId 12345678901234567890~1 and anonymousId 4200~1", msgs)
	}
}

// TestFreshPassesRenameEveryID: a fresh pass renames every id the identity rules read, an
// alias's previousId among them, so no pass's person is joined to another pass's.
func TestFreshPassesRenameEveryID(t *testing.T) {
	line := `{"type":"alias","userId":"u","previousId":"old","anonymousId":"a","messageId":"m","timestamp":"2024-10-02T10:00:00Z"}`
	var msgs []Message
	skip := func(s Skip) { t.Errorf("skipped %v", s) }
	if err := readSegment(strings.NewReader(line), 2, func(m Message) error { msgs = append(msgs, m); return nil }, skip); err != nil {
		t.Fatal(err)
	}
	var ids map[string]any
	if len(msgs) != 1 || json.Unmarshal(msgs[0].Value, &ids) != nil {
		t.Fatalf("pass 2 sent %v, want the line", msgs)
	}
	for k, want := range map[string]string{"userId": "u~2", "previousId": "old~2", "anonymousId": "a~2", "messageId": "m~2"} {
		if ids[k] != want {
			t.Errorf("pass 2: %s = %v, want %s", k, ids[k], want)
		}
	}
}

// TestSegmentPassesSkipTheSameLines: a fresh pass of a Segment export (repeat > 1) skips the
// lines the first pass skips, with the same reason, and sends the others: JSON with text after
// the message, which encoding/json would read, is no message in any pass; a name with bytes that
// are not UTF-8 is one in every pass (read as U+FFFD, as encoding/json reads and rewrites it).
func TestSegmentPassesSkipTheSameLines(t *testing.T) {
	lines := []string{
		`{"type":"track","event":"A","userId":"u1","timestamp":"2024-10-02T10:00:00Z"}`,
		`{"type":"track","event":"B","userId":"u2","timestamp":"2024-10-02T10:00:00Z"} {"type":"track"}`,
		`{"type":"track","event":"C","userId":"u3","timestamp":"2024-10-02T10:00:00Z"}]`,
		"{\"type\":\"track\",\"event\":\"D\xff\",\"userId\":\"u4\",\"timestamp\":\"2024-10-02T10:00:00Z\"}",
		`{"type":"track","event":"E","userId":"u5","timestamp":"2024-10-02T10:00:00Z"}`,
	}
	read := func(pass int) (sent []int, skipped []Skip) {
		emit := func(m Message) error { sent = append(sent, m.Line); return nil }
		skip := func(s Skip) { skipped = append(skipped, s) }
		if err := readSegment(strings.NewReader(strings.Join(lines, "\n")), pass, emit, skip); err != nil {
			t.Fatal(err)
		}
		return sent, skipped
	}
	wantSent, wantSkipped := read(0)
	if !slices.Equal(wantSent, []int{1, 4, 5}) {
		t.Fatalf("pass 0 sent lines %v, want 1, 4 and 5", wantSent)
	}
	for pass := 1; pass <= 2; pass++ {
		sent, skipped := read(pass)
		if !slices.Equal(sent, wantSent) || !slices.EqualFunc(skipped, wantSkipped, func(a, b Skip) bool { return a.Place() == b.Place() && a.Reason == b.Reason }) {
			t.Errorf("pass %d sent lines %v and skipped %v, want %v and %v as pass 0", pass, sent, skipped, wantSent, wantSkipped)
		}
	}
}

// TestReplayNamesUntimedLines: a line without messageId that states no time gets an id of its
// bytes and line number, the same in every replay of the file (so a second replay, whose copy
// is later, changes no answer), and two identical such lines are two events; a line that
// states its time is left for the consumer to name by its bytes.
func TestReplayNamesUntimedLines(t *testing.T) {
	lines := strings.Join([]string{
		`{"type":"track","event":"Beat","userId":"u"}`,
		`{"type":"track","event":"Beat","userId":"u","messageId":"undefined"}`,
		`{"type":"track","event":"Beat","userId":"u"}`,
		`{"type":"track","event":"Beat","userId":"u","timestamp":"2024-10-02T10:00:00Z"}`,
		`{"type":"track","event":"Beat","userId":"u","messageId":"own"}`,
	}, "\n")
	ids := func() []string {
		var out []string
		err := readSegment(strings.NewReader(lines), 0, func(m Message) error {
			e, err := Decode(m.Value, "replay", time.Now())
			if err != nil {
				return err
			}
			out = append(out, e.MessageID)
			return nil
		}, func(s Skip) { t.Errorf("skipped %v", s) })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first, again := ids(), ids()
	if !slices.Equal(first, again) {
		t.Errorf("ids %v, then %v replayed again: want the same", first, again)
	}
	if len(first) != 5 || first[0] == first[2] || first[0] == first[1] || first[4] != "own" {
		t.Errorf("ids %v: want the untimed lines 1-3 apart, line 5's own", first)
	}
	var raw []string
	_ = readSegment(strings.NewReader(lines), 0, func(m Message) error { raw = append(raw, string(m.Value)); return nil }, func(Skip) {})
	if len(raw) != 5 || strings.Contains(raw[3], "messageId") {
		t.Errorf("line 4 (stating its time) as sent: %v, want no messageId stamped", raw)
	}
}

// TestReplayReadsGzipAndBatchBodies: a dataset is read gzip-compressed when its first bytes say
// so, whatever its name, and a segment line that is a whole /v1/batch body gives each of its
// events with the batch's sentAt and context, merged as the collector merges them (withBatch); a
// bad event of a batch is skipped naming its line and index.
func TestReplayReadsGzipAndBatchBodies(t *testing.T) {
	lines := strings.Join([]string{
		`{"type":"track","event":"Single","userId":"u","messageId":"s","timestamp":"2024-10-02T10:00:00Z"}`,
		`{"batch":[` +
			`{"type":"track","event":"A","userId":"u","messageId":"a","timestamp":"2024-10-02T10:01:00Z","context":{"page":{"path":"/a"},"ip":"10.0.0.9"}},` +
			`{"type":"track","event":"B","userId":"u","messageId":"b","timestamp":"2024-10-02T10:02:00Z"},` +
			`"not an event"` +
			`],"context":{"ip":"10.0.0.1","library":{"name":"analytics-node"}},"sentAt":"2024-10-02T10:02:01Z","writeKey":"k"}`,
	}, "\n") + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte(lines)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "export.jsonl") // no .gz: told by its bytes
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var msgs []Message
	var skips []Skip
	skip := func(s Skip) { skips = append(skips, s) }
	if err := replayFile(context.Background(), path, 0, readSegment, func(m Message) error { msgs = append(msgs, m); return nil }, skip, nil); err != nil {
		t.Fatal(err)
	}
	if len(skips) != 1 || skips[0].Place() != "line 2 batch[2]" {
		t.Errorf("skipped %v, want line 2 batch[2]", skips)
	}
	if len(msgs) != 3 {
		t.Fatalf("messages %d, want 3: %v", len(msgs), msgs)
	}
	// What the collector makes of the same batch body: the one rule.
	req, err := parseRequest([]byte(strings.Split(lines, "\n")[1]), "batch")
	if err != nil {
		t.Fatal(err)
	}
	c := offlineCollector()
	accepted, _ := c.prepare(req, "web", time.Now())
	if len(accepted) != 2 {
		t.Fatalf("collector accepted %d events of the batch, want 2", len(accepted))
	}
	type batched struct {
		Context map[string]any `json:"context"`
		SentAt  string         `json:"sentAt"`
	}
	for i, m := range msgs[1:] {
		var got, want batched
		if err := json.Unmarshal(m.Value, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(accepted[i].raw, &want); err != nil {
			t.Fatal(err)
		}
		if m.Line != 2 || got.SentAt != "2024-10-02T10:02:01Z" || !reflect.DeepEqual(got.Context, want.Context) {
			t.Errorf("batch[%d]: line %d, sentAt %q, context %v; want line 2, the batch's sentAt, context %v", i, m.Line, got.SentAt, got.Context, want.Context)
		}
	}
	if ip := msgs[1].Value; !bytes.Contains(ip, []byte(`"ip":"10.0.0.9"`)) || !bytes.Contains(msgs[2].Value, []byte(`"ip":"10.0.0.1"`)) {
		t.Errorf("the event's own context member must win, the batch's fill in:\n%s\n%s", msgs[1].Value, msgs[2].Value)
	}

	// A corrupt gzip stream fails naming the file and the line it met it at.
	bad := filepath.Join(t.TempDir(), "bad.jsonl.gz")
	corrupt := append([]byte(nil), gz.Bytes()...)
	corrupt[len(corrupt)-5] ^= 0xff // the CRC
	if err := os.WriteFile(bad, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	err = replayFile(context.Background(), bad, 0, readSegment, func(Message) error { return nil }, func(Skip) {}, nil)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line") {
		t.Errorf("corrupt gzip: %v, want an error naming %s and a line", err, bad)
	}
}

// TestSegmentBatchBodyWithADeepEvent: a batch body whose one event nests too deep is still a
// batch body: its other events are replayed, and the deep one is skipped naming its member, as
// the collector rejects it alone (tester 31's F4: the whole line was skipped).
func TestSegmentBatchBodyWithADeepEvent(t *testing.T) {
	deep := strings.Repeat("[", 600) + strings.Repeat("]", 600)
	lines := strings.Join([]string{
		`{"batch":[{"type":"track","event":"A","userId":"u1","timestamp":"2024-10-02T10:00:00Z"},` +
			`{"type":"track","event":"B","userId":"u2","timestamp":"2024-10-02T10:00:00Z","properties":{"x":` + deep + `}},` +
			`{"type":"track","event":"C","userId":"u3","timestamp":"2024-10-02T10:00:00Z"}]}`,
		`{"type":"track","event":"D","userId":"u4","timestamp":"2024-10-02T10:00:00Z","properties":{"x":` + deep + `}}`,
	}, "\n")
	var events []string
	var skipped []Skip
	emit := func(m Message) error {
		e, err := Decode(m.Value, "replay", time.Now())
		if err != nil {
			return err
		}
		events = append(events, e.Event)
		return nil
	}
	if err := readSegment(strings.NewReader(lines), 0, emit, func(s Skip) { skipped = append(skipped, s) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{"A", "C"}) {
		t.Errorf("replayed %v, want A and C", events)
	}
	if len(skipped) != 2 || skipped[0].Line != 1 || skipped[0].Event != "batch[1]" || !strings.HasPrefix(skipped[0].Reason, "invalid_json (field properties): JSON nested deeper") || skipped[1].Line != 2 {
		t.Errorf("skipped %+v, want line 1's batch[1] naming its properties, and line 2", skipped)
	}
}

// TestReplayNamesRepeatedTimedLines: a file is replayed as one request (IDParts.Repeat): of the
// lines without messageId that state their time, the first of its bytes goes as it is (its id
// derived downstream, as before) and the k-th repeat of it (a batch body's members, and lines
// differing only in sentAt, included) gets the id with its repeat, so identical lines are events
// of their own and the file replayed again gives each the same id (tester 35's F1).
func TestReplayNamesRepeatedTimedLines(t *testing.T) {
	const twin = `{"type":"track","event":"Add","userId":"u","timestamp":"2024-10-02T10:00:00Z"}`
	lines := strings.Join([]string{
		twin,
		twin,
		`{"batch":[` + twin + `,` + twin + `]}`,
		`{"type":"track","event":"Add","userId":"u","timestamp":"2024-10-02T10:00:00Z","sentAt":"2024-10-02T10:00:01Z"}`,
		`{"type":"track","event":"Other","userId":"u","timestamp":"2024-10-02T10:00:00Z"}`,
	}, "\n")
	read := func() (ids, values []string) {
		err := readSegment(strings.NewReader(lines), 0, func(m Message) error {
			e, err := Decode(m.Value, "replay", time.Now())
			if err != nil {
				return err
			}
			ids, values = append(ids, e.MessageID), append(values, string(m.Value))
			return nil
		}, func(s Skip) { t.Errorf("skipped %v", s) })
		if err != nil {
			t.Fatal(err)
		}
		return ids, values
	}
	first, values := read()
	if again, _ := read(); !slices.Equal(first, again) {
		t.Errorf("ids %v, then %v replayed again: want the same", first, again)
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(first))); len(first) != 6 || len(distinct) != 6 {
		t.Errorf("ids %v: want 6 events", first)
	}
	if strings.Contains(values[0], "messageId") || strings.Contains(values[5], "messageId") {
		t.Errorf("the first of each bytes sent as %s, %s: want it as it is", values[0], values[5])
	}
	if old := DerivedMessageID("replay", []byte(twin), IDParts{}); first[0] != old {
		t.Errorf("the first twin's id %s, want the one derived before, %s", first[0], old)
	}
}
