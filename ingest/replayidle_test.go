package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// replayResult is what a Replay started by replayOfPipe returned.
type replayResult struct {
	sum ReplaySummary
	err error
}

// replayOfPipe starts a dev broker (topics "events" and "dlq", closed when t ends) and a Replay,
// under ctx, of the Segment lines written to the pipe it returns, read as standard input is;
// the replay's result comes on the channel.
func replayOfPipe(t *testing.T, ctx context.Context) (*DevBroker, *io.PipeWriter, <-chan replayResult) {
	t.Helper()
	b, err := StartDevBroker("127.0.0.1:0", 1, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	done := make(chan replayResult, 1)
	go func() {
		sum, err := Replay(ctx, ReplayConfig{Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Format: "segment", Reader: r})
		done <- replayResult{sum, err}
	}()
	return b, w, done
}

// awaitEvents waits until the topic "events" of b holds an event, while the replay (done) runs
// on; what describes the writer for the failure when ctx ends first.
func awaitEvents(t *testing.T, ctx context.Context, b *DevBroker, done <-chan replayResult, what string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs, err := ingesttest.ReadTopic(ctx, b.Addr(), "events")
		if err == nil && len(msgs) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no event of %s is on the topic after a minute (last read: %d messages, %v)", what, len(msgs), err)
		case res := <-done:
			t.Fatalf("replay ended while its input was open: %+v, %v", res.sum, res.err)
		case <-tick.C:
		}
	}
}

// segmentLine is a Segment track message of event name, with messageId id, and a newline.
func segmentLine(name, id string) string {
	return `{"type":"track","userId":"u","event":"` + name + `","messageId":"` + id + `","timestamp":"2025-05-04T10:00:00Z"}` + "\n"
}

// TestReplaySendsWhatALiveInputHolds (tester 53's F12): an input read as it is written (standard
// input, a named pipe) whose writer keeps it open after a line had that line's event held until
// the input ended or a chunk filled. Replay sends the events it holds once a read has waited
// idleFlush, and reads on: the event is on the topic while the writer still holds the input open.
func TestReplaySendsWhatALiveInputHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	b, w, done := replayOfPipe(t, ctx)
	go w.Write([]byte(segmentLine("Live", "m1")))
	awaitEvents(t, ctx, b, done, "a writer holding its input open after a line")
	w.Close()
	res := <-done
	if res.err != nil || res.sum.Sent != 1 || res.sum.Read != 1 {
		t.Errorf("replay after its input ended: %+v, %v; want 1 event read and sent", res.sum, res.err)
	}
}

// TestReplayStoppedSendsWhatItRead: a replay stopped by its context's end (Ctrl-C, SIGTERM) sends
// the events it read and had not sent yet, then ends with a StoppedError saying so. A live input's
// events wait up to idleFlush, a file's up to a chunk, and were lost.
func TestReplayStoppedSendsWhatItRead(t *testing.T) {
	guard, cancelGuard := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancelGuard()
	ctx, stop := context.WithCancel(guard)
	defer stop()
	b, w, done := replayOfPipe(t, ctx)
	if _, err := w.Write([]byte(segmentLine("Read", "m1") + segmentLine("Read", "m2"))); err != nil {
		t.Fatal(err)
	}
	// A pipe's write returns once its reader has read it: replay reads this blank line only
	// after it has made events of the lines before.
	if _, err := w.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	stop() // before idleFlush: the events are held
	res := <-done
	var stoppedErr *StoppedError
	if !errors.Is(res.err, context.Canceled) || !errors.As(res.err, &stoppedErr) || res.sum.Read != 2 || res.sum.Sent != 2 {
		t.Errorf("replay stopped after reading 2 events: %+v, %v; want both sent and a StoppedError of the context's", res.sum, res.err)
	}
	msgs, err := ingesttest.ReadTopic(guard, b.Addr(), "events")
	if err != nil || len(msgs) != 2 {
		t.Errorf("the topic holds %d messages (%v), want the 2 read before the stop", len(msgs), err)
	}
}

// TestReplaySendsWhatASteadyInputHolds (tester 54's F2): a writer that writes a line every fifth of
// a second is never quiet a second, and replay held its events until a chunk filled (20,000
// lines, hours of a slow writer). Replay sends an event once it has held it idleFlush, however
// steadily the writer writes: the first is on the topic while the writer is still writing.
func TestReplaySendsWhatASteadyInputHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	b, w, done := replayOfPipe(t, ctx)
	writing := make(chan struct{}) // closed when the writer stops
	go func() {
		defer close(writing)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := w.Write([]byte(segmentLine("Steady", fmt.Sprint("s", i)))); err != nil {
				return // the pipe was closed: the test is over
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	awaitEvents(t, ctx, b, done, "a writer writing a line every 200 ms")
	w.Close()
	<-writing
	if res := <-done; res.err != nil || res.sum.Sent != res.sum.Read {
		t.Errorf("replay after its input ended: %+v, %v; want every event read sent", res.sum, res.err)
	}
}
