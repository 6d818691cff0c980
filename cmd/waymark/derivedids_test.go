package main

import (
	"slices"
	"strings"
	"testing"
)

// TestMessagesWithoutIDOrTimeAreEventsOfTheirOwn: a message without messageId gets one derived
// from its bytes; when it states no time either (its time is when it was received), each receipt
// is an event of its own, as Segment's HTTP API gives each call its own messageId: the same page
// call sent again after a purchase, two identical cart adds in one batch, and two identical lines
// produced straight to Kafka are two events each. One that states its time, sent again (a retry),
// stays one event, by either path, though the retry's sentAt (or a relay's receivedAt) is new. Before, every identical body was one event however far apart
// it was sent, so `next` after a purchase said exit and a repeat order was lost. Recomputed from
// the stored events (resessionize, as after a restart), the answers stay.
func TestMessagesWithoutIDOrTimeAreEventsOfTheirOwn(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	calls := []struct{ path, body string }{
		{"/v1/page", `{"anonymousId":"di-pv","name":"DI Home"}`},
		{"/v1/page", `{"anonymousId":"di-pv","name":"DI Home"}`},
		{"/v1/track", `{"anonymousId":"di-pv","event":"DI Buy"}`},
		{"/v1/page", `{"anonymousId":"di-pv","name":"DI Home"}`},
		{"/v1/batch", `{"batch":[{"type":"track","userId":"di-cart","event":"DI Add","properties":{"sku":"x"}},{"type":"track","userId":"di-cart","event":"DI Add","properties":{"sku":"x"}}]}`},
		{"/v1/track", `{"userId":"di-sub","event":"DI Renewal","properties":{"plan":"monthly","revenue":10}}`},
		{"/v1/track", `{"userId":"di-sub","event":"DI Renewal","properties":{"plan":"monthly","revenue":10}}`},
		// A retry: the same message, stating its time, sent twice.
		{"/v1/track", `{"userId":"di-retry","event":"DI Timed","timestamp":"2026-11-30T10:00:00Z"}`},
		{"/v1/track", `{"userId":"di-retry","event":"DI Timed","timestamp":"2026-11-30T10:00:00Z"}`},
		// A retry whose sentAt is new (Segment's libraries set it at each send): the same event.
		{"/v1/track", `{"userId":"di-retry","event":"DI Resent","timestamp":"2026-11-30T10:00:00Z","sentAt":"2026-11-30T10:00:01Z"}`},
		{"/v1/track", `{"userId":"di-retry","event":"DI Resent","timestamp":"2026-11-30T10:00:00Z","sentAt":"2026-11-30T10:00:31Z"}`},
	}
	for _, c := range calls {
		if code, body := s.track(t, c.path, c.body); code != 200 {
			t.Fatalf("POST %s %s: %d %s", c.path, c.body, code, body)
		}
	}
	produceWithKcat(t, s.broker, []string{
		`{"type":"track","userId":"di-k","event":"DI Beat"}`,
		`{"type":"track","userId":"di-k","event":"DI Beat"}`,
		`{"type":"track","userId":"di-k","event":"DI KTimed","timestamp":"2026-11-30T10:00:00Z"}`,
		`{"type":"track","userId":"di-k","event":"DI KTimed","timestamp":"2026-11-30T10:00:00Z"}`,
		`{"type":"track","userId":"di-k","event":"DI KResent","timestamp":"2026-11-30T10:00:00Z","sentAt":"2026-11-30T10:00:01Z"}`,
		`{"type":"track","userId":"di-k","event":"DI KResent","timestamp":"2026-11-30T10:00:00Z","sentAt":"2026-11-30T10:00:31Z","receivedAt":"2026-11-30T10:00:32Z"}`,
	})
	s.waitStored(t)

	events := map[string]string{"DI Home": "3", "DI Buy": "1", "DI Add": "2", "DI Renewal": "2", "DI Timed": "1", "DI Beat": "2", "DI KTimed": "1", "DI Resent": "1", "DI KResent": "1"}
	for name, want := range events {
		got := queryStrings(t, "SELECT toString(uniqExact(message_id)) FROM "+s.database+".events WHERE event = ?", name)
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v events stored, want %s", name, got, want)
		}
	}
	check := func(when string) {
		for _, tt := range []struct {
			steps string
			want  []int64
		}{
			{"DI Buy,DI Home", []int64{1, 1}},
			{"DI Renewal,DI Renewal", []int64{1, 1}},
			{"DI Add,DI Add", []int64{1, 1}},
			{"DI Beat,DI Beat", []int64{1, 1}},
			{"DI Timed,DI Timed", []int64{1, 0}},
			{"DI Resent,DI Resent", []int64{1, 0}},
			{"DI KResent,DI KResent", []int64{1, 0}},
		} {
			f := s.funnel(t, tt.steps, "1h")
			var got []int64
			for _, st := range f.Steps {
				got = append(got, st.Customers)
			}
			if len(got) != len(tt.want) || got[0] != tt.want[0] || got[1] != tt.want[1] {
				t.Errorf("%s: funnel %s = %v, want %v", when, tt.steps, got, tt.want)
			}
		}
	}
	check("live")
	s.waymark(t, "resessionize")
	check("after resessionize")
}

// TestDerivedIDsTellCallsAndTwinsApart: two different events are never given one derived
// messageId (tester 35's F1). A single call's type is its endpoint's and is hashed with its
// bytes, so an identify and a page a server sends with one body (ids and time only) are both
// stored; two identical members of one /v1/batch that state their time are two events, the batch
// sent again (a retry) still two; a file replayed is one request, so two identical timed lines
// are two events and the file replayed again adds none. A retried single call stays one event.
func TestDerivedIDsTellCallsAndTwinsApart(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	const same = `{"anonymousId":"dt-a","userId":"dt-u","timestamp":"2026-11-29T10:00:00Z"}`
	twin := `{"type":"track","userId":"dt-twin","event":"DT Add","timestamp":"2026-11-29T10:00:00Z","properties":{"sku":"A"}}`
	batch := `{"batch":[` + twin + `,` + twin + `]}`
	for _, c := range []struct{ path, body string }{
		{"/v1/identify", same}, {"/v1/page", same}, {"/v1/screen", same}, {"/v1/group", same}, {"/v1/alias", same},
		{"/v1/i", same}, {"/v1/p", same}, // retries of the identify and the page by their short forms
		{"/v1/batch", batch}, {"/v1/batch", batch},
	} {
		if code, body := s.track(t, c.path, c.body); code != 200 {
			t.Fatalf("POST %s %s: %d %s", c.path, c.body, code, body)
		}
	}
	rtwin := `{"type":"track","userId":"dt-rtwin","event":"DT RAdd","timestamp":"2026-11-29T10:00:00Z","properties":{"sku":"A"}}`
	for range 2 {
		s.replayLines(t, []string{rtwin, rtwin, `{"batch":[` + strings.ReplaceAll(rtwin, "DT RAdd", "DT RBatch") + `,` + strings.ReplaceAll(rtwin, "DT RAdd", "DT RBatch") + `]}`})
	}
	s.waitStored(t)

	types := queryStrings(t, "SELECT concat(type, ' ', toString(uniqExact(message_id))) FROM "+s.database+".events WHERE user_id = 'dt-u' GROUP BY type ORDER BY type")
	if want := []string{"alias 1", "group 1", "identify 1", "page 1", "screen 1"}; !slices.Equal(types, want) {
		t.Errorf("one body to five endpoints (and two again) stored as %v, want %v", types, want)
	}
	for event, want := range map[string]string{"DT Add": "2", "DT RAdd": "2", "DT RBatch": "2"} {
		got := queryStrings(t, "SELECT toString(uniqExact(message_id)) FROM "+s.database+".events WHERE event = ?", event)
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v events stored, want %s", event, got, want)
		}
	}
	for _, steps := range []string{"DT Add,DT Add", "DT RAdd,DT RAdd", "DT RBatch,DT RBatch"} {
		f := s.funnel(t, steps, "1h")
		if len(f.Steps) != 2 || f.Steps[0].Customers != 1 || f.Steps[1].Customers != 1 {
			t.Errorf("funnel %s = %+v, want [1 1]", steps, f.Steps)
		}
	}
}
