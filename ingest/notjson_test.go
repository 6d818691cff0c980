package ingest

import (
	"strings"
	"testing"
)

// TestCollectorSaysTextIsNotJSON (tester 48's F4): a text or CSV body is answered 400 naming the
// body, with the words replay uses for such a line (wire.read), not the scanner's "invalid
// character 'h' looking for a value at byte 0". JSON broken further on, and a JSON value that is
// no object, keep their own words.
func TestCollectorSaysTextIsNotJSON(t *testing.T) {
	e := startCollector(t, nil)
	for _, tt := range []struct {
		name, path, body string
		want             string // the answer's error
	}{
		{"text to /v1/batch", "/v1/batch", "hello world", "not JSON: text starting with 'h'; the body must be a JSON object"},
		{"CSV row to /v1/track", "/v1/track", "a,b,c", "not JSON: text starting with 'a'; the body must be a JSON object"},
		{"CSV of numbers to /v1/batch", "/v1/batch", "1,2,3\n4,5,6\n", "not JSON: text starting with '1'; the body must be a JSON object"},
		{"text after spaces", "/v1/identify", "  type,userId", "not JSON: text starting with 't'; the body must be a JSON object"},
		{"a PNG to /v1/batch", "/v1/batch", "\x89PNG\r\n\x1a\n\x00\x00", "not JSON: binary data starting with byte 0x89 (a PNG image); the body must be a JSON object"},
		{"binary to /v1/track", "/v1/track", "\x00\x17\xe2", "not JSON: binary data starting with byte 0x00; the body must be a JSON object"},
		{"broken JSON", "/v1/track", `{"event":`, "malformed JSON: unexpected end of JSON at byte 9"},
		{"an array", "/v1/batch", `[1,2]`, "malformed JSON: the body must be a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := e.do(t, call{path: tt.path, headers: basicWeb, body: []byte(tt.body)})
			if status != 400 || body["field"] != "body" || body["error"] != tt.want {
				t.Errorf("status %d, body %v; want 400 naming field body with error %q", status, body, tt.want)
			}
		})
	}
}

// TestOttoSaysTextIsNotJSON (tester 48's F6): a line of text or a CSV row replayed as otto is
// skipped as "not JSON", as segment says of it, not with encoding/json's "invalid character 'y' in
// literal true (expecting 'r')". JSON broken further on keeps the decoder's words.
func TestOttoSaysTextIsNotJSON(t *testing.T) {
	for _, tt := range []struct{ line, want string }{
		{"type,userId,event", "not JSON: text starting with 't'; an OTTO line is one JSON object"},
		{"hello world", "not JSON: text starting with 'h'; an OTTO line is one JSON object"},
		{"1,2,3", "not JSON: text starting with '1'; an OTTO line is one JSON object"},
		{"\xa7\x03\x9b", "not JSON: binary data, or text not in UTF-8, starting with byte 0xa7; an OTTO line is one JSON object"},
		{`{"session":1,"events":[`, "invalid JSON: unexpected end of JSON input"},
	} {
		t.Run(tt.line, func(t *testing.T) {
			var skips []Skip
			err := readOtto(strings.NewReader(tt.line+"\n"), 0, func(Message) error { return nil }, func(s Skip) { skips = append(skips, s) })
			if err != nil || len(skips) != 1 || skips[0].Reason != tt.want {
				t.Errorf("readOtto(%q): error %v, skips %+v; want one skip %q", tt.line, err, skips, tt.want)
			}
		})
	}
}
