//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// TestReplayRefusingANamedPipeEnds: a named pipe given to --file is read once; when replay
// refused what it held, it opened the pipe again to see what it was (look), which waits for a
// writer, and replay hung there for good. It looks at the first bytes it kept of the pipe
// instead, and says what the pipe held (tester 50's F4).
func TestReplayRefusingANamedPipeEnds(t *testing.T) {
	b := devBroker(t, 3)
	fifo := namedPipeOf(t, `[{"type":"track","userId":"np","event":"E","timestamp":"2025-05-01T10:00:00Z"}]`+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	out, stderr, err := replayOn(ctx, b.Addr(), fifo)
	if ctx.Err() != nil || err == nil || !strings.Contains(stderr, "--format: "+fifo+" starts with a JSON array on a line") {
		t.Errorf("replay of a named pipe holding no Segment message: %v (context: %v), want it to end refusing it\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), out, stderr)
	}
}

// replayOn runs `waymark replay --format segment --file file`, then args, against the dev broker
// at broker, ended by ctx (a test's hang guard); it returns its standard output, its standard
// error and its error.
func replayOn(ctx context.Context, broker, file string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, binary, append([]string{"replay", "--format", "segment", "--file", file}, args...)...)
	cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+broker)
	var errs bytes.Buffer
	cmd.Stderr = &errs
	out, err := cmd.Output()
	return string(out), errs.String(), err
}

// namedPipeOf makes a named pipe in a folder of t's and writes content to it once a reader opens
// it, as `cat export.json > fifo` does; it returns the pipe's path.
func namedPipeOf(t *testing.T, content string) string {
	t.Helper()
	return namedPipeIn(t, t.TempDir(), content)
}

// namedPipeIn is namedPipeOf with the pipe in the folder dir.
func namedPipeIn(t *testing.T, dir, content string) string {
	t.Helper()
	fifo := filepath.Join(dir, "export.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.WriteString(content)
			f.Close()
		}
	}()
	return fifo
}

// TestReplayAdvisesAPrettyPrintedNamedPipe (tester 50's F4): a pretty-printed body or a JSON
// array written to a named pipe given to --file got no advice, where a file and standard input
// are told to put each value on a line with jq: replay could not look at the pipe again. It
// keeps the first bytes it read of it, as of standard input, and advises jq in what writes to
// the pipe, which is read once (never `jq … PIPE > …`, which would wait for a writer).
func TestReplayAdvisesAPrettyPrintedNamedPipe(t *testing.T) {
	b := devBroker(t, 3)
	const msg = `{"type":"track","userId":"np","event":"E","timestamp":"2025-05-01T10:00:00Z"}`
	// A pipe named under /dev (/dev/stdin, the /dev/fd/63 of `<(…)`) has no writer the user
	// names: it is advised as standard input is.
	code, stdout, stderr := replayBinaryReading(t, b.Addr(), []byte("[\n  "+msg+"\n]\n"), "--format", "segment", "--file", "/dev/stdin")
	if advice := "`… | jq -c '.[]' | waymark replay --file - …`"; code == 0 || !strings.Contains(stderr, advice) {
		t.Errorf("replay of a pretty-printed array on /dev/stdin: exit %d, want it advising %s\nstdout:\n%s\nstderr:\n%s", code, advice, stdout, stderr)
	}
	for _, tt := range []struct {
		name, content, advice string
	}{
		{"array", "[\n  " + msg + ",\n  " + msg + "\n]\n", "`… | jq -c '.[]' > P`"},
		{"batch", "{\n  \"batch\": [\n    " + msg + "\n  ]\n}\n", "`… | jq -c . > P`"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fifo := namedPipeOf(t, tt.content)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
			defer cancel()
			out, got, err := replayOn(ctx, b.Addr(), fifo)
			advice := strings.ReplaceAll(tt.advice, "P", shellQuote(fifo))
			want := "--format: " + fifo + " is not one JSON value per line"
			if ctx.Err() != nil || err == nil || !strings.Contains(got, want) || !strings.Contains(got, advice) || strings.Contains(got, "jq -c . "+fifo) {
				t.Fatalf("replay of a pretty-printed %s on a named pipe: %v (context: %v), want %q advising %s\nstdout:\n%s\nstderr:\n%s", tt.name, err, ctx.Err(), want, advice, out, got)
			}
			if _, err := exec.LookPath("jq"); err != nil {
				t.Skip("no jq to run the advice with")
			}
			// the advice as the pipe's writer, `printf … | jq -c … > fifo`, beside a replay of it
			writer := exec.CommandContext(ctx, "sh", "-c", strings.Replace(strings.Trim(advice, "`"), "…", "cat", 1))
			writer.Stdin = strings.NewReader(tt.content)
			if err := writer.Start(); err != nil {
				t.Fatal(err)
			}
			out, got, err = replayOn(ctx, b.Addr(), fifo)
			if werr := writer.Wait(); err != nil || werr != nil || !strings.Contains(out+got, "sent "+map[string]string{"array": "2", "batch": "1"}[tt.name]+" event") {
				t.Errorf("replay of the pipe written as advised (%s): %v, writer %v\n%s%s", advice, err, werr, out, got)
			}
		})
	}
}

// TestReplayRepeatingANamedPipeIsRefused (tester 53's F1): --repeat 2 of a named pipe read the
// pipe once, then waited for a second writer that never came, holding the first pass's events
// unsent; a pipe is read once, as standard input is, and refused before it is opened.
func TestReplayRepeatingANamedPipeIsRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "export.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	_, stderr, err := replayOn(ctx, "127.0.0.1:1", fifo, "--repeat", "2")
	want := "--repeat: 2 passes need a file read again: " + fifo + " is a named pipe, read once"
	if ctx.Err() != nil || err == nil || !strings.Contains(stderr, want) {
		t.Errorf("replay --repeat 2 of a named pipe: %v (context: %v), want it refused with %q\nstderr:\n%s", err, ctx.Err(), want, stderr)
	}
}

// TestReplayAdvisesByWhatTheFileIs (tester 53's F8, F9): the advice for a pretty-printed --file
// goes by what the file is, and by its path only for replay's own descriptors. /dev/stdin
// (/dev/fd/0, /proc/self/fd/0) redirected from a regular file was advised as a file, to write
// /dev/stdin.compact.jsonl under /dev; it is advised as standard input. A named pipe made under
// /dev/shm, a tmpfs users write to, was advised as standard input; it is advised as a named pipe.
func TestReplayAdvisesByWhatTheFileIs(t *testing.T) {
	b := devBroker(t, 3)
	const msg = `{"type":"track","userId":"np","event":"E","timestamp":"2025-05-01T10:00:00Z"}`
	const pretty = "[\n  " + msg + "\n]\n"
	redirected := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(redirected, []byte(pretty), 0o600); err != nil {
		t.Fatal(err)
	}
	const stdinAdvice = "`… | jq -c '.[]' | waymark replay --file - …`"
	for _, path := range []string{"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"} {
		if _, err := os.Stat(path); err != nil {
			t.Logf("%s: %v; not tried", path, err)
			continue
		}
		in, err := os.Open(redirected)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "replay", "--format", "segment", "--file", path)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+b.Addr())
		cmd.Stdin = in // a regular file, as `< export.json` gives it
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		in.Close()
		if got := stderr.String(); err == nil || !strings.Contains(got, stdinAdvice) || strings.Contains(got, ".compact.jsonl") {
			t.Errorf("replay --file %s < a pretty-printed file: %v, want it advising %s, no file to write\nstderr:\n%s", path, err, stdinAdvice, got)
		}
	}
	shm, err := os.MkdirTemp("/dev/shm", "waymark-test-")
	if err != nil {
		t.Skipf("no /dev/shm to make a named pipe in: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	fifo := namedPipeIn(t, shm, pretty)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	_, stderr, err := replayOn(ctx, b.Addr(), fifo)
	if advice := "`… | jq -c '.[]' > " + shellQuote(fifo) + "`"; ctx.Err() != nil || err == nil || !strings.Contains(stderr, advice) {
		t.Errorf("replay of a pretty-printed array on a named pipe under /dev/shm: %v (context: %v), want it advising %s\nstderr:\n%s", err, ctx.Err(), advice, stderr)
	}
}

// startReplayOfNewPipe makes a named pipe in a folder of t's and starts `waymark replay` of it
// (Segment messages) under ctx, producing to the broker at addr; it returns the pipe's path, the
// started command and its output.
func startReplayOfNewPipe(t *testing.T, ctx context.Context, addr string) (fifo string, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) {
	t.Helper()
	fifo = filepath.Join(t.TempDir(), "live.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, binary, "replay", "--format", "segment", "--file", fifo)
	cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+addr)
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return fifo, cmd, stdout, stderr
}

// TestReplaySendsWhatALiveNamedPipeHolds (tester 53's F12): a named pipe whose writer wrote a line
// and kept the pipe open (`tail -f`, a slow export) had that line's event held until the writer
// closed it, and Ctrl-C meanwhile lost it. Replay sends what it holds once the pipe has been quiet
// a second: the event is on the topic while the writer still holds the pipe, and replay ends
// with the pipe, exit 0.
func TestReplaySendsWhatALiveNamedPipeHolds(t *testing.T) {
	b := devBroker(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	fifo, cmd, stdout, stderr := startReplayOfNewPipe(t, ctx, b.Addr())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// the writer: it opens the pipe once replay does, writes a line and holds the pipe open
	opened := make(chan *os.File, 1)
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			opened <- w
		}
	}()
	var w *os.File
	select {
	case w = <-opened:
	case err := <-exited:
		t.Fatalf("replay ended before opening the pipe: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	case <-ctx.Done():
		t.Fatal("replay did not open the pipe within a minute")
	}
	defer w.Close()
	if _, err := w.WriteString(`{"type":"track","userId":"lw","event":"LiveWriter","messageId":"lw1","timestamp":"2025-05-04T10:00:00Z"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs, err := ingesttest.ReadTopic(ctx, b.Addr(), "waymark.events")
		if err == nil && len(msgs) == 1 && bytes.Contains(msgs[0].Value, []byte(`"LiveWriter"`)) {
			break
		}
		select {
		case <-tick.C:
		case err := <-exited:
			t.Fatalf("replay ended while the pipe's writer held it open: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		case <-ctx.Done():
			t.Fatalf("the event written to a pipe still open is not on the topic after a minute (last read: %d messages, %v)", len(msgs), err)
		}
	}
	w.Close()
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(stdout.String(), "sent 1 event,") {
			t.Errorf("replay once the writer closed the pipe: %v, want exit 0 having sent 1 event\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
	case <-ctx.Done():
		t.Fatal("replay did not end within a minute of the pipe's writer closing it")
	}
}

// TestReplayInterruptedSendsWhatItRead: Ctrl-C on a replay of a live named pipe sends the events
// it had read before it ends (exit 1, "stopped"), as the summary says. They were held for a
// chunk or for the pipe's quiet second (idleFlush), and the signal lost them. The writer's
// write returns once replay has read all of it but what the pipe and replay's buffers hold, so
// by then replay holds events; should the signal come more than a second later on a busy
// machine, they were sent while the pipe was quiet, and the counts agree as well.
func TestReplayInterruptedSendsWhatItRead(t *testing.T) {
	b := devBroker(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	fifo, cmd, stdout, stderr := startReplayOfNewPipe(t, ctx, b.Addr())
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits until replay opens it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var lines strings.Builder
	for i := range 3000 { // 330 KB: several times what the pipe and replay's buffers hold
		fmt.Fprintf(&lines, `{"type":"track","userId":"u%d","event":"Interrupted","messageId":"i%d","timestamp":"2025-05-04T10:00:00Z"}`+"\n", i%50, i)
	}
	if _, err := w.WriteString(lines.String()); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("replay did not end within a minute of Ctrl-C\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	m := regexp.MustCompile(`\((\d+) events?\), sent (\d+) events?,`).FindStringSubmatch(stdout.String())
	if err == nil || m == nil || !strings.Contains(stderr.String(), "stopped") || !strings.Contains(stderr.String(), "every event it had read was sent") {
		t.Fatalf("replay after Ctrl-C: %v, want exit 1 saying it stopped and sent every event it had read, after its summary\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	read, _ := strconv.Atoi(m[1])
	sent, _ := strconv.Atoi(m[2])
	msgs, terr := ingesttest.ReadTopic(ctx, b.Addr(), "waymark.events")
	if read == 0 || sent != read || terr != nil || len(msgs) != sent {
		t.Errorf("replay read %d events before Ctrl-C and sent %d; the topic holds %d (%v); want every event read sent\nstdout:\n%s\nstderr:\n%s", read, sent, len(msgs), terr, stdout, stderr)
	}
}

// TestReplayInterruptedTwiceSaysWhatItSent (tester 55's F3): a second Ctrl-C, while the send
// under way at the first waits on a broker that does not answer, ends replay at once; it said
// only that it had stopped, not how many events had reached the topic. Its last line says so.
func TestReplayInterruptedTwiceSaysWhatItSent(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "waymark.events", "waymark.dlq"), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var hang atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	var once sync.Once
	// Once hang is set, produce requests wait until the test ends: a broker that takes no more.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !hang.Load() {
			return nil, nil, false
		}
		once.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	addr := c.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	fifo, cmd, stdout, stderr := startReplayOfNewPipe(t, ctx, addr)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits until replay opens it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(from, to int) {
		t.Helper()
		var lines strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&lines, `{"type":"track","userId":"u%d","event":"Twice","messageId":"t%d","timestamp":"2025-05-04T10:00:00Z"}`+"\n", i%7, i)
		}
		if _, err := w.WriteString(lines.String()); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 40) // sent once held a second
	for {
		if msgs, err := ingesttest.ReadTopic(ctx, addr, "waymark.events"); err == nil && len(msgs) == 40 {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case err := <-exited:
			t.Fatalf("replay ended while the pipe was open: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		case <-ctx.Done():
			t.Fatal("the first 40 events are not on the topic after a minute")
		}
	}
	hang.Store(true)
	write(40, 60)
	select {
	case <-held: // their send is under way, and waits
	case <-ctx.Done():
		t.Fatal("the last 20 events' send did not reach the broker within a minute")
	}
	// Ctrl-C until replay ends: the first stops it, which then waits on the send (up to 10 s);
	// a later one ends it at once. Sent again and again, as two signals sent at once may be
	// taken as one.
	for {
		if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(stderr.String(), "stopped at once") {
				t.Fatalf("replay after Ctrl-C again and again: %v, want it ended at once by a second one (exit 130)\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			if want := "replay " + fifo + " had sent 40 events to waymark.events on " + addr; !strings.Contains(stderr.String(), want) {
				t.Errorf("replay's last line after a second Ctrl-C:\n%s\nwant it to say %q", stderr, want)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("replay did not end within a minute of Ctrl-C\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	}
}
