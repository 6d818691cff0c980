package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// TestReplayStoppedDuringAFailedSendSendsNothingTwice (tester 55's F1): a send under way when
// replay was stopped, which the broker took in part (two partitions of three) and refused in
// part, was sent again whole after the stop, and what the broker had taken was on the topic
// twice. What a failed send held is not sent again; the error says so.
func TestReplayStoppedDuringAFailedSendSendsNothingTwice(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events", "dlq"), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	// Partition 2's produce requests wait until the test releases them, then are refused with
	// MESSAGE_TOO_LARGE, which kafka-go does not retry; the others are taken.
	c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.ProduceRequest)
		for _, tp := range req.Topics {
			for _, p := range tp.Partitions {
				if tp.Topic != "events" || p.Partition != 2 {
					return nil, nil, false
				}
			}
		}
		once.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.MessageTooLarge.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	guard, cancelGuard := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancelGuard()
	ctx, stop := context.WithCancel(guard)
	defer stop()
	var lines strings.Builder
	for i := range 300 {
		fmt.Fprintf(&lines, `{"type":"track","userId":"u%d","event":"Sent","messageId":"m%d","timestamp":"2025-05-04T10:00:00Z"}`+"\n", i, i)
	}
	done := make(chan replayResult, 1)
	go func() {
		sum, err := Replay(ctx, ReplayConfig{Brokers: c.ListenAddrs(), Topic: "events", DLQTopic: "dlq", Format: "segment", Reader: strings.NewReader(lines.String())})
		done <- replayResult{sum, err}
	}()
	select {
	case <-held: // the send is under way
	case res := <-done:
		t.Fatalf("replay ended before its send reached partition 2: %+v, %v", res.sum, res.err)
	case <-guard.Done():
		t.Fatal("no produce to partition 2 within a minute")
	}
	stop()
	close(release)
	res := <-done
	if res.err == nil || !strings.Contains(res.err.Error(), "not sent again") {
		t.Errorf("replay stopped during a send the broker refused in part: %+v, %v; want an error saying the send's events were not sent again", res.sum, res.err)
	}
	msgs, err := ingesttest.ReadTopic(guard, c.ListenAddrs()[0], "events")
	ids := make(map[string]bool)
	for _, m := range msgs {
		ids[string(m.Value)] = true
	}
	if err != nil || len(msgs) == 0 || len(ids) != len(msgs) {
		t.Errorf("the topic holds %d messages, %d of them distinct (%v); want those the broker took, each once", len(msgs), len(ids), err)
	}
}
