package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayOfAPrettyPrintedBodySaysOneValuePerLine: a /v1/batch body written over several lines
// (as the field cases' batch.json) is JSON, just not one value per line: replay says so and
// suggests `jq -c`, rather than that the file "is not segment" (tester14 F7). The same body on
// one line replays.
func TestReplayOfAPrettyPrintedBodySaysOneValuePerLine(t *testing.T) {
	b := devBroker(t, 3)
	body := []byte(`{"batch":[{"type":"track","userId":"sp1","event":"E","messageId":"sp-1","timestamp":"2025-05-01T10:00:00Z"},{"type":"track","userId":"sp2","event":"E","messageId":"sp-2","timestamp":"2025-05-01T10:00:00Z"}]}`)
	var pretty, compact bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	replay := func(content []byte) (code int, stdout, stderr, file string) {
		file = filepath.Join(dir, "batch.json")
		if err := os.WriteFile(file, append(content, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr = replayBinary(t, b.Addr(), "--format", "segment", "--file", file)
		return code, stdout, stderr, file
	}
	code, stdout, stderr, file := replay(pretty.Bytes())
	for _, want := range []string{"--format: " + file + " is not one JSON value per line", "first skipped: line 1: invalid_json", "jq -c", "nothing was sent, so nothing was dead-lettered either"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("replay of a pretty-printed batch body: exit %d, want non-zero and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
	if strings.Contains(stderr, "is not segment") {
		t.Errorf("replay of a pretty-printed batch body says the file is not segment:\n%s", stderr)
	}
	if code, stdout, stderr, _ := replay(compact.Bytes()); code != 0 || !strings.Contains(stdout, "sent 2 events,") {
		t.Errorf("replay of the body on one line: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestCompactedNameIsNeverTheFile: replay's suggestion for a pretty-printed file, `jq -c . FILE >
// NAME`, named r2.jsonl for r2.jsonl, and the shell empties the file before jq reads it.
func TestCompactedNameIsNeverTheFile(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"r2.jsonl", "r2.compact.jsonl"},
		{"batch.json", "batch.compact.jsonl"},
		{"export", "export.compact.jsonl"},
		{"dir.v2/export", "dir.v2/export.compact.jsonl"},
		{"r2.compact.jsonl", "r2.compact.compact.jsonl"},
		{"/tmp/x/export.ndjson", "/tmp/x/export.compact.jsonl"},
		{".jsonl", ".compact.jsonl"},
		{"r2.jsonl.gz", "r2.jsonl.compact.jsonl"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			got := compactedName(tt.file)
			if got != tt.want || got == tt.file {
				t.Errorf("compactedName(%q) = %q, want %q (never the file itself)", tt.file, got, tt.want)
			}
		})
	}
}

// TestReplayAdviceForAPrettyPrintedFileWorks (tester 48's F3, F6): the command replay advises for
// a pretty-printed file writes one message per line, which replays. It advised `jq -c . FILE`
// whatever the file held: for a JSON array that writes the array on one line, which replay
// refuses again (each element on its own line is `jq -c '.[]'`), and for a gzip file jq reads
// no gzip (gunzip -c first). A file of arrays on one line each is advised the same (it was
// refused as "a message is a JSON object", no more), and so is standard input (--file -: it got
// the skipped lines' count alone), with jq in the pipe before replay, judged by the first bytes
// replay read of it (the array here is longer than those). The advice is run when jq is installed.
func TestReplayAdviceForAPrettyPrintedFileWorks(t *testing.T) {
	b := devBroker(t, 3)
	const n = 300 // messages: more than the 64 KiB of standard input replay keeps, pretty-printed
	var list []string
	for i := range n {
		list = append(list, fmt.Sprintf(`{"type":"track","userId":"pa%d","event":"E","messageId":"pa-%d","timestamp":"2025-05-01T10:00:00Z","properties":{"note":"%0150d"}}`, i, i, i))
	}
	msgs := []byte("[" + strings.Join(list, ",") + "]")
	var array, object bytes.Buffer
	if err := json.Indent(&array, msgs, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&object, append(append([]byte(`{"batch":`), msgs...), '}'), "", "  "); err != nil {
		t.Fatal(err)
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	oneLine := []byte("[" + strings.Join(list[:n/2], ",") + "]\n[" + strings.Join(list[n/2:], ",") + "]\n")
	_, jqErr := exec.LookPath("jq")
	for _, tt := range []struct {
		name    string
		content []byte
		stdin   bool   // piped to --file -
		advice  string // with F for the file and N for the name written
		not     string
	}{
		{"array.json", array.Bytes(), false, "`jq -c '.[]' F > N`", "jq -c . "},
		{"batch.json", object.Bytes(), false, "`jq -c . F > N`", "'.[]'"},
		{"batch.json.gz", gzipped(object.Bytes()), false, "`gunzip -c F | jq -c . > N`", "jq -c . F"},
		{"array.json.gz", gzipped(array.Bytes()), false, "`gunzip -c F | jq -c '.[]' > N`", "jq -c . "},
		{"arrays.jsonl", oneLine, false, "`jq -c '.[]' F > N`", "jq -c . "},
		// a name the shell reads specially is quoted (tester 50's F2)
		{"my export's $(touch pwned) v2.json", array.Bytes(), false, "`jq -c '.[]' F > N`", "jq -c . "},
		{"array.json on stdin", array.Bytes(), true, "`… | jq -c '.[]' | waymark replay --file - …`", "jq -c . "},
		{"batch.json on stdin", object.Bytes(), true, "`… | jq -c . | waymark replay --file - …`", "'.[]'"},
		{"array.json.gz on stdin", gzipped(array.Bytes()), true, "`… | gunzip -c | jq -c '.[]' | waymark replay --file - …`", "jq -c . "},
		{"arrays.jsonl on stdin", oneLine, true, "`… | jq -c '.[]' | waymark replay --file - …`", "jq -c . "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, strings.TrimSuffix(tt.name, " on stdin"))
			if err := os.WriteFile(file, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			advice := strings.NewReplacer("F", shellQuote(file), "N", shellQuote(compactedName(file))).Replace(tt.advice)
			notAdvice := strings.NewReplacer("F", shellQuote(file)).Replace(tt.not)
			var code int
			var stdout, stderr string
			if tt.stdin {
				advice = tt.advice
				code, stdout, stderr = replayBinaryReading(t, b.Addr(), tt.content, "--format", "segment", "--file", "-")
				if !strings.Contains(stderr, "--format: standard input ") {
					t.Errorf("replay of %s does not name standard input:\n%s", tt.name, stderr)
				}
			} else {
				code, stdout, stderr = replayBinary(t, b.Addr(), "--format", "segment", "--file", file)
			}
			if code == 0 || !strings.Contains(stderr, advice) || strings.Contains(stderr, notAdvice) {
				t.Fatalf("replay of a pretty-printed %s: exit %d, want non-zero advising %s, never %q\nstdout:\n%s\nstderr:\n%s", tt.name, code, advice, notAdvice, stdout, stderr)
			}
			if jqErr != nil {
				t.Skip("no jq to run the advice with")
			}
			want := fmt.Sprintf("sent %d events,", n)
			if tt.stdin { // the pipe, from the file to this replay
				pipe := strings.NewReplacer("… |", "cat "+file+" |", "waymark replay --file - …", binary+" replay --format segment --file -").Replace(strings.Trim(advice, "`"))
				cmd := exec.Command("sh", "-c", pipe)
				cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+b.Addr())
				if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
					t.Errorf("the advice as %s: %v, want %q\n%s", pipe, err, want, out)
				}
				return
			}
			if out, err := exec.Command("sh", "-c", strings.Trim(advice, "`")).CombinedOutput(); err != nil {
				t.Fatalf("the advice %s: %v\n%s", advice, err, out)
			}
			if code, stdout, stderr := replayBinary(t, b.Addr(), "--format", "segment", "--file", compactedName(file)); code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("replay of what the advice %s wrote: exit %d, want %q\nstdout:\n%s\nstderr:\n%s", advice, code, want, stdout, stderr)
			}
		})
	}
}

// TestReplayAdvisesTheFormatOfPrettyPrintedJSON (tester 53's F14): a pretty-printed JSON file, or
// standard input, given with a CSV --format (taobao, rees46) was advised jq alone, as one given
// --format segment is, and what jq wrote was refused again as "not taobao". It is said to be
// JSON, and when its values read as a format (Segment messages), to be replayed as that, jq's
// output read with --format segment; a JSON --format its values are not (otto) is told so too.
// The advice for a file is run when jq is installed.
func TestReplayAdvisesTheFormatOfPrettyPrintedJSON(t *testing.T) {
	b := devBroker(t, 3)
	const msg = `{"type":"track","userId":"pj","event":"E","messageId":"pj-%d","timestamp":"2025-05-01T10:00:00Z"}`
	array := "[\n  " + fmt.Sprintf(msg, 1) + ",\n  " + fmt.Sprintf(msg, 2) + "\n]\n"
	batch := "{\n  \"batch\": [\n    " + fmt.Sprintf(msg, 1) + ",\n    " + fmt.Sprintf(msg, 2) + "\n  ]\n}\n"
	_, jqErr := exec.LookPath("jq")
	for _, tt := range []struct {
		name, format, file, content string
		stdin                       bool
		want                        []string // with {F} for the file and {N} for the name written
		run                         string   // advice to run, then replay what it wrote as segment
		not                         string
	}{
		{"taobao, an array", "taobao", "array.json", array, false, []string{
			"--format: {F} is JSON, not the CSV records --format taobao reads", "its values read as --format segment",
			"then `waymark replay --format segment --file {N} …`"}, "`jq -c '.[]' {F} > {N}`", "is not one JSON value per line"},
		{"rees46, a batch body", "rees46", "batch.json", batch, false, []string{
			"--format: {F} is JSON, not the CSV records --format rees46 reads", "its values read as --format segment",
			"then `waymark replay --format segment --file {N} …`"}, "`jq -c . {F} > {N}`", "is not one JSON value per line"},
		{"rees46, an array on stdin", "rees46", "array.json", array, true, []string{
			"--format: standard input is JSON, not the CSV records --format rees46 reads", "its values read as --format segment",
			"`… | jq -c '.[]' | waymark replay --format segment --file - …`"}, "", "is not one JSON value per line"},
		{"taobao, values of no format on stdin", "taobao", "other.json", "[\n  {\"a\": 1}\n]\n", true, []string{
			"--format: standard input is JSON, not the CSV records --format taobao reads",
			"replay reads JSON as --format segment (Segment messages) or otto (OTTO sessions)"}, "", "its values read as"},
		{"otto, an array", "otto", "array.json", array, false, []string{
			"--format: {F} is not one JSON value per line", "then `waymark replay --format segment --file {N} …`",
			"its values read as --format segment, not otto"}, "`jq -c '.[]' {F} > {N}`", "CSV"},
		{"segment, an array", "segment", "array.json", array, false, []string{
			"--format: {F} is not one JSON value per line", "`jq -c '.[]' {F} > {N}`"}, "", "its values read as"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(file, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			var code int
			var stdout, stderr string
			if tt.stdin {
				code, stdout, stderr = replayBinaryReading(t, b.Addr(), []byte(tt.content), "--format", tt.format, "--file", "-")
			} else {
				code, stdout, stderr = replayBinary(t, b.Addr(), "--format", tt.format, "--file", file)
			}
			names := strings.NewReplacer("{F}", shellQuote(file), "{N}", shellQuote(compactedName(file)))
			for _, want := range append(tt.want, tt.run) {
				if want = names.Replace(want); code == 0 || !strings.Contains(stderr, want) {
					t.Errorf("replay --format %s of a pretty-printed %s: exit %d, want non-zero and %s\nstdout:\n%s\nstderr:\n%s", tt.format, tt.file, code, want, stdout, stderr)
				}
			}
			if strings.Contains(stderr, tt.not) {
				t.Errorf("replay --format %s of a pretty-printed %s says %q:\n%s", tt.format, tt.file, tt.not, stderr)
			}
			if tt.run == "" || t.Failed() {
				return
			}
			if jqErr != nil {
				t.Skip("no jq to run the advice with")
			}
			run := strings.Trim(names.Replace(tt.run), "`")
			if out, err := exec.Command("sh", "-c", run).CombinedOutput(); err != nil {
				t.Fatalf("the advice %s: %v\n%s", run, err, out)
			}
			if code, stdout, stderr := replayBinary(t, b.Addr(), "--format", "segment", "--file", compactedName(file)); code != 0 || !strings.Contains(stdout, "sent 2 events,") {
				t.Errorf("replay --format segment of what the advice %s wrote: exit %d, want 2 events sent\nstdout:\n%s\nstderr:\n%s", run, code, stdout, stderr)
			}
		})
	}
}

// TestCompactAdviceReplaysAsTheValuesFormat (tester 53's F14): when the values of a pretty-printed
// input read as another format than --format's, the advice replays what jq writes as that one,
// for a file, standard input and a named pipe alike, and names no format when they are --format's.
func TestCompactAdviceReplaysAsTheValuesFormat(t *testing.T) {
	for _, tt := range []struct {
		file       string
		fifo, gzip bool
		as, want   string
	}{
		{"x.json", false, false, "segment", "`jq -c '.[]' x.json > x.compact.jsonl` (each element of the array becomes a line), then `waymark replay --format segment --file x.compact.jsonl …`"},
		{"x.json.gz", false, true, "segment", "`gunzip -c x.json.gz | jq -c '.[]' > x.json.compact.jsonl` (each element of the array becomes a line), then `waymark replay --format segment --file x.json.compact.jsonl …`"},
		{"-", false, true, "segment", "`… | gunzip -c | jq -c '.[]' | waymark replay --format segment --file - …` (each element of the array becomes a line)"},
		{"p", true, false, "segment", "`… | jq -c '.[]' > p` in what writes to the named pipe, which is read once (each element of the array becomes a line), read by `waymark replay --format segment --file p …`"},
		{"p", true, false, "", "`… | jq -c '.[]' > p` in what writes to the named pipe, which is read once (each element of the array becomes a line)"},
		{"-", false, false, "", "`… | jq -c '.[]' | waymark replay --file - …` (each element of the array becomes a line)"},
	} {
		if got := compactAdvice(tt.file, tt.fifo, true, tt.gzip, tt.as); got != tt.want {
			t.Errorf("compactAdvice(%q, fifo %v, gzipped %v, as %q) =\n%s\nwant\n%s", tt.file, tt.fifo, tt.gzip, tt.as, got, tt.want)
		}
	}
}
