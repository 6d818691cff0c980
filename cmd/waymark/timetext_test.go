package main

import (
	"net/url"
	"strings"
	"testing"
)

// TestTimesPrintWithTheirFraction: a tester's microseconds. Times are kept to the µs, but the
// funnel's footer printed --from 2025-05-01T10:00:00.0004Z as 10:00:00Z, the API's 400 said
// "from: 2025-05-01T10:00:00Z is not before to 2025-05-01T10:00:00Z" for .000300Z, and
// --window 1us printed "window 0h". Each now prints with the fraction it has, and none when it
// has none.
func TestTimesPrintWithTheirFraction(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	postTrack(t, s, `{"batch":[{"type":"track","userId":"tf1","event":"TF Step","messageId":"tf-1","timestamp":"2025-05-01T10:00:00.0004Z"}]}`)
	s.waitStored(t)

	for _, tt := range []struct {
		args       []string
		wantFooter string
	}{
		{[]string{"--from", "2025-05-01T10:00:00.0004Z", "--to", "2025-05-01T10:00:00.0005Z", "--window", "1us"},
			"window 1µs, from 2025-05-01T10:00:00.0004Z, to 2025-05-01T10:00:00.0005Z"},
		{[]string{"--from", "2025-05-01T10:00:00.0004Z", "--to", "2025-05-01T10:00:01Z", "--window", "1500ms"},
			"window 1.5s, from 2025-05-01T10:00:00.0004Z, to 2025-05-01T10:00:01Z"},
		{[]string{"--from", "2025-05-01", "--to", "2025-05-02", "--window", "48h"},
			"window 2d, from 2025-05-01T00:00:00Z, to 2025-05-02T00:00:00Z"},
	} {
		out := s.waymark(t, append([]string{"funnel", "--steps", "TF Step"}, tt.args...)...)
		if !strings.Contains(out, tt.wantFooter) {
			t.Errorf("waymark funnel %s: footer lacks %q:\n%s", strings.Join(tt.args, " "), tt.wantFooter, out)
		}
	}

	q := url.Values{"steps": {"TF Step"}, "from": {"2025-05-01T10:00:00.000300Z"}, "to": {"2025-05-01T10:00:00.000300Z"}}
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+q.Encode())
	if want := "2025-05-01T10:00:00.0003Z is not after from 2025-05-01T10:00:00.0003Z"; code != 400 || !strings.Contains(body, want) {
		t.Errorf("funnel from = to: %d %s, want a 400 saying %q", code, body, want)
	}
}

// TestFormatSeconds: a window prints in days or hours when it is whole ones, else in seconds, and
// with its sub-second part as a Go duration.
func TestFormatSeconds(t *testing.T) {
	for _, tt := range []struct {
		s    float64
		want string
	}{
		{172800, "2d"}, {86400, "24h"}, {3600, "1h"}, {90, "90s"}, {1e-6, "1µs"}, {1.5, "1.5s"}, {0.25, "250ms"}, {3600.000001, "1h0m0.000001s"},
	} {
		if got := formatSeconds(tt.s); got != tt.want {
			t.Errorf("formatSeconds(%g) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
