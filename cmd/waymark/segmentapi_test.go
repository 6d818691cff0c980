package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// post sends body to path of s with the given headers (the write key among them, as the client
// sends it) and returns the status, the Content-Type and the answer.
func (s *server) post(t *testing.T, path string, headers map[string]string, body []byte) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.http+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(answer)
}

// checkScraped compares each series of want with its value on addr's /metrics (scrapedValue), an
// error for each that differs.
func checkScraped(t *testing.T, addr string, want map[string]float64) {
	t.Helper()
	metrics := scrape(t, addr)
	for series, w := range want {
		if got := scrapedValue(metrics, series); got != w {
			t.Errorf("%s = %v, want %v", series, got, w)
		}
	}
}

// scrapedValue returns the value of the sample of a /metrics scrape whose line starts with
// series (name and labels as Prometheus writes them, in their order), 0 when there is none.
func scrapedValue(metrics, series string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestServerLibrariesPostToImport: the requests analytics-ruby and analytics-java send, as they
// send them (neither library can be installed here, so each request is built as its source
// writes it: POST /v1/import, the write key as the Basic auth user with an empty password, JSON
// with sentAt and batch; analytics-java with its batch-level context and sequence, gzipped), are
// stored; so is a batch posted to /v1/batch/; a path under /v1/ that is no endpoint gets a JSON
// 404 naming it, counted. Before, /v1/import answered a text 404 counted nowhere, and both
// libraries, which never retry a 4xx, dropped every event.
func TestServerLibrariesPostToImport(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"))
	now := time.Now().UTC()

	// analytics-ruby (lib/segment/analytics/transport.rb and defaults.rb): Net::HTTP::Post to
	// PATH '/v1/import' with HEADERS Accept and Content-Type application/json, basic_auth(write_key,
	// nil), body {"sentAt":…,"batch":[…]}, times as datetime_in_iso8601 (microseconds, +00:00).
	rubyTime := now.Format("2006-01-02T15:04:05.000000-07:00")
	ruby := `{"sentAt":"` + rubyTime + `","batch":[{"context":{"library":{"name":"analytics-ruby","version":"2.4.0"}},` +
		`"messageId":"ruby-1","timestamp":"` + rubyTime + `","userId":"rb1","type":"track","event":"Order Completed","properties":{"revenue":10}}]}`
	status, ctype, answer := s.post(t, "/v1/import", map[string]string{"Authorization": basic, "Accept": "application/json",
		"Content-Type": "application/json", "User-Agent": "Ruby"}, []byte(ruby))
	if status != 200 || !strings.Contains(answer, `"accepted":1`) {
		t.Errorf("analytics-ruby's POST /v1/import: %d %s %s, want 200 with 1 accepted", status, ctype, answer)
	}

	// analytics-java (SegmentService: @POST("/v1/import") upload(@Body Batch batch)): a Batch of
	// batch, sentAt, context (the library) and sequence, from OkHttp with its User-Agent.
	javaTime := now.Format("2006-01-02T15:04:05.000Z")
	java := `{"batch":[{"type":"track","messageId":"java-1","timestamp":"` + javaTime + `","userId":"jv1","event":"Product Viewed",` +
		`"properties":{"product_id":"p1"},"context":{"ip":"203.0.113.9"},"integrations":{}}],"sentAt":"` + javaTime + `",` +
		`"context":{"library":{"name":"analytics-java","version":"3.5.1"}},"sequence":0}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(java))
	zw.Close()
	status, ctype, answer = s.post(t, "/v1/import", map[string]string{"Authorization": basic, "Content-Type": "application/json; charset=UTF-8",
		"Content-Encoding": "gzip", "User-Agent": "analytics-java/3.5.1"}, gz.Bytes())
	if status != 200 || !strings.Contains(answer, `"accepted":1`) {
		t.Errorf("analytics-java's POST /v1/import: %d %s %s, want 200 with 1 accepted", status, ctype, answer)
	}

	status, _, answer = s.post(t, "/v1/batch/", map[string]string{"Authorization": basic},
		[]byte(`{"batch":[{"type":"track","userId":"sl1","event":"Product Viewed","messageId":"slash-1"}]}`))
	if status != 200 {
		t.Errorf("POST /v1/batch/: %d %s, want 200", status, answer)
	}
	for _, path := range []string{"/v1/trak", "/v1/batch/x"} {
		status, ctype, answer = s.post(t, path, map[string]string{"Authorization": basic}, []byte(ruby))
		var body struct{ Error, Field, Path string }
		if err := json.Unmarshal([]byte(answer), &body); status != 404 || err != nil || ctype != "application/json" || body.Path != path || body.Field != "path" || body.Error == "" {
			t.Errorf("POST %s: %d %s %s, want a JSON 404 naming the path", path, status, ctype, answer)
		}
	}

	s.waitStored(t)
	if got := storedIDs(t, s.database, "test"); !slices.Equal(got, []string{"java-1", "ruby-1", "slash-1"}) {
		t.Errorf("stored messageIds %v, want java-1, ruby-1, slash-1", got)
	}
	// The Java batch's context reached its event, beside the event's own.
	raw := queryStrings(t, "SELECT raw FROM "+s.database+".events WHERE message_id = 'java-1'")
	if len(raw) != 1 || !strings.Contains(raw[0], `"context":{"ip":"203.0.113.9","library":{"name":"analytics-java","version":"3.5.1"}}`) {
		t.Errorf("java-1 stored as %v, want its context with the batch's library", raw)
	}
	checkScraped(t, s.http, map[string]float64{
		`waymark_collector_requests_total{code="404",endpoint="unknown"}`: 2,
		`waymark_collector_requests_total{code="200",endpoint="batch"}`:   3,
	})
}

// TestBatchContextReachesEveryEvent: the tester's call: a batch's context (campaign, traits)
// merged into an event with a context of its own, which used to drop it and store the visit as
// direct: the channel is email, the campaign and the trait are stored.
func TestBatchContextReachesEveryEvent(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	status, answer := s.track(t, "/v1/batch", `{"context":{"campaign":{"source":"newsletter","medium":"email"},"traits":{"seg":"x"}},`+
		`"batch":[{"type":"page","anonymousId":"bc1","name":"BC","messageId":"bc1","context":{"page":{"path":"/home"}}},`+
		`{"type":"page","anonymousId":"bc2","name":"BC","messageId":"bc2","context":{"campaign":{"source":"google","medium":"cpc"}}}]}`)
	if status != 200 || !strings.Contains(answer, `"accepted":2`) {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	got := queryStrings(t, "SELECT concat(message_id, ' ', channel, ' ', campaign_source, '/', campaign_medium, ' ', page_path, ' seg=', "+
		"if(has(prop_keys, 'traits.seg'), prop_values[indexOf(prop_keys, 'traits.seg')], '')) FROM "+s.database+".events ORDER BY message_id")
	want := []string{"bc1 email newsletter/email /home seg=x", "bc2 paid_search google/cpc  seg=x"}
	if !slices.Equal(got, want) {
		t.Errorf("stored\n%v\nwant\n%v", got, want)
	}
}

// TestSocialAdsAreCountedAsPaidSocial is the tenth tester's H1: ads tagged as Meta's URL builder
// and most shops tag them (utm_source=facebook, not facebook.com; medium cpc or paid) were counted
// as paid search or other. By Google Analytics 4's default channel group a paid medium from a
// social network is paid social; a social network with an unpaid medium is social.
func TestSocialAdsAreCountedAsPaidSocial(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	page := func(id, query string) string {
		return `{"type":"page","anonymousId":"ch-` + id + `","name":"Landing","messageId":"ch-` + id + `","timestamp":"2025-08-05T10:00:01Z",` +
			`"context":{"page":{"url":"https://shop.example/?` + query + `"}}}`
	}
	status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join([]string{
		page("fbcpc", "utm_source=facebook&utm_medium=cpc"),
		page("fbpaid", "utm_source=facebook&utm_medium=paid"),
		page("igcpc", "utm_source=instagram&utm_medium=cpc"),
		page("fbpost", "utm_source=facebook&utm_medium=post"),
		page("gcpc", "utm_source=google&utm_medium=cpc"),
	}, ",")+`]}`)
	if status != 200 {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	got := queryStrings(t, "SELECT concat(message_id, ' ', channel) FROM "+s.database+".events ORDER BY message_id")
	want := []string{"ch-fbcpc paid_social", "ch-fbpaid paid_social", "ch-fbpost social", "ch-gcpc paid_search", "ch-igcpc paid_social"}
	if !slices.Equal(got, want) {
		t.Errorf("stored channels\n%v\nwant\n%v", got, want)
	}
	if sum := s.sessions(t); !maps.Equal(sum.ByEntryChannel, map[string]uint64{"paid_social": 3, "social": 1, "paid_search": 1}) {
		t.Errorf("sessions by entry channel %v, want paid_social 3, social 1, paid_search 1", sum.ByEntryChannel)
	}
}

// TestFutureTimestampsAreTheReceiveTime: an event time more than 23 hours after the event was
// received (30 days ahead with a batch sentAt of now, 2099-12-31) is stored at its receive time,
// the client's kept as originalTimestamp, through the collector and straight through Kafka,
// counted by path; one 22 hours ahead stands; `waymark replay` of an export moves such a line to
// its receivedAt, and says so: straight to Kafka the consumer moves it and counts it (it used to
// be moved by replay and counted in no metric), through a collector replay moves it.
func TestFutureTimestampsAreTheReceiveTime(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	now := time.Now().UTC()
	iso := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	ahead30, ahead22 := iso(now.AddDate(0, 0, 30)), iso(now.Add(22*time.Hour))
	const y2099 = "2099-12-31T23:59:59.000Z"
	track := func(id, times string) string {
		return `{"type":"track","userId":"` + id + `","event":"Product Viewed","messageId":"` + id + `",` + times + `}`
	}
	status, answer := s.track(t, "/v1/batch", `{"sentAt":"`+iso(now)+`","batch":[`+
		track("http-30d", `"timestamp":"`+ahead30+`"`)+","+track("http-22h", `"timestamp":"`+ahead22+`"`)+`]}`)
	if status != 200 || !strings.Contains(answer, `"accepted":2`) {
		t.Errorf("POST /v1/batch: %d %s", status, answer)
	}
	if status, answer := s.track(t, "/v1/track", track("http-2099", `"timestamp":"`+y2099+`"`)); status != 200 {
		t.Errorf("POST /v1/track: %d %s", status, answer)
	}
	produceWithKcat(t, s.broker, []string{
		track("kafka-2099", `"timestamp":"`+y2099+`"`),
		track("kafka-30d", `"timestamp":"`+ahead30+`","sentAt":"`+iso(now)+`"`),
	})
	out := s.replayLines(t, []string{track("replay-2099", `"timestamp":"`+y2099+`","receivedAt":"2026-11-01T10:00:00.000Z"`)})
	if !strings.Contains(out, "1 events had a timestamp more than 23h0m0s after their receive time") {
		t.Errorf("replay output:\n%s\nwant it to say one event was moved", out)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(track("replay-http-2099", `"timestamp":"`+y2099+`","receivedAt":"2026-11-01T10:00:00.000Z"`)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.waymark(t, "replay", "--format", "segment", "--file", file, "--collector", "http://"+s.http, "--write-key", "test-key")
	if !strings.Contains(out, "1 events had a timestamp more than 23h0m0s after their receive time") {
		t.Errorf("replay --collector output:\n%s\nwant it to say one event was moved", out)
	}
	s.waitStored(t)
	got := map[string]string{}
	for _, row := range queryStrings(t, "SELECT concat(message_id, ' ', toString(ts_ms = received_at_ms), ' ', toString(ts_ms), ' ', toString(original_ts_ms)) FROM "+s.database+".events") {
		f := strings.Fields(row)
		got[f[0]] = strings.Join(f[1:], " ")
	}
	ms := func(text string) string {
		t, _ := time.Parse(time.RFC3339, text)
		return fmt.Sprint(t.UnixMilli())
	}
	want := map[string]string{ // at the receive time?, the time stored, the client's
		"http-30d":    "1 ? " + ms(ahead30),
		"http-2099":   "1 ? " + ms(y2099),
		"kafka-2099":  "1 ? " + ms(y2099),
		"kafka-30d":   "1 ? " + ms(ahead30),
		"http-22h":    "0 " + ms(ahead22) + " " + ms(ahead22),
		"replay-2099": "1 " + ms("2026-11-01T10:00:00Z") + " " + ms(y2099),
		// Through a collector, whose clock is not the line's receivedAt: replay moved it.
		"replay-http-2099": "0 " + ms("2026-11-01T10:00:00Z") + " " + ms(y2099),
	}
	for id, w := range want {
		g := got[id]
		if f := strings.Fields(w); f[1] == "?" && len(strings.Fields(g)) == 3 {
			f[1] = strings.Fields(g)[1] // the receive time, whatever it was
			w = strings.Join(f, " ")
		}
		if g != w {
			t.Errorf("%s stored as %q (at the receive time, time, originalTimestamp), want %q", id, g, w)
		}
	}
	// The consumer counts the replayed message it moved (replay-2099) as it counts the others; the
	// one replay moved before a collector took it is counted in replay's summary alone.
	checkScraped(t, s.http, map[string]float64{`waymark_future_timestamps_total{path="collector"}`: 2, `waymark_future_timestamps_total{path="consumer"}`: 3})
}

// TestBlankEventsAliasesAndURLCampaigns: a track with a blank event name and an alias without
// previousId are refused on every path (400 naming the field, listed in a batch's answer,
// dead-lettered from Kafka, counted by path and reason); a page whose URL carries utm_source and
// utm_medium, without context.campaign, is attributed to that campaign's channel on every path,
// and a context.campaign of its own wins over the URL.
func TestBlankEventsAliasesAndURLCampaigns(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	blank := `{"type":"track","userId":"b1","event":" \t ","messageId":"%s"}`
	alias := `{"type":"alias","userId":"b1","messageId":"%s"}`
	for _, tt := range []struct{ path, body, field string }{
		{"/v1/track", fmt.Sprintf(blank, "s-blank"), "event"},
		{"/v1/alias", fmt.Sprintf(alias, "s-alias"), "previousId"},
	} {
		status, answer := s.track(t, tt.path, tt.body)
		var body struct{ Field string }
		json.Unmarshal([]byte(answer), &body)
		if status != 400 || body.Field != tt.field {
			t.Errorf("POST %s %s: %d %s, want 400 naming %s", tt.path, tt.body, status, answer, tt.field)
		}
	}
	status, answer := s.track(t, "/v1/batch", `{"batch":[`+fmt.Sprintf(blank, "b-blank")+`,`+fmt.Sprintf(alias, "b-alias")+`]}`)
	if status != 200 || !strings.Contains(answer, `"field":"batch[0].event"`) || !strings.Contains(answer, `"reason":"missing_previous_id","field":"batch[1].previousId"`) {
		t.Errorf("POST /v1/batch: %d %s, want both refused, naming batch[0].event and batch[1].previousId", status, answer)
	}

	url := `https://shop.example/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring`
	page := func(id string) string {
		return `{"type":"page","anonymousId":"` + id + `","name":"Landing","messageId":"` + id + `","context":{"page":{"url":"` + url + `"}}}`
	}
	if status, answer := s.track(t, "/v1/page", page("utm-http")); status != 200 {
		t.Errorf("POST /v1/page: %d %s", status, answer)
	}
	if status, answer := s.track(t, "/v1/batch", `{"batch":[{"type":"page","anonymousId":"utm-own","name":"Landing","messageId":"utm-own",`+
		`"context":{"campaign":{"source":"google","medium":"cpc"},"page":{"url":"`+url+`"}}}]}`); status != 200 {
		t.Errorf("POST /v1/batch: %d %s", status, answer)
	}
	produceWithKcat(t, s.broker, []string{fmt.Sprintf(blank, "k-blank"), fmt.Sprintf(alias, "k-alias"), page("utm-kafka")})
	s.replayLines(t, []string{page("utm-replay")})
	s.waitStored(t)

	got := queryStrings(t, "SELECT concat(message_id, ' ', channel, ' ', campaign_source, '/', campaign_medium, '/', campaign_name) FROM "+s.database+".events ORDER BY message_id")
	want := []string{"utm-http email newsletter/email/spring", "utm-kafka email newsletter/email/spring",
		"utm-own paid_search google/cpc/", "utm-replay email newsletter/email/spring"}
	if !slices.Equal(got, want) {
		t.Errorf("stored\n%v\nwant\n%v", got, want)
	}
	checkScraped(t, s.http, map[string]float64{
		`waymark_dlq_messages_total{path="collector",reason="missing_event"}`:       2,
		`waymark_dlq_messages_total{path="collector",reason="missing_previous_id"}`: 2,
		`waymark_dlq_messages_total{path="consumer",reason="missing_event"}`:        1,
		`waymark_dlq_messages_total{path="consumer",reason="missing_previous_id"}`:  1,
	})
	dead, err := readDLQ(t.Context(), s.broker)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dead["missing_previous_id"], `"type":"alias"`) {
		t.Errorf("dead letters %v: want the alias without previousId among them", dead)
	}
}

// TestBatchMembersAndPathsAreRefusedWhole: fresh testers' calls. A batch whose own member is
// malformed (Segment's HTTP API defines batch, context and integrations as objects besides the
// writeKey and sentAt the libraries send) is refused whole when of the wrong type, 400 naming the
// member (a sentAt string that is no time refuses each event that takes it instead, each
// dead-lettered: TestInvalidTimestampsAreRefusedLoudly), counted as
// the other refused requests, nothing stored and each event dead-lettered (no Segment library
// retries a 4xx): before, a context "str" answered 200 and blamed each event as batch[i].context. Every path under /v1 that is no endpoint
// gets the JSON 404 naming it as sent, as does one that names /v1 only once cleaned (//v1/batch,
// the path of a client whose host ends in a slash): before, /v1, /v1/import//, /v1//batch and //v1/batch answered
// ServeMux's redirect without a body, and /v1/batch%2F was taken as a batch.
func TestBatchMembersAndPathsAreRefusedWhole(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"))}
	good := `{"type":"track","userId":"bm1","event":"Product Viewed","messageId":"bm-%d"}`
	refused := []struct{ body, field string }{
		{`{"context":"str","batch":[` + good + `]}`, "context"},
		{`{"batch":[` + good + `],"context":[{"ip":"203.0.113.9"}]}`, "context"},
		{`{"batch":[` + good + `],"context":{"campaign":"spring"}}`, "context.campaign"},
		{`{"batch":[` + good + `],"integrations":"All"}`, "integrations"},
		{`{"batch":[` + good + `],"sentAt":1715767200}`, "sentAt"},
		{`{"batch":[` + good + `],"writeKey":["test-key"]}`, "writeKey"},
	}
	for i, tt := range refused {
		sent := fmt.Sprintf(tt.body, i)
		status, ctype, answer := s.post(t, "/v1/batch", auth, []byte(sent))
		var body struct{ Error, Field string }
		if err := json.Unmarshal([]byte(answer), &body); status != 400 || err != nil || ctype != "application/json" || body.Field != tt.field || body.Error == "" {
			t.Errorf("POST /v1/batch %s: %d %s %s, want a JSON 400 naming %s", sent, status, ctype, answer, tt.field)
		}
	}
	status, _, answer := s.post(t, "/v1/batch", auth, []byte(`{"batch":[`+fmt.Sprintf(good, 99)+`],"context":null,"integrations":{"All":true},"sentAt":null}`))
	if status != 200 || !strings.Contains(answer, `"accepted":1`) {
		t.Errorf("POST /v1/batch with null and object members: %d %s, want 200 with 1 accepted", status, answer)
	}

	// A client that follows no redirect sees what the server answers.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	paths := []string{"/v1", "/v1/import//", "/v1//batch", "/v1/batch%2F", "/v1/./batch", "/v1/projects/test-key/settings/", "//v1/batch", "/./v1/track", "//batch", "/api/../v1/batch", "/V1/batch", "/%2Fv1/track"}
	for _, path := range paths {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			req, err := http.NewRequest(method, "http://"+s.http+path, strings.NewReader(`{"batch":[`+fmt.Sprintf(good, 100)+`]}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", auth["Authorization"])
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body struct{ Error, Field, Path string }
			if err := json.Unmarshal(raw, &body); resp.StatusCode != 404 || err != nil || body.Path != path || body.Field != "path" || body.Error == "" {
				t.Errorf("%s %s: %d %s %s, want a JSON 404 naming the path", method, path, resp.StatusCode, resp.Header.Get("Location"), raw)
			}
		}
	}
	// The settings analytics.js loads are still served.
	if status, answer := httpGet(t, "http://"+s.http+"/v1/projects/test-key/settings"); status != 200 || !strings.Contains(answer, "Segment.io") {
		t.Errorf("GET /v1/projects/test-key/settings: %d %s", status, answer)
	}

	s.waitStored(t)
	if got := storedIDs(t, s.database, "test"); !slices.Equal(got, []string{"bm-99"}) {
		t.Errorf("stored messageIds %v, want bm-99 alone", got)
	}
	metrics := scrape(t, s.http)
	for series, want := range map[string]float64{
		`waymark_collector_requests_total{code="400",endpoint="batch"}`:   float64(len(refused)),
		`waymark_collector_requests_total{code="404",endpoint="unknown"}`: float64(2 * len(paths)),
		`waymark_collector_requests_total{code="200",endpoint="batch"}`:   1,
	} {
		if got := scrapedValue(metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Each refused request's event went to the dead-letter topic (counted once written there),
	// as no Segment library retries a 400; nothing else did.
	for _, line := range strings.Split(metrics, "\n") {
		const mine = `waymark_dlq_messages_total{path="collector",reason="invalid_field"}`
		if strings.HasPrefix(line, "waymark_dlq_messages_total{") && !strings.HasPrefix(line, mine) && !strings.HasSuffix(line, " 0") {
			t.Errorf("dead-lettered: %s", line)
		}
	}
	if n := metricValue(t, metrics, `waymark_dlq_messages_total{path="collector",reason="invalid_field"}`); int(n) != len(refused) {
		t.Errorf("%v events of the refused batches dead-lettered, want %d", n, len(refused))
	}
}
