package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

func runReplay(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("replay", "replay --format taobao|rees46|otto|segment --file PATH [flags]")
	kf := addKafkaFlags(fs)
	format := fs.String("format", "", "dataset format: "+strings.Join(ingest.Formats, ", "))
	file := fs.String("file", "", "dataset file to replay, gzip-compressed or not (told by its first bytes); - reads standard input")
	var repeat int
	checkedVar(fs, &repeat, "repeat", 1, "passes over the file, at least 1; each pass after the first uses fresh customer and message ids", wholeNumber(1, math.MaxInt), nil)
	var collector string
	checkedVar(fs, &collector, "collector", "", "base URL of a collector, http:// or https:// (e.g. http://127.0.0.1:8080, or https://shop.example/waymark behind a proxy): send to its /v1/batch instead of straight to Kafka", text, func(s string) error {
		if s == "" {
			return nil
		}
		_, err := ingest.ParseBaseURL(s)
		return err
	})
	writeKey := fs.String("write-key", "", "write key for --collector")
	var wait time.Duration
	checkedVar(fs, &wait, "wait", 0, "after sending, wait up to this long until the consumer group has stored everything (0: don't wait)", parseDuration, atLeast(time.Duration(0)))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *format == "":
		return fmt.Errorf("--format is required (%s)", strings.Join(ingest.Formats, ", "))
	case !slices.Contains(ingest.Formats, *format):
		return fs.errorf("format", "%s is not one of %s", quoteValue(*format), strings.Join(ingest.Formats, ", "))
	case *file == "":
		return fmt.Errorf("--file is required")
	case collector != "" && *writeKey == "":
		return fmt.Errorf("--write-key is required with %s", fs.ref("collector"))
	}
	cfg := ingest.ReplayConfig{Brokers: kf.brokerList(), Topic: kf.topic, DLQTopic: kf.dlqTopic, Format: *format, File: *file, Repeat: repeat,
		Collector: collector, WriteKey: *writeKey}
	// once is standard input, or a named pipe read in one pass, read once, keeping its first
	// bytes for a refusal to look at; fifo is the named pipe's writer, to advise (tester 50's F4).
	var once *headReader
	var fifo bool
	if *file == "-" {
		if repeat > 1 {
			return fs.errorf("repeat", "%d passes need a file: standard input (--file -) is read once", repeat)
		}
		once = &headReader{r: os.Stdin, max: stdinHead}
		cfg.Reader = once
	} else if err := checkDatasetFile(*file); err != nil {
		return fs.errorf("file", "%w", err)
	} else if st, err := os.Stat(*file); err == nil && !st.Mode().IsRegular() {
		// A pipe or a device is read once, as standard input is: a second pass waited for a
		// writer that never came, holding the first pass's events unsent (tester 53's F1).
		if repeat > 1 {
			kind := "not a regular file"
			switch {
			case st.Mode()&os.ModeNamedPipe != 0:
				kind = "a named pipe"
			case st.Mode()&os.ModeDevice != 0:
				kind = "a device"
			}
			return fs.errorf("repeat", "%d passes need a file read again: %s is %s, read once", repeat, *file, kind)
		}
		pipe := &pipeFile{path: *file}
		defer pipe.close(ctx)
		once = &headReader{r: pipe, max: stdinHead}
		cfg.Reader = once
		fifo = st.Mode()&os.ModeNamedPipe != 0 && !ownDescriptor(*file)
	}
	if wait > 0 && collector != "" {
		// --wait reads the consumer group's progress on the brokers, which sending to a
		// collector does not otherwise dial: a broker that does not answer is found before
		// anything is sent, not after (tester 42's F7: the events were accepted, then replay
		// exited 1, and a script would send them again).
		if err := dialAny(ctx, cfg.Brokers); err != nil {
			return brokerUnanswered(fs, kf, fmt.Errorf("%s reads the consumer group's progress there, after sending to %s; nothing was sent: %w",
				fs.ref("wait"), fs.ref("collector"), err))
		}
	}
	start := time.Now()
	dest := kf.topic + " on " + strings.Join(cfg.Brokers, ",")
	if collector != "" {
		dest = "collector " + collector
	}
	// The events sent so far, for the progress line on a terminal and for the line of an exit
	// at once on a second Ctrl-C, which said nothing of them (tester 55's F3).
	var sentSoFar atomic.Int64
	terminal := isTerminal(os.Stderr)
	cfg.Progress = func(sent int) {
		sentSoFar.Store(int64(sent))
		if terminal {
			fmt.Fprintf(os.Stderr, "\rsent %d messages (%.0f/s)", sent, float64(sent)/time.Since(start).Seconds())
		}
	}
	if ex := exiterOf(ctx); ex != nil {
		taker := "the broker" // who may hold part of a send that had not ended
		if collector != "" {
			taker = "the collector"
		}
		ex.setNote(func() string {
			sent, rest := sentSoFar.Load(), "what it read after them"
			if sent == 0 {
				rest = "what it read"
			}
			return fmt.Sprintf("replay %s had sent %s to %s; %s was not sent, or was in a send that had not ended (which %s may hold in part)",
				*file, plural(int(sent), "event"), dest, rest, taker)
		})
	}
	sum, err := ingest.Replay(ctx, cfg)
	if terminal {
		fmt.Fprintln(os.Stderr)
	}
	took := time.Since(start)
	// One unit throughout: events (a line may hold a batch of them), the lines they came from
	// named once (tester 45's F2: "read 6, sent 6, skipped 1 lines" for one line of 7 events).
	fmt.Fprintf(stdout, "replay %s: read %s (%s), sent %s, skipped %s in %s (%.0f events/s) to %s\n",
		*file, plural(sum.Lines, "line"), plural(sum.Read+sum.SkippedEvents, "event"), plural(sum.Sent, "event"), plural(sum.SkippedEvents, "event"),
		took.Round(time.Millisecond), float64(sum.Sent)/took.Seconds(), dest)
	if sum.FutureTimestamps > 0 {
		fmt.Fprintf(stdout, "  %d events had a timestamp more than %s after their receive time (receivedAt, else now): set to it, the line's kept as originalTimestamp\n",
			sum.FutureTimestamps, ingest.MaxFutureTimestamp)
	}
	if sum.Rejected > 0 {
		fmt.Fprintf(stdout, "  the collector rejected %d events into the dead-letter topic\n", sum.Rejected)
	}
	const shown = 20
	for i, s := range sum.Skipped {
		if i == shown {
			fmt.Fprintf(stdout, "  … and %s more\n", plural(len(sum.Skipped)-shown, "skipped event"))
			break
		}
		fmt.Fprintf(stdout, "  skipped %s: %s\n", s.Place(), s.Reason)
	}
	// Nothing is lost: each skipped event is in the dead-letter topic with its reason, the
	// record of a one-shot process, which has no metric to count it (docs/operations.md).
	switch {
	case sum.DeadLettered > 0:
		fmt.Fprintf(stdout, "  dead-lettered the %s to %s, each with its reason (header %s)\n",
			plural(sum.DeadLettered, "skipped event"), kf.dlqTopic, ingest.HeaderDLQReason)
	case len(sum.Skipped) > 0 && collector != "" && err == nil:
		fmt.Fprintf(stdout, "  not sent to the collector, nor dead-lettered: the %s above (replay them straight to Kafka, without %s, to dead-letter them, or fix them and replay them)\n",
			plural(len(sum.Skipped), "skipped event"), fs.ref("collector"))
	}
	// A file most of whose lines were skipped, or whose header is not the format's, is most
	// likely of another format (or not the file meant): it exits non-zero naming --format, as
	// does a file with nothing to replay. A few skipped lines among many sent exit 0, listed above.
	var wrong *ingest.FormatError
	name := *file
	if *file == "-" {
		name = "standard input"
	}
	switch {
	case errors.As(err, &wrong) && wrong.Invalid:
		// The lines are the format's messages, refused for their content (tester 45's F3): the
		// file is not blamed on --format, and each line's reason is listed above.
		listed := "each is listed above with its reason"
		if wrong.Skipped == 1 {
			listed = "it is listed above with its reason"
		}
		msg := fmt.Sprintf("%s holds %v; %s", name, wrong, listed)
		return fs.errorf("file", "%s%s", msg, sentBeforeRefusal(sum))
	case errors.As(err, &wrong):
		msg := fmt.Sprintf("%s is %v", name, wrong)
		// look calls fn with the file, decompressed, from its start, and whether it is
		// gzipped: for standard input or a named pipe, which cannot be read again, its first
		// bytes as replay read them (stdinHead), the rest of which fn's reading takes to be cut
		// short. A named pipe is not opened again: that waits for a writer, and replay hung
		// there for good.
		look := func(fn func(r io.Reader, gzipped bool)) {
			var src io.Reader
			if once != nil {
				src = bytes.NewReader(once.head)
			} else if st, serr := os.Stat(*file); serr != nil || !st.Mode().IsRegular() {
				return
			} else if f, ferr := os.Open(*file); ferr == nil {
				defer f.Close()
				src = f
			} else {
				return
			}
			br := bufio.NewReader(src)
			magic, _ := br.Peek(2)
			if r, derr := ingest.Decompressed(br); derr == nil {
				fn(r, ingest.Gzipped(magic))
			}
		}
		look(func(r io.Reader, _ bool) {
			if found := ingest.DetectFormat(r); found != "" && found != *format {
				msg += fmt.Sprintf("; its first lines read as --format %s", found)
			}
		})
		// advised is the file the advice is for: standard input for a device, or for one of
		// replay's own descriptors (/dev/stdin, the /dev/fd/63 of `<(…)`), which no one writes
		// to or can name again, whatever it is (tester 53's F8: /dev/stdin redirected from a
		// file was told to write /dev/stdin.compact.jsonl).
		advised := *file
		if once != nil && !fifo || ownDescriptor(*file) {
			advised = "-"
		}
		look(func(r io.Reader, gzipped bool) {
			// JSON, whatever format, but not one object a line: a pretty-printed body, or
			// an array on a line (tester 48's F3: "a message is a JSON object", no advice)
			spread, array := ingest.SpreadJSON(r)
			if !spread && !array {
				return
			}
			// as is the format its values read as, one a line, when that is not --format's:
			// put on lines as advised, they are to be replayed as it (tester 53's F14: a
			// CSV --format was advised jq alone, and what jq wrote was refused again)
			var as string
			look(func(r io.Reader, _ bool) {
				if found := ingest.DetectFormat(ingest.OneValueALine(r)); found != *format {
					as = found
				}
			})
			advice := compactAdvice(advised, fifo, array, gzipped, as)
			switch {
			case !ingest.JSONLines(*format) && as == "":
				msg = fmt.Sprintf("%s is JSON, not the CSV records --format %s reads (first skipped: %s): replay reads JSON as --format segment (Segment messages) or otto (OTTO sessions), one value a line; put each value on one line, e.g. %s, and replay that with the format of its values",
					name, *format, wrong.Problem, compactAdvice(advised, fifo, array, gzipped, ""))
			case !ingest.JSONLines(*format):
				msg = fmt.Sprintf("%s is JSON, not the CSV records --format %s reads (first skipped: %s): its values read as --format %s, one a line; put each on one line and replay them as %s, e.g. %s",
					name, *format, wrong.Problem, as, as, advice)
			case spread:
				msg = fmt.Sprintf("%s is not one JSON value per line, which is what replay reads: its first value goes on over several lines, as in a pretty-printed body (first skipped: %s); put each value on one line first, e.g. %s",
					name, wrong.Problem, advice)
			default:
				msg = fmt.Sprintf("%s starts with a JSON array on a line, where replay reads one JSON object a line (first skipped: %s); put each element on a line of its own first, e.g. %s",
					name, wrong.Problem, advice)
			}
			if ingest.JSONLines(*format) && as != "" {
				msg += fmt.Sprintf("; its values read as --format %s, not %s", as, *format)
			}
		})
		return fs.errorf("format", "%s%s", msg, sentBeforeRefusal(sum))
	case err == nil && sum.Read == 0 && len(sum.Skipped) == 0:
		return fs.errorf("file", "%s holds no event to replay as %s", *file, *format)
	}
	if err != nil {
		if enc := (*ingest.EncodingError)(nil); errors.As(err, &enc) {
			return fs.errorf("file", "%s: %v; nothing was sent", *file, enc)
		}
		if bin := (*ingest.BinaryError)(nil); errors.As(err, &bin) { // refused whole (tester 50's F12)
			return fs.errorf("file", "%s: %v; nothing was sent", name, bin)
		}
		if errors.Is(err, ingest.ErrWriteKeyRefused) {
			return fs.errorf("write-key", "%v; check it against the collector's write keys (its --write-keys or --write-keys-inline)", err)
		}
		if errors.Is(err, ingest.ErrNoCollectorAPI) {
			return fs.errorf("collector", "%v: give the base URL the collector's /v1/batch is under (its --http-addr, e.g. http://127.0.0.1:8080, or a proxy's path to it)", err)
		}
		switch {
		case !dialFailed(err):
			return err
		case collector != "":
			return noAnswer(fs, "collector", "collector", collector, err)
		}
		return brokerUnanswered(fs, kf, err)
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		// kafka-go's client tries a broker that does not answer until the wait ends, and then
		// names no address: one dial first blames the broker's flag, not --wait's time.
		if err := dialAny(wctx, cfg.Brokers); err != nil {
			return brokerUnanswered(fs, kf, fmt.Errorf("%s reads the consumer group's progress there: %w", fs.ref("wait"), err))
		}
		if err := ingest.WaitCaughtUp(wctx, cfg.Brokers, kf.group, kf.topic); err != nil {
			return fs.errorf("wait", "%w", err)
		}
		fmt.Fprintf(stdout, "stored: consumer group %s has committed everything on %s (%s after start)\n",
			kf.group, kf.topic, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// sentBeforeRefusal ends the error of a file replay refused part way (an ingest.FormatError):
// how many events of its other lines were sent before, or that nothing was, and which of its
// skipped lines were dead-lettered. Replay dead-letters a chunk's skipped lines when it sends the
// chunk, after judging the file, so those skipped since the last chunk sent (all of them, for a
// file refused at its first chunk or replayed to a collector) are in no topic, which it says: a
// user looking for them in the dead-letter topic would look in vain (tester 47's note, tester
// 48's F8).
func sentBeforeRefusal(sum ingest.ReplaySummary) string {
	sent := "nothing was sent"
	if sum.Sent > 0 {
		verb := "were"
		if sum.Sent == 1 {
			verb = "was"
		}
		sent = fmt.Sprintf("%s of its other lines %s sent before that", plural(sum.Sent, "event"), verb)
	}
	switch left := len(sum.Skipped) - sum.DeadLettered; {
	case sum.DeadLettered == 0 && sum.Sent == 0:
		return "; nothing was sent, so nothing was dead-lettered either"
	case sum.DeadLettered == 0:
		return "; " + sent + ", but none of its skipped lines was dead-lettered"
	case left > 0:
		return fmt.Sprintf("; %s; of its %s only the first %d were dead-lettered, the other %d not",
			sent, plural(len(sum.Skipped), "skipped event"), sum.DeadLettered, left)
	}
	return "; " + sent // every skipped event was dead-lettered, as the summary above says
}

// brokerUnanswered is the error of a replay whose Kafka broker did not answer: naming
// --kafka-brokers, or --dev-broker-addr when that is empty (a running `waymark serve`'s dev broker).
func brokerUnanswered(fs *flagSet, kf *kafkaFlags, err error) error {
	if kf.brokers == "" {
		return noAnswer(fs, "dev-broker-addr", "dev broker of a running `waymark serve` ("+fs.ref("kafka-brokers")+" is empty)", kf.devBrokerAddr, err)
	}
	return noAnswer(fs, "kafka-brokers", "Kafka broker", kf.brokers, err)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// compactAdvice is the command replay advises for a pretty-printed file, which writes its values
// one a line to compactedName(file): each element of an array on a line of its own (`jq -c .`
// writes the array on one line, which replay refuses again: tester 48's F3), an object on one
// line, and a gzipped file through gunzip first, as jq reads no gzip (tester 48's F6). For
// standard input (file "-") it is jq in the pipe before replay. For a named pipe (fifo), which
// replay read once and which jq could read only from a writer of its own, it is jq in what
// writes to the pipe (tester 50's F4: a pipe got no advice). With as, the format the values read
// as where --format is another, what jq writes is replayed with --format as (tester 53's F14).
func compactAdvice(file string, fifo, array, gzipped bool, as string) string {
	filter, says := ".", "a /v1/batch body becomes one line, read as a batch"
	if array {
		filter, says = "'.[]'", "each element of the array becomes a line"
	}
	then := ""
	if as != "" {
		then = "--format " + as + " "
	}
	upstream := "… |" // what writes to standard input or the pipe
	if gzipped {
		upstream += " gunzip -c |"
	}
	switch {
	case fifo:
		advice := fmt.Sprintf("`%s jq -c %s > %s` in what writes to the named pipe, which is read once (%s)", upstream, filter, shellQuote(file), says)
		if as != "" {
			advice += fmt.Sprintf(", read by `waymark replay %s--file %s …`", then, shellQuote(file))
		}
		return advice
	case file == "-":
		return fmt.Sprintf("`%s jq -c %s | waymark replay %s--file - …` (%s)", upstream, filter, then, says)
	}
	jq := fmt.Sprintf("jq -c %s %s", filter, shellQuote(file))
	if gzipped {
		jq = fmt.Sprintf("gunzip -c %s | jq -c %s", shellQuote(file), filter)
	}
	advice := fmt.Sprintf("`%s > %s` (%s)", jq, shellQuote(compactedName(file)), says)
	if as != "" {
		advice += fmt.Sprintf(", then `waymark replay %s--file %s …`", then, shellQuote(compactedName(file)))
	}
	return advice
}

// shellQuote is name as a POSIX shell word: as it is when it holds only characters no shell
// reads specially, else in single quotes (a quote in it closing them, escaped and opening them again),
// so that advice pasted into a shell names the file, whatever its name holds (tester 50's F2:
// "my file's.json" broke the command, and a name holding $(…) would have run it).
func shellQuote(name string) string {
	if name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./,:@%+=-") == "" {
		return name
	}
	return "'" + strings.ReplaceAll(name, "'", `'\''`) + "'"
}

// compactedName is the file replay suggests writing a pretty-printed file's values to, one a line:
// the file's name with .compact.jsonl for its extension, never the file itself (`jq -c . r2.jsonl
// > r2.jsonl` empties r2.jsonl before jq reads it). A name ending in .jsonl is made longer, and
// any other does not end so.
func compactedName(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".compact.jsonl"
}

// checkDatasetFile refuses, before anything is sent, a --file that cannot be replayed: one that
// is missing, a directory (tester 43's F3: it dialled the brokers and printed a summary of
// nothing first), or a file that cannot be opened. A named pipe or device is not opened here,
// which would wait for its writer: replay reads it as it reads standard input.
func checkDatasetFile(name string) error {
	st, err := os.Stat(name)
	switch {
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s is a directory: give a dataset file, or - for standard input", name)
	case !st.Mode().IsRegular():
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	return f.Close()
}

// ownDescriptor reports whether path names one of the process's own file descriptors:
// /dev/stdin (stdout, stderr), /dev/fd/N, /proc/self/fd/N (/proc/thread-self/fd/N). What it is
// depends on how replay was started (a redirection from a file, a pipe, the /dev/fd/63 of
// `<(…)`), and no command but this one can read it: advice names standard input, not the path.
// Any other path is advised as what it is (os.Stat), so a named pipe made under /dev/shm is a
// named pipe's (tester 53's F8, F9).
func ownDescriptor(path string) bool {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	switch path = filepath.Clean(path); path {
	case "/dev/stdin", "/dev/stdout", "/dev/stderr":
		return true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"} {
		if n, ok := strings.CutPrefix(path, dir); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

// pipeFile reads the file at path, a named pipe or a device, opening it at its first read:
// under ingest's reading, whose reads end with the context, so that the wait for a pipe's writer
// ends with it too (openContext does so for a file ingest opens itself).
type pipeFile struct {
	path string
	once sync.Once
	f    *os.File
	err  error
}

func (p *pipeFile) Read(b []byte) (int, error) {
	p.once.Do(func() { p.f, p.err = os.Open(p.path) })
	if p.err != nil {
		return 0, p.err
	}
	return p.f.Read(b)
}

// close closes the pipe once replay has read it. When ctx ended, a read may still be waiting
// for the pipe's writer, and the process's end closes it.
func (p *pipeFile) close(ctx context.Context) {
	if ctx.Err() == nil && p.f != nil {
		p.f.Close()
	}
}

// stdinHead is how much of standard input replay keeps, as it reads it, for a refusal to look
// at (look): the first lines, and enough of a pretty-printed value to see it go over lines.
const stdinHead = 64 << 10

// headReader reads r and keeps its first max bytes in head: of standard input, which replay
// reads once (tester 48's F6: a pretty-printed body piped in got no advice).
type headReader struct {
	r    io.Reader
	max  int
	head []byte
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if keep := min(n, h.max-len(h.head)); keep > 0 {
		h.head = append(h.head, p[:keep]...)
	}
	return n, err
}

// plural is n and noun, with an s when n is not 1: "1 line", "7 events".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
