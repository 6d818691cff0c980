package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store/storetest"
)

// TestBenchIngest runs `waymark bench ingest` at a tiny scale, with evictions forced by a small
// --max-customers, and checks that its answer check passes on a correct run and fails when the
// sessionizer is configured unlike the generator (a 1-minute gap splits the generated visits).
func TestBenchIngest(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		fails string // "" when the check must pass, else text the error must contain
	}{
		{name: "evicting", extra: []string{"--max-customers", "40"}},
		{name: "random-order", extra: []string{"--max-customers", "40", "--order", "random"}},
		{name: "wrong-gap", extra: []string{"--session-gap", "1m"}, fails: "sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench", "ingest", "--clickhouse-addr", chServer.Addr, "--persons", "200", "--events", "3000",
				"--restart-share", "0.1", "--restart-rate", "100000", "--batch-size", "200", "--flush-interval", "50ms"}, tc.extra...)
			cmd := exec.Command(binary, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			switch {
			case tc.fails == "" && err != nil:
				t.Fatalf("waymark %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
			case tc.fails == "" && !strings.Contains(string(out), "equal to the reference"):
				t.Fatalf("no answer check in the output:\n%s", out)
			case tc.fails != "" && err == nil:
				t.Fatalf("the answer check passed, want it to fail on %s:\n%s", tc.fails, out)
			case tc.fails != "" && !strings.Contains(stderr.String(), tc.fails):
				t.Fatalf("the error does not name %s:\n%s\n%s", tc.fails, out, stderr.String())
			}
			if tc.name == "evicting" && strings.Contains(string(out), "evictions 0,") {
				t.Errorf("no evictions with --max-customers 40:\n%s", out)
			}
		})
	}
}

// TestShopReference checks the benchmark's reference answers on hand-made persons.
func TestShopReference(t *testing.T) {
	t.Parallel()
	h := int64(time.Hour / time.Millisecond)
	ev := func(person int32, ms int64, kind uint8, visit bool) shopEvent {
		return shopEvent{ms: ms, person: person, kind: kind, visit: visit}
	}
	for _, tc := range []struct {
		name   string
		events []shopEvent
		want   benchAnswers
	}{
		{"view add order within 24h", []shopEvent{ev(0, 0, kindView, true), ev(0, 1, kindAdd, false), ev(0, 2, kindOrder, false)},
			benchAnswers{Funnel: [3]int64{1, 1, 1}, Sessions: 1, Persons: 1}},
		{"order after the window", []shopEvent{ev(0, 0, kindView, true), ev(0, 2*h, kindAdd, true), ev(0, 25*h, kindOrder, true)},
			benchAnswers{Funnel: [3]int64{1, 1, 0}, Sessions: 3, Persons: 1}},
		{"a later view starts a window", []shopEvent{ev(0, 0, kindView, true), ev(0, 2*h, kindView, true), ev(0, 2*h+1, kindAdd, false), ev(0, 25*h, kindOrder, true)},
			benchAnswers{Funnel: [3]int64{1, 1, 1}, Sessions: 3, Persons: 1}},
		{"order before add", []shopEvent{ev(0, 0, kindView, true), ev(0, 1, kindOrder, false), ev(0, 2, kindAdd, false)},
			benchAnswers{Funnel: [3]int64{1, 1, 0}, Sessions: 1, Persons: 1}},
		{"identify alone is no session", []shopEvent{ev(0, 0, kindPage, true), ev(0, h, kindIdentify, true), ev(1, 0, kindAdd, true)},
			benchAnswers{Funnel: [3]int64{0, 0, 0}, Sessions: 2, Persons: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &shop{events: tc.events}
			got := s.reference()
			if got != tc.want {
				t.Fatalf("reference %+v, want %+v", got, tc.want)
			}
			if err := tc.want.compare(got); err != nil {
				t.Fatal(err)
			}
			off := got
			off.Sessions++
			if err := tc.want.compare(off); err == nil || !strings.Contains(err.Error(), "sessions") {
				t.Fatalf("compare with one session more: %v, want an error naming sessions", err)
			}
		})
	}
}
