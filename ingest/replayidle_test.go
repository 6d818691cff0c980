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

// TestReplaySendsWhatALiveInputHolds (tester 53's F12): an input read as it is written (standard
// input, a named pipe) whose writer keeps it open after a line had that line's event held until
// the input ended or a chunk filled. Replay sends the events it holds once a read has waited
// idleFlush, and reads on: the event is on the topic while the writer still holds the input open.
func TestReplaySendsWhatALiveInputHolds(t *testing.T) {
	b, err := StartDevBroker("127.0.0.1:0", 1, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	r, w := io.Pipe()
	defer w.Close()
	go w.Write([]byte(`{"type":"track","userId":"u","event":"Live","messageId":"m1","timestamp":"2025-05-04T10:00:00Z"}` + "\n"))
	type result struct {
		sum ReplaySummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Replay(ctx, ReplayConfig{Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Format: "segment", Reader: r})
		done <- result{sum, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs, err := ingesttest.ReadTopic(ctx, b.Addr(), "events")
		if err == nil && len(msgs) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the event written to an input still open is not on the topic after a minute (last read: %d messages, %v)", len(msgs), err)
		case res := <-done:
			t.Fatalf("replay ended while its input was open: %+v, %v", res.sum, res.err)
		case <-tick.C:
		}
	}
	w.Close()
	res := <-done
	if res.err != nil || res.sum.Sent != 1 || res.sum.Read != 1 {
		t.Errorf("replay after its input ended: %+v, %v; want 1 event read and sent", res.sum, res.err)
	}
}

// TestReplayStoppedSendsWhatItRead: a replay stopped by its context's end (Ctrl-C, SIGTERM) sends
// the events it read and had not sent yet, then ends with the context's error. A live input's
// events wait up to idleFlush, a file's up to a chunk, and were lost.
func TestReplayStoppedSendsWhatItRead(t *testing.T) {
	b, err := StartDevBroker("127.0.0.1:0", 1, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	guard, cancelGuard := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancelGuard()
	ctx, stop := context.WithCancel(guard)
	defer stop()
	r, w := io.Pipe()
	defer w.Close()
	type result struct {
		sum ReplaySummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Replay(ctx, ReplayConfig{Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Format: "segment", Reader: r})
		done <- result{sum, err}
	}()
	lines := `{"type":"track","userId":"u","event":"Read","messageId":"m1","timestamp":"2025-05-04T10:00:00Z"}` + "\n" +
		`{"type":"track","userId":"u","event":"Read","messageId":"m2","timestamp":"2025-05-04T10:00:01Z"}` + "\n"
	if _, err := w.Write([]byte(lines)); err != nil {
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
	b, err := StartDevBroker("127.0.0.1:0", 1, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	r, w := io.Pipe()
	type result struct {
		sum ReplaySummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Replay(ctx, ReplayConfig{Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Format: "segment", Reader: r})
		done <- result{sum, err}
	}()
	writing := make(chan struct{}) // closed when the writer stops
	go func() {
		defer close(writing)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			line := fmt.Sprintf(`{"type":"track","userId":"u","event":"Steady","messageId":"s%d","timestamp":"2025-05-04T10:00:00Z"}`+"\n", i)
			if _, err := w.Write([]byte(line)); err != nil {
				return // the pipe was closed: the test is over
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		msgs, err := ingesttest.ReadTopic(ctx, b.Addr(), "events")
		if err == nil && len(msgs) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no event of a writer writing a line every 200 ms is on the topic after a minute (last read: %d messages, %v)", len(msgs), err)
		case res := <-done:
			t.Fatalf("replay ended while its input was open: %+v, %v", res.sum, res.err)
		case <-poll.C:
		}
	}
	w.Close()
	<-writing
	if res := <-done; res.err != nil || res.sum.Sent != res.sum.Read {
		t.Errorf("replay after its input ended: %+v, %v; want every event read sent", res.sum, res.err)
	}
}
