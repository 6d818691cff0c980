package web

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
)

// TestPageCannotBeFramed: the page and its assets tell browsers that no other site may frame them
// (tester 15: the page could be framed by any site) and not to sniff their types.
func TestPageCannotBeFramed(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux)
	for _, tt := range []struct{ path, body string }{
		{"/", "<html"},
		{"/ui/app.js", "function"},
		{"/ui/style.css", "{"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		h := rec.Header()
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("GET %s: %d, body without %q", tt.path, rec.Code, tt.body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self' and frame-ancestors 'none'", tt.path, csp)
		}
		if got := h.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", tt.path, got)
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tt.path, got)
		}
	}
}

// TestWindowPatternTakesWhatTheAPITakes: the page's window field accepts the windows the API
// reads (store.ParseWindow, then FunnelQuery.Validate: positive Go durations such as 1h30m,
// and whole days) and flags the ones it
// refuses, so that the browser never stops a query the API would answer (tester 15: 1h30m was
// refused by the field).
func TestWindowPatternTakesWhatTheAPITakes(t *testing.T) {
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`name="window"[^>]*pattern="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no pattern on the window field")
	}
	pattern := regexp.MustCompile("^(?:" + html.UnescapeString(string(m[1])) + ")$") // as a browser anchors it
	for _, tt := range []struct {
		window string
		ok     bool
	}{
		{"30m", true}, {"24h", true}, {"7d", true}, {"1h30m", true}, {"90s", true}, {"1.5h", true}, {".5h", true},
		{"500ms", true}, {"2h45m30s", true}, {"366d", true},
		{"", true}, {"h", false}, {"1 h", false}, {"7 days", false}, {"-5m", false}, {"1.5d", false}, {"1d12h", false}, {"24", false},
	} {
		v := url.Values{"steps": {"A"}}
		if tt.window != "" { // the page leaves out a field it has empty (app.js given): the default
			v.Set("window", tt.window)
		}
		q, perr := store.ParseFunnelQuery(v)
		if perr == nil {
			perr = q.Validate()
		}
		got := tt.window == "" || pattern.MatchString(tt.window) // a browser checks no pattern on an empty field
		if got != tt.ok || (perr == nil) != tt.ok {
			t.Errorf("window %q: the field's pattern takes it %v, the API %v; want both %v", tt.window, got, perr == nil, tt.ok)
		}
	}
}
