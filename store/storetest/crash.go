package storetest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// QueryLoggingEnv, set to anything, has the Debian engine's servers log every query
// (writeQueryLogging), so that a crash report names the query that crashed one. It is off by
// default: it cost the store package's tests on 18.16 about 15% more CPU (2026-12-06: 110 CPU-s
// against 96, one run each on a quiet machine).
const QueryLoggingEnv = "WAYMARK_TEST_CLICKHOUSE_QUERIES"

// writeQueryLogging writes config.d/logger.xml, which has the Debian engine's main log
// (log/clickhouse-server.log) take every query's text, at debug level: 18.16's report of a
// fatal signal names only the thread that took it, and the query that thread ran last is then
// found there (CrashReport). The log rotates at 100 MB, two files kept (the template's logger).
// The 26.7 engine's crash report names its query itself.
func writeQueryLogging(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "config.d"), 0o755); err != nil {
		return fmt.Errorf("write the server's logger config: %w", err)
	}
	conf := `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>debug</level>
    </logger>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.d", "logger.xml"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write the server's logger config: %w", err)
	}
	return nil
}

// maxCrashLines bounds the lines of a fatal signal's report that CrashReport returns.
const maxCrashLines = 120

var (
	// signalLine is the line of ClickHouse's error log that reports a fatal signal; its group
	// is the logging thread number of the thread that took it (as in "[ 21 ]" on other lines).
	signalLine = regexp.MustCompile(`\(from thread (\d+)\).*Received signal`)
	// logLineStart is how a line of ClickHouse's logs begins: the date.
	logLineStart = regexp.MustCompile(`^\d{4}\.\d{2}\.\d{2} `)
)

// CrashReport returns, when the server's error log reports a fatal signal, the whole report
// from its last such signal on (LogTail's tail can cut the stack) and the text of the last
// query the thread that took it began, from the main log: on 18.16 logging queries
// (QueryLoggingEnv), that is the query being run when the server crashed. It returns "" when
// the error log reports no fatal signal.
func (s *Server) CrashReport() string {
	logDir := filepath.Join(s.Dir, "log")
	lines, err := readLines(filepath.Join(logDir, "clickhouse-server.err.log"))
	if err != nil {
		return ""
	}
	at, thread := -1, ""
	for i, l := range lines {
		if m := signalLine.FindStringSubmatch(l); m != nil {
			at, thread = i, m[1]
		}
	}
	if at < 0 {
		return ""
	}
	from := max(at-1, 0) // the "####" line before it
	report := lines[from:min(len(lines), from+maxCrashLines)]
	var b strings.Builder
	fmt.Fprintf(&b, "--- fatal signal (%s)\n%s\n", filepath.Join(logDir, "clickhouse-server.err.log"), strings.Join(report, "\n"))
	// The main log and the one it rotated to (clickhouse-server.log.0), newest first.
	for _, f := range []string{"clickhouse-server.log", "clickhouse-server.log.0"} {
		if q := lastQueryOf(filepath.Join(logDir, f), thread); q != "" {
			fmt.Fprintf(&b, "--- the last query thread %s began (%s)\n%s\n", thread, f, q)
			return b.String()
		}
	}
	fmt.Fprintf(&b, "--- no query of thread %s in the main log (%s=1 logs every query)\n", thread, QueryLoggingEnv)
	return b.String()
}

// lastQueryOf returns the last line of the log file that begins a query on the given logging
// thread ("[ N ] … executeQuery: (from …) SELECT …", with any lines it runs on to), or "".
func lastQueryOf(file, thread string) string {
	lines, err := readLines(file)
	if err != nil {
		return ""
	}
	tag := "[ " + thread + " ] "
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.Contains(lines[i], tag) || !strings.Contains(lines[i], "executeQuery: (from ") {
			continue
		}
		end := i + 1
		for end < len(lines) && !logLineStart.MatchString(lines[end]) {
			end++
		}
		return strings.Join(lines[i:end], "\n")
	}
	return ""
}

// readLines reads a log file's lines; a line longer than 16 MiB (a query's text) ends the read.
func readLines(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
