package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// The shipped Prometheus config, rules and Grafana dashboards, checked with Debian's promtool and
// against a real Prometheus scraping a running Waymark.

const deployDir = "../../deploy"

func promtool(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command("promtool", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolChecksConfigAndRules(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool not found: run deploy/test.sh, which installs Debian's prometheus")
	}
	rules, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/rules/*.yml"))
	tests, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/tests/*.yml"))
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatal("no rule files or rule tests found")
	}
	promtool(t, "", "check", "config", filepath.Join(deployDir, "prometheus/prometheus.yml"))
	promtool(t, "", append([]string{"check", "rules"}, rules...)...)
	promtool(t, "", append([]string{"test", "rules"}, tests...)...)
}

// TestAlertRulesAllHaveUnitTests makes sure promtool's unit tests cover every alert.
func TestAlertRulesAllHaveUnitTests(t *testing.T) {
	t.Parallel()
	alerts := map[string]bool{}
	for _, r := range ruleExprs(t) {
		if r.alert != "" {
			alerts[r.alert] = false
		}
	}
	tests, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/tests/*.yml"))
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`alertname:\s*(\S+)`).FindAllStringSubmatch(string(b), -1) {
			alerts[m[1]] = true
		}
	}
	for name, tested := range alerts {
		if !tested {
			t.Errorf("alert %s has no promtool unit test", name)
		}
	}
}

type ruleExpr struct {
	file, alert, record, expr string
}

func ruleExprs(t *testing.T) []ruleExpr {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/rules/*.yml"))
	var out []ruleExpr
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct{ Alert, Record, Expr string }
			}
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				out = append(out, ruleExpr{file: filepath.Base(f), alert: r.Alert, record: r.Record, expr: r.Expr})
			}
		}
	}
	return out
}

func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployDir, "grafana/dashboards/*.json"))
	if len(files) < 2 {
		t.Fatalf("want the two dashboards, found %v", files)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[d.Title+" / "+p.Title+": "+tg.Expr] = tg.Expr
			}
		}
	}
	return out
}

// metricNames returns the metric names an expression reads (not functions, keywords or labels).
func metricNames(expr string) []string {
	for _, re := range []string{`\{[^}]*\}`, `\[[^\]]*\]`, `"[^"]*"`, `\b(by|without|on|ignoring)\s*\([^)]*\)`} {
		expr = regexp.MustCompile(re).ReplaceAllString(expr, " ")
	}
	keywords := []string{"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
	var names []string
	for _, m := range regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`).FindAllString(expr, -1) {
		if strings.HasSuffix(strings.TrimSpace(m), "(") || slices.Contains(keywords, strings.ToLower(m)) {
			continue
		}
		names = append(names, m)
	}
	return names
}

func TestDashboardsAndRulesReturnDataInPrometheus(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("prometheus not found: run deploy/test.sh, which installs Debian's prometheus")
	}
	s := startServe(t)
	// Traffic: the Taobao sample through the collector, a rejected event, a poison Kafka message.
	s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--collector", "http://"+s.http, "--write-key", "test-key")
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	postTrack(t, s, `{"batch":[{"type":"track","userId":"u"}]}`)
	s.waitStored(t)

	promtool(t, scrape(t, s.http), "check", "metrics")

	prom := startPrometheus(t, s.http)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep events flowing while Prometheus scrapes
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				postTrack(t, s, fmt.Sprintf(`{"batch":[
					{"type":"track","event":"Product Viewed","userId":"live-%d","context":{"campaign":{"medium":"email"}}},
					{"type":"track","event":"Order Completed","userId":"live-%d","properties":{"revenue":19.9}},
					{"type":"track","event":"Order Completed","userId":"live-%d","properties":{"revenue":-4.5}},
					{"type":"track","event":"NPS Submitted","userId":"live-%d","properties":{"score":%d}}]}`, i, i, i, i, i%11))
				postTrack(t, s, `{"batch":`) // refused whole: a 400, for the refusals' panel and rules
			}
		}
	}()

	checks := map[string]string{}
	for k, v := range dashboardExprs(t) {
		checks["dashboard "+k] = v
	}
	for _, r := range ruleExprs(t) {
		if r.record != "" {
			checks["rule "+r.record] = r.expr
			checks["recorded series "+r.record] = r.record
			continue
		}
		// An alert returns data only while it fires: it must parse, and what it reads must exist.
		checks["alert "+r.alert+" parses"] = "(" + r.expr + ") or vector(1)"
		for _, name := range metricNames(r.expr) {
			checks["alert "+r.alert+" input "+name] = name
		}
	}
	deadline := time.Now().Add(3 * time.Minute) // a hang guard: rules need a few evaluations
	var failing []string
	for {
		failing = failing[:0]
		for name, expr := range checks {
			if n, err := prom.query(expr); err != nil || n == 0 {
				failing = append(failing, fmt.Sprintf("%s: %d series, %v", name, n, err))
			}
		}
		if len(failing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	slices.Sort(failing)
	for _, f := range failing {
		t.Error(f)
	}
	if len(checks) < 40 {
		t.Errorf("only %d expressions checked", len(checks))
	}
}

// TestDeadLetterAlertSeesRefusedTrackingCalls: an SDK release that sends a bad timestamp on every
// event gets 200s, and every event goes to the dead-letter topic from the collector; a real
// Prometheus with the shipped rules must put WaymarkDeadLetterRateHigh in pending (it fires after
// its 10 min "for"; promtool's unit tests check the firing) though no Kafka message is unusable.
func TestDeadLetterAlertSeesRefusedTrackingCalls(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("prometheus not found: run deploy/test.sh, which installs Debian's prometheus")
	}
	s := startServe(t)
	prom := startPrometheus(t, s.http)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				postTrack(t, s, fmt.Sprintf(`{"batch":[
					{"type":"track","event":"Product Viewed","userId":"sdk-%d","timestamp":"2024-05-15T24:00:00Z"},
					{"type":"track","event":"Order Completed","userId":"sdk-%d","timestamp":"1715767200"}]}`, i, i))
			}
		}
	}()
	alert := `ALERTS{alertname="WaymarkDeadLetterRateHigh",alertstate="pending"}`
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) { // a hang guard
		n, err := prom.query(alert)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			ratio, _ := prom.query("waymark:dlq:ratio_rate5m > 0")
			t.Fatalf("%s: %d series, %v; waymark:dlq:ratio_rate5m > 0: %d series", alert, n, err, ratio)
		}
	}
	metrics := scrape(t, s.http)
	if n := metricValue(t, metrics, `waymark_dlq_messages_total{path="collector",reason="invalid_timestamp"}`); n < 2 {
		t.Errorf("dead letters of the collector counted %v, want every event sent", n)
	}
}

// postTrack posts body to the collector's /v1/batch with the test's write key. A connection that
// fails to open is tried again, up to five times: under the race pass's load, a connect to
// serve's port was once reset (2026-12-06, "dial tcp …: connect: connection reset by peer") before
// anything was sent, and no test that posts this way has the connection for its subject.
func postTrack(t *testing.T, s *server, body string) {
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/v1/batch", strings.NewReader(body))
		req.SetBasicAuth("test-key", "")
		resp, err := http.DefaultClient.Do(req)
		var op *net.OpError
		if err != nil && errors.As(err, &op) && op.Op == "dial" && attempt < 5 {
			t.Logf("attempt %d: %v; trying again", attempt, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		return
	}
}

type prometheusServer struct{ addr string }

func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	rules, _ := filepath.Glob(filepath.Join(mustAbs(t, deployDir), "prometheus/rules/*.yml"))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: waymark
    static_configs:
      - targets: [%q]
`, `"`+strings.Join(rules, `", "`)+`"`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is picked free just before Prometheus starts, so another process (the other
	// engine's test pass, say) may take it first: a Prometheus that exits on a port in use is
	// started again on another.
	for attempt := 1; ; attempt++ {
		p, err := launchPrometheus(t, dir)
		if err == nil {
			return p
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying another port", attempt, err)
	}
}

// launchPrometheus is one attempt of startPrometheus: it fails when Prometheus exits before it is
// ready, with its log in the error.
func launchPrometheus(t *testing.T, dir string) (*prometheusServer, error) {
	t.Helper()
	p := &prometheusServer{addr: freeAddr(t)}
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+t.TempDir() /* a fresh one each attempt */, "--web.listen-address="+p.addr, "--log.level=warn")
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			return nil, fmt.Errorf("prometheus exited before it was ready: %v\n%s", err, log.String())
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		if time.Since(start) > 2*time.Minute { // a hang guard
			t.Fatalf("prometheus not ready: %v\n%s", err, log.String())
		}
	}
}

// query evaluates an instant query and returns how many series it gave.
func (p *prometheusServer) query(expr string) (int, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	return len(r.Data.Result), nil
}
