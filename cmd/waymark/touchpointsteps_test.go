package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestTouchpointsPrintAsTheirSteps: a fresh tester's names. waymark next and paths printed an
// event literally named "event:x" as event:x, which pasted back into --anchor asks about the event
// "x", and an event named "conversion" as conversion, which asks about the stage of that name.
// Each touchpoint now prints as the step that asks about it (only where that differs from the
// name), the API's JSON gives the raw name as value and the step beside it, and every printed
// step, pasted back as the anchor, finds the persons that were counted there.
func TestTouchpointsPrintAsTheirSteps(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	// Four persons start, then each does one of the names; a fifth's next is a page without a name.
	// (An event named like a stage is the tester's: conversion is a stage of the shop's map.)
	names := map[string]string{"p1": "event:x", "p2": "conversion", "p3": "Checkout, Step 2", "p4": "Plain"}
	var events []string
	for p, name := range names {
		events = append(events,
			fmt.Sprintf(`{"type":"track","userId":%q,"event":"Start","timestamp":"2026-06-01T10:00:00Z","messageId":"%s-1"}`, p, p),
			fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"timestamp":"2026-06-01T10:01:00Z","messageId":"%s-2"}`, p, name, p))
	}
	events = append(events, `{"type":"track","userId":"p5","event":"Start","timestamp":"2026-06-01T10:00:00Z","messageId":"p5-1"}`,
		`{"type":"page","userId":"p5","timestamp":"2026-06-01T10:01:00Z","messageId":"p5-2"}`,
		// The conversion the page's paths ask about by default.
		`{"type":"track","userId":"p4","event":"Order Completed","timestamp":"2026-06-01T10:02:00Z","messageId":"p4-3"}`)
	postTrack(t, s, `{"batch":[`+strings.Join(events, ",")+`]}`)
	s.waitStored(t)

	wantSteps := map[string]string{"event:x": `event\:x`, "conversion": "event:conversion", "Checkout, Step 2": `Checkout\, Step 2`, "Plain": "Plain", "page": "page"}
	var want []string
	for _, step := range wantSteps {
		want = append(want, step)
	}
	slices.Sort(want)

	// The CLI's next: one line a touchpoint (aligned right), its step, count and share.
	printed := printedNextSteps(t, s, "Start")
	if !slices.Equal(printed, want) {
		t.Errorf("waymark next --anchor Start printed %q, want %q", printed, want)
	}
	// The CLI's paths: Start → each.
	var pathsPrinted []string
	for _, line := range strings.Split(s.waymark(t, "paths", "--anchor", "Start", "--depth", "2", "--convert", "Plain"), "\n") {
		if _, path, ok := strings.Cut(line, "%  "); ok {
			steps := strings.Split(path, " → ")
			pathsPrinted = append(pathsPrinted, steps[1])
		}
	}
	slices.Sort(pathsPrinted)
	if !slices.Equal(pathsPrinted, want) {
		t.Errorf("waymark paths --anchor Start --depth 2 printed %q, want %q", pathsPrinted, want)
	}

	// The API: the raw name as value, the step beside it.
	var next struct {
		Touchpoints []struct{ Value, Step string }
	}
	_, body := httpGet(t, "http://"+s.http+"/api/v1/next?anchor=Start")
	if err := json.Unmarshal([]byte(body), &next); err != nil {
		t.Fatal(err)
	}
	for _, tp := range next.Touchpoints {
		if tp.Step != wantSteps[tp.Value] {
			t.Errorf("next's touchpoint %q has step %q, want %q", tp.Value, tp.Step, wantSteps[tp.Value])
		}
	}
	var paths struct {
		Paths []struct{ Touchpoints, Steps []string }
	}
	_, body = httpGet(t, "http://"+s.http+"/api/v1/paths?anchor=Start&depth=2&convert=Plain")
	if err := json.Unmarshal([]byte(body), &paths); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths.Paths {
		if len(p.Steps) != 2 || p.Steps[0] != "Start" || p.Steps[1] != wantSteps[p.Touchpoints[1]] {
			t.Errorf("path %q has steps %q", p.Touchpoints, p.Steps)
		}
	}

	// The journey map page sends a touchpoint's step as the API gives it: each node of the flow
	// from Start opens the fork of its step.
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium not found: run deploy/test.sh, which installs Debian's chromium")
	}
	dir := npmInstall(t, "playwright-core")
	view := url.Values{"fork": {"Start"}, "dir": {"next"}, "anchor": {"Start"}, "depth": {"2"}, "steps": {"Start,Plain"}, "breakdown": {"channel"}, "window": {"1h"}}
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "drive-markers.js"), "http://"+s.http+"/?"+view.Encode(),
		testOutput(t, "touchpoint-steps"), testReadKey)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, raw)
	}
	var page struct {
		Errors []string
		Flow   []struct{ Text, Touchpoint string }
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(page.Errors) > 0 {
		t.Errorf("page errors: %v", page.Errors)
	}
	var nodes []string
	for _, n := range page.Flow {
		name := n.Text[:strings.LastIndex(n.Text, " (")]
		nodes = append(nodes, name)
		if step := cmp.Or(wantSteps[name], name); n.Touchpoint != step {
			t.Errorf("the page's flow node %q opens the fork of %q, want %q", name, n.Touchpoint, step)
		}
	}
	if len(nodes) != 6 {
		t.Errorf("the page's flow shows %q, want Start and the five touchpoints after it", nodes)
	}

	// Each printed step, pasted back as the anchor, is where its one person came from Start.
	for _, step := range printed {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/next?direction=previous&anchor="+url.QueryEscape(step))
		var prev struct {
			Persons     int64
			Touchpoints []struct{ Value string }
		}
		if err := json.Unmarshal([]byte(body), &prev); code != 200 || err != nil || prev.Persons != 1 || len(prev.Touchpoints) != 1 || prev.Touchpoints[0].Value != "Start" {
			t.Errorf("anchor %s pasted back: %d %s, want the one person who came from Start", step, code, body)
		}
	}
}

// TestEventNamedPagePrintsApart: a tester's names. A track event named "page" (or "screen")
// printed as page, as the pages sent without a name do, in next, paths, drop-off and stages, and
// the step page counted both. It now prints as event:page, the pages without a name as page,
// each pasted back finds only what was counted under it, and the CLI prints the same steps.
func TestEventNamedPagePrintsApart(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	// Each person starts, then does one of: a page or screen without a name, a track event named
	// page or screen. wantSteps is the step each prints as, by person.
	second := map[string]string{
		"q1": `"type":"page"`, "q2": `"type":"track","event":"page"`,
		"q3": `"type":"screen"`, "q4": `"type":"track","event":"screen"`,
	}
	wantSteps := map[string]string{"q1": "page", "q2": "event:page", "q3": "screen", "q4": "event:screen"}
	var events []string
	for p, call := range second {
		events = append(events,
			fmt.Sprintf(`{"type":"track","userId":%q,"event":"Start","timestamp":"2026-06-01T10:00:00Z","messageId":"%s-1"}`, p, p),
			fmt.Sprintf(`{%s,"userId":%q,"timestamp":"2026-06-01T10:01:00Z","messageId":"%s-2"}`, call, p, p))
	}
	postTrack(t, s, `{"batch":[`+strings.Join(events, ",")+`]}`)
	s.waitStored(t)
	var want []string
	for _, step := range wantSteps {
		want = append(want, step)
	}
	slices.Sort(want)

	// The API's next and paths: one touchpoint a step, each counted once.
	var next struct {
		Touchpoints []struct {
			Value, Step string
			Count       int64
		}
	}
	_, body := httpGet(t, "http://"+s.http+"/api/v1/next?anchor=Start")
	if err := json.Unmarshal([]byte(body), &next); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tp := range next.Touchpoints {
		got = append(got, tp.Step)
		if tp.Count != 1 || strings.TrimPrefix(tp.Step, "event:") != tp.Value {
			t.Errorf("next's touchpoint %+v, want step %s or event:%s counted once", tp, tp.Value, tp.Value)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("next's steps %q, want %q", got, want)
	}
	var paths struct {
		Paths []struct{ Steps []string }
	}
	code, body := httpGet(t, "http://"+s.http+"/api/v1/paths?anchor=Start&depth=2&convert=Start")
	if err := json.Unmarshal([]byte(body), &paths); code != 200 || err != nil {
		t.Fatalf("paths: %d %s", code, body)
	}
	got = got[:0]
	for _, p := range paths.Paths {
		got = append(got, p.Steps[len(p.Steps)-1])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("paths' last steps %q, want %q", got, want)
	}

	// The drop-off after Start (nobody starts twice): what each did next.
	var dropoff struct {
		NextEvents []struct{ Step string } `json:"next_events"`
	}
	code, body = httpGet(t, "http://"+s.http+"/api/v1/dropoff?steps=Start,Start&step=1")
	if err := json.Unmarshal([]byte(body), &dropoff); code != 200 || err != nil {
		t.Fatalf("dropoff: %d %s", code, body)
	}
	got = got[:0]
	for _, e := range dropoff.NextEvents {
		got = append(got, e.Step)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("drop-off's next steps %q, want %q (%s)", got, want, body)
	}

	// The CLI's next prints the same steps.
	if printed := printedNextSteps(t, s, "Start"); !slices.Equal(printed, want) {
		t.Errorf("waymark next --anchor Start printed %q, want %q", printed, want)
	}

	// Each step, pasted back, finds the one person who did it: as an anchor, and as a funnel's step.
	for p, step := range wantSteps {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/next?direction=previous&anchor="+url.QueryEscape(step))
		var prev struct{ Persons int64 }
		if err := json.Unmarshal([]byte(body), &prev); code != 200 || err != nil || prev.Persons != 1 {
			t.Errorf("anchor %s (%s's): %d %s, want the one person", step, p, code, body)
		}
		if f := s.funnel(t, "Start,"+step, "1h"); len(f.Steps) != 2 || f.Steps[1].Customers != 1 {
			t.Errorf("funnel Start,%s: %+v, want 1 person at the second step", step, f.Steps)
		}
	}
}

// printedNextSteps is the steps `waymark next --anchor anchor` prints, one a touchpoint (its
// table's first column), sorted.
func printedNextSteps(t *testing.T, s *server, anchor string) []string {
	t.Helper()
	row := regexp.MustCompile(`^\s*(.+?)\s+(\d+)\s+[\d.]+%\s*$`)
	var printed []string
	for _, line := range strings.Split(s.waymark(t, "next", "--anchor", anchor), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			printed = append(printed, m[1])
		}
	}
	slices.Sort(printed)
	return printed
}
