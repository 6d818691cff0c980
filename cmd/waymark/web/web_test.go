package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
