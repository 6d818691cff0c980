package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// No Docker engine runs here: docker-compose.yml is checked by Debian's docker-compose and by
// loading it with compose-go and checking the wiring.

const composeFile = "../../docker-compose.yml"

func TestDockerComposeConfigValidates(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose not found: run deploy/test.sh, which installs Debian's docker-compose")
	}
	if out, err := exec.Command("docker-compose", "-f", composeFile, "config", "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs := mustAbs(t, composeFile)
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: b}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("waymark", true) })
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func TestComposeWiring(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for _, name := range []string{"kafka", "clickhouse", "prometheus", "grafana", "kafka-exporter", "waymark-collector", "waymark-ingest", "waymark-query"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	for name, s := range p.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("%s depends on missing service %s", name, dep)
			}
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s waits for %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist", name, v.Source)
				}
			}
		}
	}

	kafka := p.Services["kafka"]
	advertised := env(kafka, "KAFKA_ADVERTISED_LISTENERS")
	roles := map[string]string{"waymark-collector": "collector", "waymark-ingest": "ingest", "waymark-query": "query"}
	for name, role := range roles {
		s := p.Services[name]
		if got := strings.Join(s.Command, " "); got != "serve --roles "+role {
			t.Errorf("%s runs %q, want serve --roles %s", name, got, role)
		}
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s is not built from deploy/Dockerfile", name)
		}
		if env(s, "WAYMARK_HTTP_ADDR") != "0.0.0.0:8080" {
			t.Errorf("%s listens on %q, want 0.0.0.0:8080", name, env(s, "WAYMARK_HTTP_ADDR"))
		}
		needsKafka, needsClickHouse := role != "query", role != "collector"
		if brokers := env(s, "WAYMARK_KAFKA_BROKERS"); needsKafka {
			host, port, _ := net.SplitHostPort(brokers)
			if _, ok := p.Services[host]; !ok || !strings.Contains(advertised, "//"+host+":"+port) {
				t.Errorf("%s: WAYMARK_KAFKA_BROKERS=%s is not a listener kafka advertises (%s)", name, brokers, advertised)
			}
			if _, ok := s.DependsOn["kafka"]; !ok {
				t.Errorf("%s does not wait for kafka", name)
			}
		}
		if addr := env(s, "WAYMARK_CLICKHOUSE_ADDR"); needsClickHouse {
			host, port, _ := net.SplitHostPort(addr)
			if _, ok := p.Services[host]; !ok || port != "9000" {
				t.Errorf("%s: WAYMARK_CLICKHOUSE_ADDR=%s is not the clickhouse service's native port", name, addr)
			}
			if env(s, "WAYMARK_CLICKHOUSE_PASSWORD") != env(p.Services["clickhouse"], "CLICKHOUSE_PASSWORD") {
				t.Errorf("%s: ClickHouse password differs from the server's", name)
			}
			if _, ok := s.DependsOn["clickhouse"]; !ok {
				t.Errorf("%s does not wait for clickhouse", name)
			}
		}
	}
	// The query API needs a read key (one that is not a write key), and its port is published
	// on loopback only, since the default key is no secret.
	query := p.Services["waymark-query"]
	rk, err := loadReadKeys(newFlagSet("serve", "serve").ref, "", env(query, "WAYMARK_READ_KEYS_INLINE"), mustWriteKeys(t, env(p.Services["waymark-collector"], "WAYMARK_WRITE_KEYS_INLINE")))
	if err != nil || len(rk.hashes) == 0 {
		t.Errorf("waymark-query: read keys %q: %v; want at least one", env(query, "WAYMARK_READ_KEYS_INLINE"), err)
	}
	for _, port := range query.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("waymark-query publishes port %s on %q, want 127.0.0.1", port.Published, port.HostIP)
		}
	}
	published := map[string]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if other, dup := published[port.Published]; dup {
				t.Errorf("host port %s published by %s and %s", port.Published, other, name)
			}
			published[port.Published] = name
		}
	}
	for port, svc := range map[string]string{"8080": "waymark-collector", "8081": "waymark-query", "9090": "prometheus", "3000": "grafana"} {
		if published[port] != svc {
			t.Errorf("host port %s is published by %q, want %s (as the README says)", port, published[port], svc)
		}
	}

	// Prometheus scrapes services that exist, on ports they listen on.
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string                       `yaml:"job_name"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			DNSSDConfigs  []struct {
				Names []string
				Port  int
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		for _, dc := range sc.DNSSDConfigs {
			for _, n := range dc.Names {
				targets = append(targets, net.JoinHostPort(n, strconv.Itoa(dc.Port)))
				// /metrics apart from the tracking API (it holds revenue, orders and NPS), on
				// the port scraped, published nowhere.
				s := p.Services[n]
				if _, port, _ := net.SplitHostPort(env(s, "WAYMARK_METRICS_ADDR")); port != strconv.Itoa(dc.Port) {
					t.Errorf("job %s scrapes %s on port %d, which serves /metrics on %q (WAYMARK_METRICS_ADDR)", sc.JobName, n, dc.Port, env(s, "WAYMARK_METRICS_ADDR"))
				}
				for _, port := range s.Ports {
					if port.Target == uint32(dc.Port) {
						t.Errorf("%s publishes its metrics port %d on the host", n, dc.Port)
					}
				}
			}
		}
	}
	for _, target := range targets {
		host, _, _ := net.SplitHostPort(target)
		if _, ok := p.Services[host]; !ok {
			t.Errorf("prometheus scrapes %s, which is not a service", target)
		}
	}
	if !slices.Contains(targets, "waymark-ingest:9464") {
		t.Errorf("prometheus does not scrape waymark-ingest: %v", targets)
	}
}

func mustWriteKeys(t *testing.T, inline string) map[string]string {
	t.Helper()
	keys, err := loadWriteKeys(newFlagSet("serve", "serve").ref, "", inline)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestComposeClickHouseHasTheFunnelUDF checks that docker-compose's ClickHouse is built with the
// waymark_funnel UDF, from the same build stage as Waymark's image (the UDF must be the same
// release as the Waymark that queries), with the files it installs present.
func TestComposeClickHouseHasTheFunnelUDF(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	ch := p.Services["clickhouse"]
	if ch.Build == nil || ch.Build.Dockerfile != "deploy/clickhouse/Dockerfile" {
		t.Fatalf("clickhouse is not built from deploy/clickhouse/Dockerfile: %+v", ch.Build)
	}
	stage := func(path string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "FROM ") && len(lines) > 0 {
				break
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "")
	}
	if got, want := stage("deploy/clickhouse/Dockerfile"), stage("deploy/Dockerfile"); got != want {
		t.Errorf("ClickHouse's build stage differs from Waymark's:\n%s\nwant:\n%s", got, want)
	}
	for _, f := range []string{"deploy/clickhouse/waymark_funnel_function.xml", "deploy/clickhouse/udf.xml"} {
		if _, err := os.Stat(filepath.Join("..", "..", f)); err != nil {
			t.Error(err)
		}
	}
}
