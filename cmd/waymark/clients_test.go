package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/waymark-dev/waymark/ingest"
)

// Clients nobody here wrote, driven unmodified against a running Waymark.

func (s *server) waitStored(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ingest.WaitCaughtUp(ctx, []string{s.broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
}

// storedIDs returns the distinct messageIds stored for a source, sorted.
func storedIDs(t *testing.T, database, source string) []string {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chServer.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), "SELECT DISTINCT message_id FROM "+database+".events WHERE source = ?", source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// npmInstall installs packages into a temp dir (never globally) and returns its node_modules.
func npmInstall(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("npm", append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", dir}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return dir
}

const analyticsNodeScript = `
const { Analytics } = require('@segment/analytics-node')
const analytics = new Analytics({ writeKey: 'test-key', host: process.argv[2], maxEventsInBatch: 10, flushInterval: 200 })
let failed = false
analytics.on('error', (err) => { failed = true; console.error('analytics-node error:', err) })
for (let i = 0; i < 25; i++) {
  analytics.track({ userId: 'node-' + (i % 5), event: i % 7 ? 'Product Viewed' : 'Order Completed', messageId: 'node-track-' + i,
    properties: { product_id: 'p' + i, price: 9.5 } })
}
analytics.identify({ userId: 'node-1', traits: { customer_type: 'vip' }, messageId: 'node-identify-1' })
analytics.page({ anonymousId: 'anon-node', name: 'Home', properties: { path: '/' }, messageId: 'node-page-1' })
analytics.alias({ userId: 'node-1', previousId: 'anon-node', messageId: 'node-alias-1' })
analytics.closeAndFlush({ timeout: 20000 }).then(() => process.exit(failed ? 1 : 0))
`

func TestAnalyticsNodeDeliversUnmodified(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: run deploy/test.sh, which installs it")
	}
	s := startServe(t)
	dir := npmInstall(t, "@segment/analytics-node")
	script := filepath.Join(dir, "send.js")
	if err := os.WriteFile(script, []byte(analyticsNodeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, "http://"+s.http)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("analytics-node: %v\n%s", err, out)
	}
	s.waitStored(t)
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("node-track-%d", i))
	}
	want = append(want, "node-identify-1", "node-page-1", "node-alias-1")
	sort.Strings(want)
	if got := storedIDs(t, s.database, "test"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stored messageIds\n got %v\nwant %v", got, want)
	}
	if f := s.funnel(t, "Product Viewed,Order Completed", "1h"); f.Steps[0].Customers != 5 {
		t.Errorf("customers with a product view = %d, want 5", f.Steps[0].Customers)
	}
}

func TestKcatProducesStraightToTheTopic(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not found: run deploy/test.sh, which installs it")
	}
	s := startServe(t)
	lines := []string{
		`{"type":"track","event":"Product Viewed","userId":"k1","messageId":"kcat-1","timestamp":"2026-03-01T10:00:00Z"}`,
		`{"type":"track","event":"Order Completed","userId":"k1","messageId":"kcat-2","timestamp":"2026-03-01T10:05:00Z"}`,
		`{"type":"page","anonymousId":"k2","name":"Home","messageId":"kcat-3"}`,
	}
	cmd := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	var in strings.Builder
	for _, l := range lines {
		in.WriteString("k1\t" + l + "\n")
	}
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.waitStored(t)
	if got := strings.Join(storedIDs(t, s.database, "kafka"), ","); got != "kcat-1,kcat-2,kcat-3" {
		t.Errorf("stored messageIds %s, want kcat-1,kcat-2,kcat-3", got)
	}
}

func TestReplayThroughTheCollector(t *testing.T) {
	s := startServe(t)
	out := s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--collector", "http://"+s.http, "--write-key", "test-key")
	if !strings.Contains(out, "sent 10000, skipped 0") {
		t.Fatalf("replay output:\n%s", out)
	}
	s.waitStored(t)
	if n := len(storedIDs(t, s.database, "test")); n != 10000 {
		t.Errorf("stored %d events from the collector, want 10000", n)
	}
	checkKnownAnswers(t, s)
}
