package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestHeaderFieldsTooLargeNameTheCauseOnly: a 431 names a header (param in the query API's
// answer, field in the tracking API's) only when that header alone makes the fields too long,
// the others fitting without it; fields too many, none of them the cause, are answered with how
// many there are and their bytes, naming none (tester F5: 20,000 fields of X-i: v named the
// caller's 26-byte Authorization).
func TestHeaderFieldsTooLargeNameTheCauseOnly(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("x", n) }
	many := func(h http.Header, n int) {
		for i := range n {
			h.Set("X-"+strconv.Itoa(i), "v")
		}
	}
	tests := []struct {
		name   string
		header func(http.Header)
		status int
		named  string // the header named, "" for none
		says   string // in the error
	}{
		{"within the limit", func(h http.Header) { h.Set("X-Padding", pad(60<<10)) }, 200, "", ""},
		{"20,000 small fields", func(h http.Header) { many(h, 20000) }, 431, "", "20001 header fields are "},
		{"one long field", func(h http.Header) { h.Set("X-Padding", pad(100<<10)) }, 431, "X-Padding", `"X-Padding" is 102413 bytes`},
		{"one name sent 70 times", func(h http.Header) {
			for range 70 {
				h.Add("X-Padding", pad(1000))
			}
		}, 431, "X-Padding", `"X-Padding" is 70910 bytes`},
		{"two long fields, either the cause", func(h http.Header) { h.Set("X-A", pad(40<<10)); h.Set("X-B", pad(41<<10)) }, 431, "X-B", `"X-B" is`},
		{"a long field among many, the others too many without it", func(h http.Header) { many(h, 20000); h.Set("X-Padding", pad(40<<10)) }, 431, "", "20002 header fields are "},
	}
	for _, api := range []struct{ path, member string }{{"/api/v1/funnel?steps=A", "param"}, {"/v1/track", "field"}} {
		for _, tt := range tests {
			t.Run(api.member+": "+tt.name, func(t *testing.T) {
				r := httptest.NewRequest(http.MethodGet, api.path, nil)
				r.Header.Set("Authorization", "Bearer "+testReadKey)
				tt.header(r.Header)
				w := httptest.NewRecorder()
				limitHead(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).ServeHTTP(w, r)
				if w.Code != tt.status {
					t.Fatalf("%d %.300s, want %d", w.Code, w.Body, tt.status)
				}
				if tt.status == 200 {
					return
				}
				if msg := checkNamed(t, w, api.member, tt.named, tt.says); tt.named == "" && strings.Contains(msg, "Authorization") {
					t.Errorf("error %q names Authorization, which is not the cause", msg)
				}
			})
		}
	}
}

// TestURLTooLongNamesTheCauseOnly: a URL over maxURLBytes is answered 414 naming its longest
// query parameter (or "url", its path) only when the rest fits without it, as a 431 names a
// header: a thousand short parameters are no one parameter's fault.
func TestURLTooLongNamesTheCauseOnly(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "&p%d=%s", i, pad(50))
		}
		return b.String()
	}
	tests := []struct {
		name   string
		target string // after the API's path: its query string, or a longer path
		status int
		named  string // the part named, "" for none
		says   string // in the error
	}{
		{"within the limit", "&pad=" + pad(60<<10), 200, "", ""},
		{"one long parameter", "&pad=" + pad(70<<10), 414, "pad", `parameter "pad" is 71684 bytes`},
		{"2,000 short parameters", many(2000), 414, "", "in 2001 query parameters, and no one of them is the cause"},
		{"a long parameter among many, the others too many without it", many(2000) + "&pad=" + pad(10<<10), 414, "", "in 2002 query parameters"},
	}
	for _, api := range []struct{ path, member string }{{"/api/v1/funnel?steps=A", "param"}, {"/v1/track?x=1", "field"}} {
		for _, tt := range tests {
			t.Run(api.member+": "+tt.name, func(t *testing.T) {
				r := httptest.NewRequest(http.MethodGet, api.path+tt.target, nil)
				w := httptest.NewRecorder()
				limitHead(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).ServeHTTP(w, r)
				if w.Code != tt.status {
					t.Fatalf("%d %.300s, want %d", w.Code, w.Body, tt.status)
				}
				if tt.status == 200 {
					return
				}
				checkNamed(t, w, api.member, tt.named, tt.says)
			})
		}
	}
}

// checkNamed checks a refusal's JSON answer in w: its member (param or field) is named, or absent
// when named is "" (no one part is the cause), and its error says says. It returns the error.
func checkNamed(t *testing.T, w *httptest.ResponseRecorder, member, named, says string) string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%v: %.300s", err, w.Body)
	}
	got, ok := body[member]
	switch {
	case named == "" && ok:
		t.Errorf("%s = %q, want none: no one part is the cause: %.300s", member, got, w.Body)
	case named != "" && got != named:
		t.Errorf("%s = %v, want %q: %.300s", member, got, named, w.Body)
	}
	msg, _ := body["error"].(string)
	if !strings.Contains(msg, says) {
		t.Errorf("error %q, want it to say %q", msg, says)
	}
	return msg
}
