package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// TestCosmeticFieldsDoNotRefuseTheEvent: a member of the wrong type that no event needs (the
// device's user agent or type, the person's traits: ingest's cosmetic rule) is read as absent and
// the event stored, by every path: a single call answers 200 naming the member it ignored, a
// batch lists it under "ignored" with the event's index, a message produced straight to Kafka is
// stored; each is counted in waymark_consumer_ignored_fields_total by field and reason. The rest
// of such an event is read as usual (its page path, its campaign). Members Waymark does not read
// (context.locale {}, context.ip 7, context.library "x") are kept and not reported. A member of
// the wrong type that an event needs (context.page, context.campaign, context.sessionId,
// properties, the context itself, a page's name) still refuses it, naming the member, on every
// path; a track's name, which no track is named by, is cosmetic. Before,
// context.userAgent 5 refused the whole event: a 400, a rejection in a batch, a dead letter.
func TestCosmeticFieldsDoNotRefuseTheEvent(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	cases := []struct {
		name, typ, member string // member: the bad member, as JSON members of the message
		ignored           string // the member named as ignored; "" for none
		refused           string // the member named as refused; "" when the event is kept
	}{
		{"user agent a number", "track", `"context":{"userAgent":5,"page":{"path":"/shoes"},"campaign":{"source":"newsletter","medium":"email"}}`, "context.userAgent", ""},
		{"device a string", "track", `"context":{"device":"x"}`, "context.device", ""},
		{"device type a number", "track", `"context":{"device":{"type":7}}`, "context.device.type", ""},
		{"context traits a string", "track", `"context":{"traits":"x"}`, "context.traits", ""},
		{"identify traits an array", "identify", `"traits":[1]`, "traits", ""},
		{"a track's name an object", "track", `"name":{"first":"Ann"}`, "name", ""},
		{"locale, ip and library not read", "track", `"context":{"locale":{},"ip":7,"library":"x"}`, "", ""},
		{"page a string", "track", `"context":{"page":"x"}`, "", "context.page"},
		{"campaign an array", "track", `"context":{"campaign":[]}`, "", "context.campaign"},
		{"session id an object", "track", `"context":{"sessionId":{}}`, "", "context.sessionId"},
		{"properties a string", "track", `"properties":"x"`, "", "properties"},
		{"context a number", "track", `"context":5`, "", "context"},
		{"a page's name a number", "page", `"name":5`, "", "name"},
	}
	message := func(path string, i int, typ, member string) string {
		return fmt.Sprintf(`{"type":%q,"event":"Product Viewed","userId":"cf-%s-%d","messageId":"cf-%s-%d","timestamp":"2026-01-01T10:00:00Z",%s}`,
			typ, path, i, path, i, member)
	}
	var wantStored []string
	wantIgnored := map[string]int{} // by field
	dead := 0                       // per path
	var batch []string
	for i, c := range cases {
		// A single call: the endpoint of its type.
		status, answer := s.track(t, "/v1/"+c.typ, message("single", i, c.typ, c.member))
		var body struct {
			Field   string
			Ignored []struct {
				Index         int
				Field, Reason string
			}
		}
		if err := json.Unmarshal([]byte(answer), &body); err != nil {
			t.Fatalf("%s: answer %s: %v", c.name, answer, err)
		}
		switch {
		case c.refused != "" && (status != 400 || body.Field != c.refused):
			t.Errorf("%s: single call answered %d %s, want 400 naming %s", c.name, status, answer, c.refused)
		case c.refused == "" && status != 200:
			t.Errorf("%s: single call answered %d %s, want 200", c.name, status, answer)
		case c.refused == "" && c.ignored == "" && len(body.Ignored) != 0:
			t.Errorf("%s: single call answered %s, want nothing ignored", c.name, answer)
		case c.ignored != "" && (len(body.Ignored) != 1 || body.Ignored[0].Field != c.ignored || body.Ignored[0].Reason != "invalid_field"):
			t.Errorf("%s: single call answered %s, want %s ignored as invalid_field", c.name, answer, c.ignored)
		}
		batch = append(batch, message("batch", i, c.typ, c.member))
		if c.refused != "" {
			dead++
			continue
		}
		for _, path := range []string{"single", "batch", "kafka"} {
			wantStored = append(wantStored, fmt.Sprintf("cf-%s-%d", path, i))
		}
		if c.ignored != "" {
			wantIgnored[c.ignored] += 3
		}
	}
	// A batch: the ignored members and the refused events, each named with its index.
	status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`)
	var body struct {
		Accepted          int
		Rejected, Ignored []struct{ Field, Reason string }
	}
	if err := json.Unmarshal([]byte(answer), &body); status != 200 || err != nil {
		t.Fatalf("POST /v1/batch: %d %s (%v)", status, answer, err)
	}
	var wantRejected, wantIgnoredNamed, gotRejected, gotIgnored []string
	for i, c := range cases {
		if c.refused != "" {
			wantRejected = append(wantRejected, fmt.Sprintf("batch[%d].%s invalid_field", i, c.refused))
		}
		if c.ignored != "" {
			wantIgnoredNamed = append(wantIgnoredNamed, fmt.Sprintf("batch[%d].%s invalid_field", i, c.ignored))
		}
	}
	for _, r := range body.Rejected {
		gotRejected = append(gotRejected, r.Field+" "+r.Reason)
	}
	for _, r := range body.Ignored {
		gotIgnored = append(gotIgnored, r.Field+" "+r.Reason)
	}
	if body.Accepted != len(cases)-dead || !slices.Equal(gotRejected, wantRejected) || !slices.Equal(gotIgnored, wantIgnoredNamed) {
		t.Errorf("POST /v1/batch answered %s\nwant %d accepted, rejected %v, ignored %v", answer, len(cases)-dead, wantRejected, wantIgnoredNamed)
	}
	// Straight to Kafka.
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	defer w.Close()
	var msgs []kafka.Message
	for i, c := range cases {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("cf-kafka-%d", i)), Value: []byte(message("kafka", i, c.typ, c.member))})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	s.waitStored(t)

	got := queryStrings(t, "SELECT DISTINCT message_id FROM "+s.database+".events")
	sort.Strings(got)
	sort.Strings(wantStored)
	if !slices.Equal(got, wantStored) {
		t.Errorf("stored messageIds\n%v\nwant\n%v", got, wantStored)
	}
	// The ignored user agent takes nothing else with it: page path and channel are read.
	for _, path := range []string{"single", "batch", "kafka"} {
		got := queryStrings(t, "SELECT concat(page_path, ' ', channel, ' ', campaign_source) FROM "+s.database+".events WHERE message_id = ?", "cf-"+path+"-0")
		if want := []string{"/shoes email newsletter"}; !slices.Equal(got, want) {
			t.Errorf("cf-%s-0 stored as %v, want %v", path, got, want)
		}
	}
	metrics := scrape(t, s.http)
	for _, field := range []string{"context.userAgent", "context.device", "context.device.type", "context.traits", "traits", "name", "context.locale"} {
		series := fmt.Sprintf(`waymark_consumer_ignored_fields_total{field=%q,reason="invalid_field"}`, field)
		if got := scrapedValue(metrics, series); got != float64(wantIgnored[field]) {
			t.Errorf("%s = %v, want %d", series, got, wantIgnored[field])
		}
	}
	for series, want := range map[string]int{
		`waymark_dlq_messages_total{path="collector",reason="invalid_field"}`: 2 * dead, // a single call and a batch
		`waymark_dlq_messages_total{path="consumer",reason="invalid_field"}`:  dead,
	} {
		if got := scrapedValue(metrics, series); got != float64(want) {
			t.Errorf("%s = %v, want %d", series, got, want)
		}
	}
}
