package ingest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzDecode: any bytes either decode into an event with an identity and a sane time, or fail
// with an InvalidError that names a reason; nothing panics. Valid JSON written back by the
// collector's writer is valid JSON with the same meaning.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"track","event":"A","userId":"u","timestamp":"2026-01-01T00:00:00Z","properties":{"a":1,"b":"x"}}`,
		`{"type":"page","anonymousId":7,"context":{"page":{"path":"/"},"campaign":{"medium":"email"},"sessionId":3}}`,
		`{"type":"alias","userId":"u","previousId":"a"}`,
		`{"type":"track"`, `[]`, `null`, `{"type":"track","event":"A","userId":{}}`,
		`{"a":"\u0001\"\\\u00e9\ud83d\ude00\u2028","b":[1.50,-0,1e3,true,null,{}],"\u0063":{"d":[]}}`,
	} {
		f.Add([]byte(seed))
	}
	received := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkRewrite(t, raw)
		e, err := Decode(raw, "fuzz", received)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if e.CustomerKey() == "" || e.MessageID == "" || !InTimeRange(e.Timestamp) {
			t.Fatalf("accepted an unusable event: %+v", e)
		}
		if len(e.PropertyKeys) != len(e.PropertyValues) {
			t.Fatalf("property keys and values differ in length")
		}
	})
}

// checkRewrite checks the scanner against encoding/json: it accepts exactly the texts
// encoding/json reads, but for nesting deeper than maxJSONDepth (its own limit), and an object it takes apart and puts back together with appendObject
// (one member dropped, one added) means what encoding/json says it should.
func checkRewrite(t *testing.T, raw []byte) {
	s := &jsonScanner{data: raw}
	_, err := s.value()
	if err == nil {
		err = s.end()
	}
	var tooDeep *depthError
	if valid := json.Valid(raw); valid != (err == nil) && !(valid && errors.As(err, &tooDeep)) {
		t.Fatalf("scanner error %v, encoding/json valid = %v", err, valid)
	}
	if err != nil {
		return
	}
	var want map[string]any
	if json.Unmarshal(raw, &want) != nil || want == nil {
		return
	}
	members, err := objectMembers(raw, nil)
	if err != nil {
		t.Fatalf("members of a valid object: %v", err)
	}
	var drop string
	if len(members) > 0 {
		drop = string(members[0].name)
	}
	out := appendObject(nil, raw, members, []string{drop}, []field{{"added", []byte(`[1]`)}})
	delete(want, drop)
	want["added"] = []any{1.0}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q put back together as invalid JSON %q: %v", raw, out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q put back together as %q: read back %v, want %v", raw, out, got, want)
	}
}

// TestSkipDeepAcceptsWhatEncodingJSONReads: past maxJSONDepth the scanner reads a value without
// recursing (skipDeep), and takes exactly the texts encoding/json reads (tester 31's F5: text
// that is no JSON was taken inside a deep value), whatever the value holds after the depth.
func TestSkipDeepAcceptsWhatEncodingJSONReads(t *testing.T) {
	deep := func(inner string) string {
		return strings.Repeat(`[{"k":`, 300) + inner + strings.Repeat(`}]`, 300)
	}
	for _, inner := range []string{
		`1`, `"s"`, `"a]}\"["`, `[]`, `{}`, `[1,2,{"a":[true,false,null]}]`, `{"a":1,"b":{"c":"]"}}`, `-1.5e3`,
		`{"a" 1}`, `[1 2]`, `[1,]`, `{"a":1,}`, `{,}`, `tru`, `"unterminated`, `01`, `[}`, `{]`, `{"a":}`, `bare`, `"\x"`,
	} {
		raw := []byte(deep(inner))
		s := &jsonScanner{data: raw}
		_, err := s.value()
		if !errors.As(err, new(*depthError)) {
			t.Fatalf("%s: %v, want a depth error first", inner, err)
		}
		err = s.skipDeep(0, 0)
		if err == nil {
			err = s.end()
		}
		if valid := json.Valid(raw); valid != (err == nil) {
			t.Errorf("deep %s: skipDeep error %v, encoding/json valid = %v", inner, err, valid)
		}
	}
}
