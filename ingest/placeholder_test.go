package ingest

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestPlaceholder: the ids broken client code sends for an id it does not have are placeholders,
// in any case, with white space around them or quotes inside; real ids, also ones that contain a
// placeholder or look like a number, are not.
func TestPlaceholder(t *testing.T) {
	tests := []struct {
		id, name string // name "": not a placeholder
	}{
		{"undefined", "undefined"},
		{"Undefined", "undefined"},
		{" UNDEFINED\t", "undefined"},
		{`"undefined"`, "undefined"},
		{"'null'", "null"},
		{`" Null "`, "null"},
		{"\u00a0undefined\u3000", "undefined"}, // Unicode white space
		{"null", "null"},
		{"NULL", "null"},
		{"None", "none"},
		{"NaN", "nan"},
		{"nan", "nan"},
		{"0", "0"},
		{"[object Object]", "[object object]"},
		{"true", "true"},
		{"False", "false"},
		{"anonymous", "anonymous"},
		{"guest", "guest"},
		{"id", "id"},
		{"ID", "id"},
		{"distinct_id", "distinct_id"},
		{"distinctId", "distinctid"},
		{"email", "email"},
		{"not_authenticated", "not_authenticated"},
		{"", "blank"},
		{"  ", "blank"},
		{"\t\n", "blank"},
		{`""`, "blank"},
		{"' '", "blank"},
		// Real ids.
		{"alice", ""},
		{"undefined-user", ""},
		{"user_null", ""},
		{"00", ""},
		{"0.0", ""}, // the string "0.0" is text, not the number 0 (CanonicalNumber)
		{"10", ""},
		{"-1", "-1"},
		{"(null)", "(null)"},
		{"<NULL>", "<null>"},
		{"nil", "nil"},
		{"[object Undefined]", "[object undefined]"},
		{"undefined undefined", "undefined undefined"},
		{"Unknown", "unknown"},
		{"N/A", "n/a"},
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
		{"\u200b", "blank"},
		{"\ufeffundefined\u200d", "undefined"},
		{"-2", ""},
		{"00000000-0000-0000-0000-000000000001", ""},
		{"\ufeffalice", ""},
		{`"alice"`, ""},
		{`"null`, ""},
		{"'", ""},
		{"alice@example.com", ""},
	}
	for _, tt := range tests {
		name, ok := Placeholder(tt.id)
		if name != tt.name || ok != (tt.name != "") {
			t.Errorf("Placeholder(%q) = %q, %v; want %q, %v", tt.id, name, ok, tt.name, tt.name != "")
		}
	}
}

// TestDecodePlaceholderIDs: a placeholder userId, anonymousId or previousId is read as no id on
// every decode (a receiver's message, a client's straight from Kafka, the collector's check), in
// a string or as the number 0 however it is written: the event keeps its other id, and one left
// with none is refused as missing_identity naming the field the placeholder was sent in.
func TestDecodePlaceholderIDs(t *testing.T) {
	tests := []struct {
		name        string
		raw         string
		user, anon  string // the ids decoded
		prev        string
		placeholder string // the placeholders listed, "field:name" joined by ","
		field       string // refused as missing_identity naming this field; "": decoded
	}{
		{"userId undefined beside an anonymousId", `{"type":"track","event":"A","userId":"undefined","anonymousId":"d1"}`, "", "d1", "", "userId:undefined", ""},
		{"identify as undefined", `{"type":"identify","userId":"undefined","anonymousId":"d1"}`, "", "d1", "", "userId:undefined", ""},
		{"identify as null", `{"type":"identify","userId":"null","anonymousId":"d1"}`, "", "d1", "", "userId:null", ""},
		{"identify as whitespace", `{"type":"identify","userId":"  ","anonymousId":"d1"}`, "", "d1", "", "userId:blank", ""},
		{"identify as [object Object]", `{"type":"identify","userId":"[object Object]","anonymousId":"d1"}`, "", "d1", "", "userId:[object object]", ""},
		{"identify as the string 0", `{"type":"identify","userId":"0","anonymousId":"d1"}`, "", "d1", "", "userId:0", ""},
		{"identify as the number 0", `{"type":"identify","userId":0,"anonymousId":"d1"}`, "", "d1", "", "userId:0", ""},
		{"identify as the number 0.0", `{"type":"identify","userId":0.0,"anonymousId":"d1"}`, "", "d1", "", "userId:0", ""},
		{"identify as the number -0e5", `{"type":"identify","userId":-0e5,"anonymousId":"d1"}`, "", "d1", "", "userId:0", ""},
		{"the string 0.0 is an id", `{"type":"identify","userId":"0.0","anonymousId":"d1"}`, "0.0", "d1", "", "", ""},
		{"the number 10 is an id", `{"type":"identify","userId":10,"anonymousId":"d1"}`, "10", "d1", "", "", ""},
		{"a real userId beside a placeholder anonymousId", `{"type":"track","event":"A","userId":"alice","anonymousId":"undefined"}`, "alice", "", "", "anonymousId:undefined", ""},
		{"alias from a placeholder", `{"type":"alias","userId":"alice","previousId":"null","anonymousId":"d1"}`, "alice", "d1", "", "previousId:null", ""},
		{"alias to a placeholder", `{"type":"alias","userId":"NaN","previousId":"d0","anonymousId":"d1"}`, "", "d1", "d0", "userId:nan", ""},
		{"alias to a placeholder without anonymousId", `{"type":"alias","userId":"Undefined","previousId":"d0"}`, "", "", "", "", "userId"},
		{"only a placeholder userId", `{"type":"track","event":"A","userId":"undefined"}`, "", "", "", "", "userId"},
		{"only the number 0 as userId", `{"type":"track","event":"A","userId":0}`, "", "", "", "", "userId"},
		{"only a placeholder anonymousId", `{"type":"track","event":"A","anonymousId":" null "}`, "", "", "", "", "anonymousId"},
		{"both placeholders", `{"type":"track","event":"A","userId":"guest","anonymousId":"anonymous"}`, "", "", "", "", "userId"},
	}
	decoders := []struct {
		name   string
		decode func(raw []byte) (Event, error)
	}{
		{"Decode", func(raw []byte) (Event, error) { return Decode(raw, "s", recv) }},
		{"DecodeClient", func(raw []byte) (Event, error) { return DecodeClient(raw, "kafka", recv) }},
		{"check", func(raw []byte) (Event, error) {
			key, _, err := check(raw, recv)
			return Event{AnonymousID: key}, err // check gives the key only
		}},
	}
	for _, tt := range tests {
		for _, d := range decoders {
			t.Run(tt.name+"/"+d.name, func(t *testing.T) {
				e, err := d.decode([]byte(tt.raw))
				if tt.field != "" {
					if RejectReason(err) != ReasonMissingIdentity || !strings.Contains(err.Error(), "(field "+tt.field+")") {
						t.Fatalf("error %v, want missing_identity naming %s", err, tt.field)
					}
					if !strings.Contains(err.Error(), "placeholder") {
						t.Errorf("error %q does not say the id sent is a placeholder", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if d.name == "check" {
					if want := cmp.Or(tt.anon, tt.user); e.AnonymousID != want {
						t.Errorf("customer key %q, want %q", e.AnonymousID, want)
					}
					return
				}
				var placeholders []string
				for _, p := range e.Placeholders {
					placeholders = append(placeholders, p.Field+":"+p.Name)
				}
				got := fmt.Sprintf("user %q anon %q prev %q placeholders %q", e.UserID, e.AnonymousID, e.PreviousID, strings.Join(placeholders, ","))
				want := fmt.Sprintf("user %q anon %q prev %q placeholders %q", tt.user, tt.anon, tt.prev, tt.placeholder)
				if got != want {
					t.Errorf("decoded %s, want %s", got, want)
				}
				if !bytes.Equal(e.Raw, []byte(tt.raw)) {
					t.Errorf("raw %s, want the message as sent", e.Raw)
				}
			})
		}
	}
}

// TestReplayKeepsPlaceholdersNoID: a fresh pass of `waymark replay` over a Segment export
// renames each id, but not a placeholder: "undefined~1" would pass for a real id and merge the
// pass's visitors. A line left with no id is skipped with the reason, in every pass.
func TestReplayKeepsPlaceholdersNoID(t *testing.T) {
	for pass := range 2 {
		r := readDataset(t, "segment", "testdata/segment-placeholders.jsonl", pass)
		var got []string
		for _, m := range r.msgs {
			e, err := Decode(m.Value, "replay", recv)
			if err != nil {
				t.Fatalf("pass %d line %d: %v", pass, m.Line, err)
			}
			if m.Key != e.CustomerKey() {
				t.Errorf("pass %d line %d: key %q, want the customer key %q", pass, m.Line, m.Key, e.CustomerKey())
			}
			got = append(got, fmt.Sprintf("%q/%q/%d", e.UserID, e.AnonymousID, len(e.Placeholders)))
		}
		suffix := ""
		if pass > 0 {
			suffix = "~1"
		}
		want := []string{
			fmt.Sprintf(`""/"d1%s"/1`, suffix), fmt.Sprintf(`""/"d1%s"/1`, suffix), fmt.Sprintf(`"alice%s"/""/1`, suffix),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pass %d: decoded %v, want %v", pass, got, want)
		}
		if len(r.skips) != 1 || r.skips[0].Line != 4 || !strings.Contains(r.skips[0].Reason, "missing_identity") {
			t.Errorf("pass %d: skipped %v, want line 4 as missing_identity", pass, r.skips)
		}
	}
}

// TestPlaceholderMessageIDs: a messageId broken client code sends for every message
// ("undefined", "null", 0, "") is no messageId: each message gets one derived from its bytes, so
// two different messages are two events and the same message sent again is one, whether posted
// to the collector, produced straight to Kafka or replayed, though the retry's sentAt (and a
// relay's receivedAt) is new.
func TestPlaceholderMessageIDs(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	c, cons := offlineCollector(), offlineConsumer(t)
	paths := []struct {
		name   string
		decode func(msg string) (Event, error)
	}{
		{"collector", func(msg string) (Event, error) {
			req, err := parseRequest([]byte(`{"batch":[`+msg+`]}`), "batch")
			if err != nil {
				return Event{}, err
			}
			accepted, rejected := c.prepare(req, "web", now)
			if len(accepted) != 1 {
				return Event{}, fmt.Errorf("collector refused it: %v", rejected)
			}
			return cons.decode(kafka.Message{Value: accepted[0].raw, Time: now, Headers: []kafka.Header{{Key: HeaderSource, Value: []byte("web")}}})
		}},
		{"straight to Kafka", func(msg string) (Event, error) { return cons.decode(kafka.Message{Value: []byte(msg), Time: now}) }},
		{"replay", func(msg string) (Event, error) { return DecodeAt([]byte(msg), "replay", now) }},
	}
	for _, id := range []string{`"undefined"`, `"null"`, `"[object Object]"`, `0`, `""`, `" "`} {
		for _, p := range paths {
			t.Run(id+"/"+p.name, func(t *testing.T) {
				msg := func(event, delivery string) string {
					return `{"type":"track","event":"` + event + `","userId":"u","messageId":` + id + `,"timestamp":"2026-12-01T10:00:00Z"` + delivery + `}`
				}
				a, err := p.decode(msg("Product Viewed", `,"sentAt":"2026-12-02T00:59:58Z"`))
				if err != nil {
					t.Fatal(err)
				}
				again, err := p.decode(msg("Product Viewed", `,"sentAt":"2026-12-02T00:59:59.5Z","receivedAt":"2026-12-02T01:00:00Z"`))
				if err != nil {
					t.Fatal(err)
				}
				b, err := p.decode(msg("Order Completed", `,"sentAt":"2026-12-02T00:59:58Z"`))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(a.MessageID, "wm-") || a.MessageID == b.MessageID || a.MessageID != again.MessageID {
					t.Errorf("messageIds %q, %q (the same message again), %q (another): want ids derived from each message's bytes", a.MessageID, again.MessageID, b.MessageID)
				}
			})
		}
	}
}

// TestPlaceholderSessionIDs: a client's session id that is a placeholder ("undefined", 0, -1,
// Amplitude's "no session") is no session id, so it neither opens a session of its own nor joins
// the events of every visit that sent it.
func TestPlaceholderSessionIDs(t *testing.T) {
	tests := []struct{ fields, want string }{
		{`"context":{"sessionId":1733000000}`, "1733000000"},
		{`"context":{"sessionId":"undefined"}`, ""},
		{`"context":{"sessionId":0}`, ""},
		{`"context":{"sessionId":-1}`, ""},
		{`"properties":{"session_id":"null"}`, ""},
		{`"properties":{"session_id":"s-7"}`, "s-7"},
	}
	for _, tt := range tests {
		e, err := Decode([]byte(`{"type":"track","event":"A","userId":"u",`+tt.fields+`}`), "s", recv)
		if err != nil {
			t.Fatal(err)
		}
		if e.SessionID != tt.want {
			t.Errorf("%s: session id %q, want %q", tt.fields, e.SessionID, tt.want)
		}
	}
}

// TestUntimedMessagesAreNamedByTheirReceipt: a message straight to Kafka without messageId or
// time gets an id of its receipt: Kafka's time, partition and offset. A redelivery (the same
// message at its place) is the same event; the same bytes at the same offset of another
// partition (each partition counts from 0), or at another offset, are others. A message that
// states its time is named by its bytes alone.
func TestUntimedMessagesAreNamedByTheirReceipt(t *testing.T) {
	cons, err := NewConsumer(ConsumerConfig{Brokers: []string{"unused:9092"}}, SinkFunc(nil), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	id := func(value string, partition int, offset int64) string {
		e, err := cons.decode(kafka.Message{Value: []byte(value), Time: at, Partition: partition, Offset: offset})
		if err != nil {
			t.Fatal(err)
		}
		return e.MessageID
	}
	const untimed = `{"type":"track","userId":"u","event":"Beat"}`
	const timed = `{"type":"track","userId":"u","event":"Beat","timestamp":"2026-12-01T10:00:00Z"}`
	tests := []struct {
		name         string
		a, b         string
		aPart, bPart int
		aOff, bOff   int64
		same         bool
	}{
		{"untimed, redelivered", untimed, untimed, 0, 0, 7, 7, true},
		{"untimed, another offset", untimed, untimed, 0, 0, 7, 8, false},
		{"untimed, another partition", untimed, untimed, 0, 1, 0, 0, false},
		{"timed, another partition and offset", timed, timed, 0, 1, 3, 9, true},
	}
	for _, tt := range tests {
		a, b := id(tt.a, tt.aPart, tt.aOff), id(tt.b, tt.bPart, tt.bOff)
		if (a == b) != tt.same {
			t.Errorf("%s: ids %s and %s, want the same: %v", tt.name, a, b, tt.same)
		}
	}
}
