package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestReplayFileStartingWithABOM: a tester's Windows export. A JSONL file starting with a UTF-8
// byte order mark (PowerShell's Out-File writes one) lost its first event as invalid_json; the
// mark is dropped, and every event of the file is stored. The same file replayed in a format it
// is not (every line skipped) exits non-zero naming the count; a file some of whose lines are
// sent exits 0 and prints the skipped count.
func TestReplayFileStartingWithABOM(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	dir := t.TempDir()
	lines := []string{
		`{"type":"track","userId":"bom1","event":"BOM First","messageId":"bom-1","timestamp":"2025-05-01T10:00:00Z"}`,
		`{"type":"track","userId":"bom1","event":"BOM Second","messageId":"bom-2","timestamp":"2025-05-01T10:01:00Z"}`,
	}
	bom := filepath.Join(dir, "bom.jsonl")
	if err := os.WriteFile(bom, []byte("\ufeff"+strings.Join(lines, "\r\n")+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := s.waymark(t, "replay", "--format", "segment", "--file", bom, "--wait", "2m")
	if !strings.Contains(out, "sent 2 events, skipped 0 events") {
		t.Errorf("replay of a file starting with a BOM:\n%s", out)
	}
	if n := liveEvents(t, s.database); n != uint64(len(lines)) {
		t.Errorf("stored %d events, want %d", n, len(lines))
	}

	// A byte order mark is dropped at the start of the file only: one starting a later line is
	// that line's text, no JSON.
	partial := filepath.Join(dir, "partial.jsonl")
	if err := os.WriteFile(partial, []byte(lines[0]+"\n\ufeff"+lines[1]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.waymark(t, "replay", "--format", "segment", "--file", partial)
	if !strings.Contains(out, "sent 1 event, skipped 1 event") || !strings.Contains(out, "skipped line 2: invalid_json") {
		t.Errorf("replay of a file with a BOM on line 2 (exit 0, one line sent):\n%s", out)
	}

	garbage := filepath.Join(dir, "garbage.jsonl")
	if err := os.WriteFile(garbage, []byte("not json\n{\"type\":\"track\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ format, file string }{{"taobao", bom}, {"segment", garbage}} {
		format := tt.format
		cmd := exec.Command(binary, "replay", "--format", format, "--file", tt.file)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+s.broker)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(stderr.String(), "all 2 lines were skipped") || !strings.Contains(string(stdout), "sent 0 events, skipped 2 events") {
			t.Errorf("replay --format %s of a Segment file: %v\nstdout:\n%s\nstderr:\n%s", format, err, stdout, stderr.String())
		}
	}
}

// TestReplayFileInUTF16 (tester 35's F7): a Windows export in UTF-16 with its byte order mark
// (PowerShell 5's >) is replayed as its UTF-8 text, every event stored; one in UTF-32 is refused
// naming --file and the encoding, with nothing sent, where it was "not segment" blaming a byte 'ÿ'.
func TestReplayFileInUTF16(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	dir := t.TempDir()
	text := "\ufeff" + `{"type":"track","userId":"u16","event":"U16 Café","messageId":"u16-1","timestamp":"2025-05-01T10:00:00Z"}` + "\r\n" +
		`{"type":"track","userId":"u16","event":"U16 Second","messageId":"u16-2","timestamp":"2025-05-01T10:01:00Z"}` + "\r\n"
	var le16, le32 []byte
	for _, u := range utf16.Encode([]rune(text)) {
		le16 = append(le16, byte(u), byte(u>>8)) // little-endian
	}
	for _, r := range text {
		le32 = append(le32, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
	}
	tests := []struct {
		name string
		file []byte
		want string // "" when every event is sent, else a part of the error
	}{
		{"u16.jsonl", le16, ""},
		{"u32.jsonl", le32, "is UTF-32LE (byte order mark FF FE 00 00), which replay does not read: convert it to UTF-8 first, e.g. `iconv -f UTF-32 -t UTF-8`; nothing was sent"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name)
		if err := os.WriteFile(path, tt.file, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "replay", "--format", "segment", "--file", path, "--wait", "2m")
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+s.broker)
		out, err := cmd.CombinedOutput()
		switch {
		case tt.want == "" && (err != nil || !strings.Contains(string(out), "sent 2 events, skipped 0 events")):
			t.Errorf("replay of %s: %v\n%s", tt.name, err, out)
		case tt.want != "" && (err == nil || !strings.Contains(string(out), "waymark: --file: "+path+": the file "+tt.want)):
			t.Errorf("replay of %s: %v\n%s\nwant it refused: --file: %s: the file %s", tt.name, err, out, path, tt.want)
		}
	}
	s.waitStored(t)
	if got := queryStrings(t, "SELECT event FROM "+s.database+".events ORDER BY message_id"); fmt.Sprint(got) != "[U16 Café U16 Second]" {
		t.Errorf("stored %v, want [U16 Café U16 Second]", got)
	}
}

// TestReplayRefusesBinaryDataWhole: a PNG replayed as any format is refused as one, naming --file
// and what it is, with no line read or skipped; each of its "lines" was skipped as not JSON and
// counted in the summary, three skipped lines and more (tester 50's F12). Nothing is sent, so no
// broker is dialled.
func TestReplayRefusesBinaryDataWhole(t *testing.T) {
	t.Parallel()
	png := filepath.Join(t.TempDir(), "x.png")
	if err := os.WriteFile(png, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range ingest.Formats {
		cmd := exec.Command(binary, "replay", "--format", format, "--file", png)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR=127.0.0.1:1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		want := "waymark: --file: " + png + ": not JSON or CSV: binary data starting with byte 0x89 (a PNG image), where replay reads text: a JSON value (segment, otto) or a CSV record (taobao, rees46) a line; nothing was sent\n"
		if err == nil || stderr.String() != want || !strings.Contains(string(out), "read 0 lines (0 events), sent 0 events, skipped 0 events") || strings.Contains(string(out), "skipped line") {
			t.Errorf("replay --format %s of a PNG: %v\nstdout:\n%s\nstderr:\n%s\nwant stderr %q", format, err, out, stderr.String(), want)
		}
	}
}

// TestReplayOfAnotherFormatFails: a file replayed as a format it is not exits non-zero, naming
// --format, what its lines are (the first line skipped and why) and the format they read as,
// and sends nothing, for every pair of formats; so does a file most of whose lines are skipped
// (but not one with a few bad lines among good ones), and a file with no line names --file.
// Before, `--format otto` of a Segment file read every line as an OTTO session of no events and
// exited 0 ("sent 0, skipped 0").
func TestReplayOfAnotherFormatFails(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t)
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	segmentLine := func(i int) string {
		return fmt.Sprintf(`{"type":"track","userId":"wf%d","event":"Product Viewed","messageId":"wf-%d","timestamp":"2025-05-01T10:00:00Z"}`, i, i)
	}
	taobaoLine := func(i int) string { return fmt.Sprintf("wf%d,2,3,pv,151154407%d", i, i) }
	files := map[string]string{
		"segment": write("export.jsonl", segmentLine(1), segmentLine(2)),
		"otto":    write("otto.jsonl", `{"session":12,"events":[{"aid":5,"ts":1659304800025,"type":"clicks"},{"aid":6,"ts":1659304900025,"type":"orders"}]}`),
		"taobao":  write("UserBehavior.csv", taobaoLine(1), taobaoLine(2)),
		"rees46":  write("2019-Oct.csv", "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session", "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c"),
	}
	replay := func(args ...string) (exitCode int, stdout, stderr string) {
		cmd := exec.Command(binary, append([]string{"replay"}, args...)...)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+s.broker)
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		out, err := cmd.Output()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("replay %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), string(out), errBuf.String()
	}
	for fileFormat, file := range files {
		for _, format := range ingest.Formats {
			if format == fileFormat {
				continue
			}
			code, stdout, stderr := replay("--format", format, "--file", file)
			for _, want := range []string{"--format: " + file + " is not " + format + ": ", "read as --format " + fileFormat, "nothing was sent, so nothing was dead-lettered either"} {
				if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stdout, "sent 0 events,") {
					t.Errorf("replay --format %s of a %s file: exit %d, want non-zero with %q\nstdout:\n%s\nstderr:\n%s", format, fileFormat, code, want, stdout, stderr)
					break
				}
			}
		}
	}

	// Most lines skipped: the three that read are not sent either, and the skipped ones are not
	// dead-lettered. A line of text is said to be no JSON (tester 47).
	mixed := write("mixed.jsonl", segmentLine(3), segmentLine(4), segmentLine(5), taobaoLine(3), taobaoLine(4), taobaoLine(5), taobaoLine(6))
	if code, stdout, stderr := replay("--format", "segment", "--file", mixed); code == 0 ||
		!strings.Contains(stderr, "--format: "+mixed+" is not segment: 4 of 7 lines were skipped (first: line 4: invalid_json: not JSON: text starting with 'w'") ||
		!strings.Contains(stderr, "nothing was sent, so nothing was dead-lettered either") {
		t.Errorf("replay of a file most of whose lines are no Segment messages: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// A few bad lines among good ones: sent, listed, exit 0.
	mostlyGood := write("mostly-good.jsonl", segmentLine(6), taobaoLine(7), segmentLine(8))
	if code, stdout, stderr := replay("--format", "segment", "--file", mostlyGood); code != 0 || !strings.Contains(stdout, "sent 2 events, skipped 1 event") || !strings.Contains(stdout, "skipped line 2: invalid_json: not JSON: text starting with 'w'") {
		t.Errorf("replay of a file with one bad line of three: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	empty := write("empty.jsonl")
	if code, _, stderr := replay("--format", "segment", "--file", empty); code == 0 || !strings.Contains(stderr, "--file: "+empty+" holds no event to replay") {
		t.Errorf("replay of an empty file: exit %d, stderr:\n%s", code, stderr)
	}
	// Only the good file's events are stored: wf-6 and wf-8.
	s.waitStored(t)
	if got := queryStrings(t, "SELECT DISTINCT message_id FROM "+s.database+".events ORDER BY message_id"); fmt.Sprint(got) != "[wf-6 wf-8]" {
		t.Errorf("stored %v, want [wf-6 wf-8]", got)
	}
}

// TestReplayGzipBatchBodiesFromStdin: what shops have. A gzip-compressed export of /v1/batch
// bodies, piped in with --file -, is stored event by event, each with its batch's context (the
// collector's merge: the event's own members win); --repeat needs a file.
func TestReplayGzipBatchBodiesFromStdin(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	body := `{"batch":[` +
		`{"type":"track","userId":"gz1","event":"Gz A","messageId":"gz-a","timestamp":"2025-05-01T10:00:00Z","context":{"ip":"10.0.0.9"}},` +
		`{"type":"track","userId":"gz1","event":"Gz B","messageId":"gz-b","timestamp":"2025-05-01T10:01:00Z"}` +
		`],"context":{"ip":"10.0.0.1","page":{"path":"/from-batch"}},"sentAt":"2025-05-01T10:01:01Z"}`
	single := `{"type":"track","userId":"gz1","event":"Gz C","messageId":"gz-c","timestamp":"2025-05-01T10:02:00Z"}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprintf(zw, "%s\n%s\n", body, single)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command(binary, append([]string{"replay", "--format", "segment", "--file", "-"}, args...)...)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+s.broker)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return string(out) + stderr.String(), err
	}
	out, err := run(gz.Bytes())
	if err != nil || !strings.Contains(out, "sent 3 events, skipped 0 events") {
		t.Fatalf("replay of gzip batch bodies from stdin: %v\n%s", err, out)
	}
	waitFor(t, "3 events stored", func() bool { return liveEvents(t, s.database) == 3 })
	ips := queryStrings(t, `SELECT concat(event, ' ', page_path, ' ', if(position(raw, '10.0.0.9') > 0, '9', if(position(raw, '10.0.0.1') > 0, '1', '-'))) FROM `+s.database+`.events FINAL WHERE user_id = 'gz1' ORDER BY event`)
	want := []string{"Gz A /from-batch 9", "Gz B /from-batch 1", "Gz C  -"} // the event's own ip wins
	if !slices.Equal(ips, want) {
		t.Errorf("stored %q, want %q", ips, want)
	}
	if out, err := run(gz.Bytes(), "--repeat", "2"); err == nil || !strings.Contains(out, "--repeat") {
		t.Errorf("--repeat 2 of stdin: %v\n%s, want an error naming --repeat", err, out)
	}
}

// TestReplayNamesTheWriteKeyARefusal: a collector that answers 401 refused the write key, which no
// retry mends: replay fails naming --write-key (or its variable), not only with the collector's
// words, and sends nothing.
func TestReplayNamesTheWriteKeyARefusal(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--roles", "collector")
	for _, tt := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--write-key", "not-a-key"}, "", "waymark: --write-key: replay " + taobaoSample + ": collector http://" + s.http + "/v1/batch answered 401: "},
		{nil, "WAYMARK_WRITE_KEY=not-a-key", "waymark: WAYMARK_WRITE_KEY (--write-key): replay " + taobaoSample + ": collector http://" + s.http + "/v1/batch answered 401: "},
	} {
		cmd := exec.Command(binary, append([]string{"replay", "--format", "taobao", "--file", taobaoSample, "--collector", "http://" + s.http}, tt.args...)...)
		cmd.Env = append(os.Environ(), tt.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "write key refused; check it against the collector's write keys") ||
			!strings.Contains(string(out), " sent 0 events,") {
			t.Errorf("replay with a write key the collector refuses: %v\n%s\nwant an error starting %q", err, out, tt.want)
		}
	}
}

// TestReplayCollectorIsABaseURL: --collector is the collector's base URL, to which replay adds
// /v1/batch as a path: with a trailing slash, or with a path prefix a proxy serves the
// collector under, it reaches the collector; the API's own path (/v1), a query, a fragment or a
// user is refused naming --collector before anything is read, and a base with no collector's
// API under it (a 404) names --collector too. The URL was built as text, base + "/v1/batch": a
// query swallowed the path (?x=1/v1/batch), /v1/ posted to /v1/v1/batch, and the 404s named no
// flag (a tester's finding).
func TestReplayCollectorIsABaseURL(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--roles", "collector")
	target, err := url.Parse("http://" + s.http)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(http.StripPrefix("/waymark", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close)
	file := filepath.Join(t.TempDir(), "one.jsonl")
	if err := os.WriteFile(file, []byte(`{"type":"track","userId":"u","event":"E","timestamp":"2026-01-01T00:00:00Z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		collector string
		want      string // the error's start; "" for one event sent
	}{
		{"http://" + s.http, ""},
		{"http://" + s.http + "/", ""},
		{proxy.URL + "/waymark", ""},
		{proxy.URL + "/waymark/", ""},
		{"http://" + s.http + "/v1/", `--collector: invalid value "http://` + s.http + `/v1/": ends in the tracking API's path (/v1…), which is added to the base URL: want http://` + s.http},
		{proxy.URL + "/waymark/v1/batch", `--collector: invalid value "` + proxy.URL + `/waymark/v1/batch": ends in the tracking API's path (/v1…), which is added to the base URL: want ` + proxy.URL + "/waymark"},
		{"http://" + s.http + "?x=1", `--collector: invalid value "http://` + s.http + `?x=1": want scheme://host[:port][/path], with no user, query or fragment`},
		{"http://" + s.http + "/#top", `--collector: invalid value "http://` + s.http + `/#top": want scheme://host[:port][/path], with no user, query or fragment`},
		{"http://key:@" + s.http, `--collector: invalid value "http://key:@` + s.http + `": want scheme://host[:port][/path], with no user, query or fragment`},
		{proxy.URL, "--collector: " + proxy.URL + "/v1/batch answered 404: "},
		{proxy.URL + "/other", "--collector: " + proxy.URL + "/other/v1/batch answered 404: "},
	} {
		var out strings.Builder
		err := run(context.Background(), []string{"replay", "--format", "segment", "--file", file, "--write-key", "test-key", "--collector", tt.collector}, &out, slog.New(slog.DiscardHandler))
		switch {
		case tt.want == "" && (err != nil || !strings.Contains(out.String(), " sent 1 event,")):
			t.Errorf("--collector %s: %v\n%s, want the event sent", tt.collector, err, out.String())
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("--collector %s: error %v, want it to start %q", tt.collector, err, tt.want)
		}
	}
}
