package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQueryAPINeedsAReadKey: /api/v1/ (exports such as the drop-off's person ids included)
// answers only callers with a read key, as a Bearer token or as the Basic auth user name; a
// write key is not a read key and a read key does not write; the page's files, /metrics,
// /healthz and /readyz stay open.
func TestQueryAPINeedsAReadKey(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	base := "http://" + s.http
	const dropoff = "/api/v1/dropoff?steps=Product+Viewed,Order+Completed"
	post := `{"userId":"u","event":"Product Viewed","messageId":"access-1"}`
	for _, tt := range []struct {
		name, method, path string
		auth               func(*http.Request)
		status             int
	}{
		{"no key", "GET", "/api/v1/stages", nil, 401},
		{"no key, drop-off ids", "GET", dropoff, nil, 401},
		{"wrong Bearer key", "GET", "/api/v1/stages", bearer("nope"), 401},
		{"wrong Basic key", "GET", dropoff, basic("nope"), 401},
		{"write key as Bearer", "GET", "/api/v1/stages", bearer("test-key"), 401},
		{"write key as Basic", "GET", dropoff, basic("test-key"), 401},
		{"read key as Basic password only", "GET", "/api/v1/stages", func(r *http.Request) { r.SetBasicAuth("", testReadKey) }, 401},
		{"read key as Bearer", "GET", "/api/v1/stages", bearer(testReadKey), 200},
		{"read key as Basic user name", "GET", "/api/v1/stages", basic(testReadKey), 200},
		// As the collector reads a write key (tester 20's #4): the key without its colon, and
		// without base64's padding.
		{"read key as Basic, no colon", "GET", "/api/v1/map", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testReadKey)))
		}, 200},
		{"read key as Basic, no colon nor padding", "GET", "/api/v1/map", func(r *http.Request) {
			r.Header.Set("Authorization", "basic "+base64.RawStdEncoding.EncodeToString([]byte(testReadKey)))
		}, 200},
		{"write key as Basic, no colon", "GET", "/api/v1/map", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("test-key")))
		}, 401},
		{"read key, lower-case scheme", "GET", "/api/v1/stages", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testReadKey) }, 200},
		{"no key, batch", "POST", "/api/v1/batch", nil, 401},
		{"write key, batch", "POST", "/api/v1/batch", bearer("test-key"), 401},
		{"read key, batch", "POST", "/api/v1/batch", bearer(testReadKey), 200},
		{"no key, journey map", "GET", "/api/v1/map", nil, 401},
		{"read key, journey map", "GET", "/api/v1/map", bearer(testReadKey), 200},
		{"read key cannot write (Basic)", "POST", "/v1/track", basic(testReadKey), 401},
		{"read key cannot write (X-Write-Key)", "POST", "/v1/track", func(r *http.Request) { r.Header.Set("X-Write-Key", testReadKey) }, 401},
		{"metrics open", "GET", "/metrics", nil, 200},
		{"healthz open", "GET", "/healthz", nil, 200},
		{"readyz open", "GET", "/readyz", nil, 200},
		{"the page's files open (it asks for the key)", "GET", "/", nil, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(post)
				if tt.path == "/api/v1/batch" {
					body = strings.NewReader(`{"queries": [{"query": "stages"}, {"query": "sessions"}]}`)
				}
			}
			req, err := http.NewRequest(tt.method, base+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != nil {
				tt.auth(req)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tt.status)
			}
			if tt.status != 401 || tt.method == "POST" {
				return
			}
			var e struct{ Error, Param string }
			if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" || e.Param != "Authorization" {
				t.Errorf("401 body %s (%v): want JSON with an error naming Authorization", raw, err)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", ch)
			}
		})
	}
	s.waitStored(t)
	if ids := storedIDs(t, s.database, "test"); len(ids) > 0 {
		t.Errorf("a read key wrote events: %v", ids)
	}
}

func bearer(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

func basic(key string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(key, "") }
}

// TestQueryRoleWithoutReadKeys: without read keys the query API serves on loopback only, open;
// serve refuses a non-loopback --http-addr for it unless --insecure-open-query-api, which it
// warns about.
func TestQueryRoleWithoutReadKeys(t *testing.T) {
	t.Parallel()
	t.Run("loopback: open", func(t *testing.T) {
		s := startServe(t, "--roles", "query", "--read-keys-inline", "")
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/api/v1/stages", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d without a key on loopback with no read keys, want 200", resp.StatusCode)
		}
	})
	port := func(t *testing.T) string {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		return p
	}
	for _, addr := range []string{"0.0.0.0:", ":", "[::]:"} {
		t.Run("refused on "+addr, func(t *testing.T) {
			cmd := exec.Command(binary, "serve", "--roles", "query", "--http-addr", addr+port(t))
			cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_DEV_BROKER_ADDR="+freeAddr(t))
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute): // a hang guard: it must exit, however slowly
				cmd.Process.Kill()
				<-done
				t.Fatalf("serve kept running on %s without read keys:\n%s", addr, out)
			}
			if err == nil || !strings.Contains(string(out), "--http-addr") || !strings.Contains(string(out), "--insecure-open-query-api") {
				t.Errorf("serve on %s without read keys: %v\n%s\nwant an error naming --http-addr and --insecure-open-query-api", addr, err, out)
			}
		})
	}
	t.Run("0.0.0.0 with --insecure-open-query-api: open, with a warning", func(t *testing.T) {
		s := startServe(t, "--roles", "query", "--read-keys-inline", "", "--http-addr", "0.0.0.0:"+port(t), "--insecure-open-query-api")
		resp, err := http.Get("http://" + s.http + "/api/v1/stages")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d, want 200", resp.StatusCode)
		}
		s.waitLogged(t, "level=WARN", "QUERY API OPEN")
	})
	t.Run("0.0.0.0 with read keys", func(t *testing.T) {
		s := startServe(t, "--roles", "query", "--http-addr", "0.0.0.0:"+port(t))
		if status, _ := httpGet(t, "http://"+s.http+"/api/v1/stages"); status != 200 {
			t.Errorf("status %d with the read key, want 200", status)
		}
	})
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# analysts\nk1 alice\nk2=bob  # comment\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Saved by Notepad or PowerShell: a byte order mark, then CRLF lines (tester 15: the first key
	// was read as U+FEFF "k1", and every call with it refused).
	bom := filepath.Join(dir, "bom")
	if err := os.WriteFile(bom, []byte("\ufeffk1 alice\r\nk2=bob\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("k1 alice\nonlykey\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, inline string
		write              map[string]string
		want               []string // holder of k1, k2, k3
		err                string
	}{
		{"file and inline", file, "k3=carol", nil, []string{"alice", "bob", "carol"}, ""},
		{"inline only", "", " k1=alice , ,k3=carol", nil, []string{"alice", "", "carol"}, ""},
		{"file with a byte order mark", bom, "", nil, []string{"alice", "bob", ""}, ""},
		{"none", "", "", nil, []string{"", "", ""}, ""},
		{"bad line names the flag and line", bad, "", nil, nil, "--read-keys " + bad + " line 2"},
		{"bad inline entry", "", "k1", nil, nil, "--read-keys-inline"},
		{"missing file", filepath.Join(dir, "absent"), "", nil, nil, "--read-keys:"},
		{"one key for two holders", file, "k1=mallory", nil, nil, "key given twice"},
		{"a write key is not a read key", "", "k1=alice", map[string]string{"k1": "web"}, nil, "--read-keys-inline: the key of \"alice\" is also a write key"},
		{"a write key in the file is not a read key", file, "", map[string]string{"k2": "web"}, nil, "--read-keys: the key of \"bob\" is also a write key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := loadReadKeys(newFlagSet("serve", "serve").ref, tt.path, tt.inline, tt.write)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, key := range []string{"k1", "k2", "k3"} {
				name, ok := keys.holder(key)
				if name != tt.want[i] || ok != (tt.want[i] != "") {
					t.Errorf("holder(%s) = %q, %v; want %q", key, name, ok, tt.want[i])
				}
			}
			if _, ok := keys.holder(""); ok {
				t.Error("the empty key is a read key")
			}
		})
	}
	// Write keys are read by the same code, with their own flag names.
	if _, err := loadWriteKeys(newFlagSet("serve", "serve").ref, "", "w1"); err == nil || !strings.Contains(err.Error(), "--write-keys-inline") {
		t.Errorf("bad write key: %v, want an error naming --write-keys-inline", err)
	}
}

func TestCheckOpenQueryAPI(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr     string
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:8080", false, true},
		{"127.0.0.2:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"[::]:8080", false, false},
		{"192.0.2.7:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"no-port", true, false},
	} {
		var log bytes.Buffer
		err := checkOpenQueryAPI(context.Background(), newFlagSet("serve", "serve"), tt.addr, tt.insecure, slog.New(slog.NewTextHandler(&log, nil)))
		if (err == nil) != tt.ok {
			t.Errorf("%s insecure=%v: %v, want ok %v", tt.addr, tt.insecure, err, tt.ok)
		}
		if tt.insecure && tt.ok && !strings.Contains(log.String(), "level=WARN") {
			t.Errorf("%s insecure: no warning logged: %s", tt.addr, log.String())
		}
	}
}

// TestMetricsApartFromTheTrackingAPI: with --metrics-addr, /metrics (revenue, orders, NPS) is
// served on that address alone, not on --http-addr, which a collector's browsers reach (tester
// 30's F6); the rest of --http-addr is unchanged.
func TestMetricsApartFromTheTrackingAPI(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--metrics-addr", "127.0.0.1:0")
	s.waitLogged(t, "msg=serving")
	m := regexp.MustCompile(`msg=serving .* metrics=(127\.0\.0\.1:\d+)`).FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the serving line:\n%s", s.log)
	}
	postTrack(t, s, `{"batch":[{"type":"track","event":"Order Completed","userId":"m1","properties":{"revenue":12.5}}]}`)
	if status, body := httpGet(t, "http://"+m[1]+"/metrics"); status != 200 || !strings.Contains(body, "waymark_collector_requests_total") {
		t.Errorf("GET /metrics on --metrics-addr: %d, want 200 with the collector's metrics:\n%.500s", status, body)
	}
	if status, body := httpGet(t, "http://"+s.http+"/metrics"); status != 404 || !strings.Contains(body, "served here") || strings.Contains(body[strings.Index(body, "served here"):], "/metrics") {
		t.Errorf("GET /metrics on --http-addr: %d %s, want 404 not naming /metrics among the paths served", status, body)
	}
	if status, _ := httpGet(t, "http://"+m[1]+"/v1/track"); status != 404 {
		t.Errorf("GET /v1/track on --metrics-addr: %d, want 404", status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := httpGet(t, "http://"+s.http+path); status != 200 {
			t.Errorf("GET %s on --http-addr: %d %s, want 200", path, status, body)
		}
	}
}
