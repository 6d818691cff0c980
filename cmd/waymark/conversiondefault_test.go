package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPathsAndRetentionOfAShopWithoutOrders: a shop that never sent Order Completed. The journey
// map page's top paths (the API without convert) and the paths and retention commands without
// --convert or --conversion answer, counting the map's stage conversion; with a map that has no
// such stage, paths counts no conversions and says so, and retention asks for --conversion. They
// all failed with 'convert: "Order Completed" is neither a stage … nor an event that has been
// stored'.
func TestPathsAndRetentionOfAShopWithoutOrders(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	postTrack(t, s, `{"batch":[`+
		`{"type":"track","userId":"no-orders-1","event":"Browse","timestamp":"2026-06-01T10:00:00Z","messageId":"no-orders-1"},`+
		`{"type":"track","userId":"no-orders-1","event":"Look","timestamp":"2026-06-01T10:01:00Z","messageId":"no-orders-2"}]}`)
	s.waitStored(t)
	noStage := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(noStage, []byte("version: no-orders\nstages:\n  - name: browsing\n    rules:\n      - event: [Browse]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A regexp Go compiles and ClickHouse cannot use (over re2's memory limit): the query
	// commands say so naming the stage and the flag, as serve does, not with ClickHouse's error
	// (tester 29's N4).
	badRegexp := filepath.Join(t.TempDir(), "regexp.yaml")
	if err := os.WriteFile(badRegexp, []byte("version: re\nstages:\n  - name: lettered\n    rules:\n      - where:\n          - field: code\n            regexp: \"^\\\\pL{1000}$\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The page's own call (app.js loadFlow).
	if code, body := httpGet(t, "http://"+s.http+"/api/v1/paths?anchor=Browse&depth=4&limit=12&collapse=true&window=24h"); code != 200 || !strings.Contains(body, `"convert":"conversion"`) {
		t.Errorf("GET /api/v1/paths without convert: %d %s, want 200 converting at the stage conversion", code, body)
	}
	waymark := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+s.database)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return string(out) + stderr.String(), err
	}
	for _, tt := range []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{[]string{"paths", "--anchor", "Browse"}, "1 persons with Browse; paths that start there; converting = conversion at or after it", false},
		{[]string{"paths", "--anchor", "Browse", "--journey-map", noStage}, "no conversion counted (the journey map has no stage conversion; --convert names one)", false},
		{[]string{"retention"}, "0 persons first did conversion", false},
		{[]string{"retention", "--journey-map", noStage}, `--conversion: required: the journey map has no stage "conversion" to default to`, true},
		{[]string{"paths", "--anchor", "Browse", "--convert", "Order Completed"}, `--convert: "Order Completed" is neither a stage`, true},
		{[]string{"stages", "--journey-map", badRegexp}, `--journey-map: journey map re: stage "lettered": ClickHouse cannot use the regular expression`, true},
		{[]string{"funnel", "--steps", "Browse", "--journey-map", badRegexp}, `--journey-map: journey map re: stage "lettered"`, true},
	} {
		out, err := waymark(tt.args...)
		if (err != nil) != tt.wantErr || !strings.Contains(out, tt.want) {
			t.Errorf("waymark %s: %v\n%s\nwant it to say %q", strings.Join(tt.args, " "), err, out, tt.want)
		}
	}
}
