package ingest

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// ReplayConfig configures Replay.
type ReplayConfig struct {
	Brokers []string // Kafka bootstrap brokers; required
	Topic   string   // topic to produce to; default "waymark.events"
	// DLQTopic is the dead-letter topic each skipped line, or event of one, is written to when
	// replaying straight to Kafka (not with Collector); default "waymark.dlq".
	DLQTopic string
	Format   string // one of Formats; required
	File     string // dataset path; required unless Reader is set
	// Reader, when set, is read instead of File (one pass: Repeat must be 0 or 1), e.g. a
	// generated stream.
	Reader io.Reader
	Repeat int // passes over the file, each after the first with fresh ids; default 1
	// Collector, when set, is the base URL of a Waymark (or Segment-compatible) collector, as
	// ParseBaseURL reads it: events are sent to its /v1/batch (the base's path, when it has one,
	// before it) with WriteKey instead of straight to Kafka.
	Collector string
	WriteKey  string
	// Pace, when positive, is the most messages per second sent (a shop's live traffic); 0 sends
	// as fast as Kafka (or the collector) takes them.
	Pace int
	// Progress, when set, is called after each produced chunk with the messages sent so far.
	Progress func(sent int)
}

// ErrWriteKeyRefused is in the error of a replay whose collector answered 401: it refused
// ReplayConfig.WriteKey (unknown to it, or none), so retrying cannot help.
var ErrWriteKeyRefused = errors.New("write key refused")

// ErrNoCollectorAPI is in the error of a replay whose collector answered 404 (or 405) to its
// POST to /v1/batch: no collector's API is at ReplayConfig.Collector (another server, or a path
// prefix that is not the collector's).
var ErrNoCollectorAPI = errors.New("no collector API there")

// ReplaySummary says what a replay did.
type ReplaySummary struct {
	Lines    int    // lines read, in all passes
	Read     int    // messages built from the file (events), in all passes
	Sent     int    // messages acknowledged by Kafka (or the collector)
	Rejected int    // messages the collector accepted into its dead-letter topic instead
	Skipped  []Skip // lines, or events of lines, that could not be used, in the first pass
	// SkippedEvents counts the skips of all passes: each is one event (a line that is one
	// message or row, an event of a batch body or OTTO session, a line that could not be read).
	SkippedEvents int
	// DeadLettered counts the skips written to ReplayConfig.DLQTopic (those of the first pass:
	// a later pass skips the same lines again).
	DeadLettered int
	// FutureTimestamps counts the messages whose time lies more than MaxFutureTimestamp after
	// their receive time and is stored at it (readSegment): moved by the consumer, which counts
	// them in waymark_future_timestamps_total as it counts any message's, or, sent to a
	// collector, by replay.
	FutureTimestamps int
}

// Replay turns a dataset into Segment track messages and produces them to Kafka, keyed by customer,
// waiting for acknowledgement from all in-sync replicas. Each row gets a deterministic messageId,
// so replaying a file twice stores each event once.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplaySummary, error) {
	var sum ReplaySummary
	if cfg.Topic == "" {
		cfg.Topic = "waymark.events"
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = "waymark.dlq"
	}
	if err := CheckTopic(cfg.Topic); err != nil {
		return sum, fmt.Errorf("replay: topic: %w", err)
	}
	if err := CheckTopic(cfg.DLQTopic); err != nil {
		return sum, fmt.Errorf("replay: dead-letter topic: %w", err)
	}
	if cfg.Repeat == 0 {
		cfg.Repeat = 1
	}
	read, err := datasetReaderFor(cfg.Format)
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	// Sends run on sendCtx: ctx's end (Ctrl-C, SIGTERM) stops the reading at once, but a send
	// under way goes on, and what was read before the end is sent after it (stopped), for up to
	// stopSendTimeout more. A send that ctx's end cut short had reached Kafka in part or whole,
	// and sent again put a chunk on the topic twice (tester 54's F3).
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	stopSends := context.AfterFunc(ctx, func() { time.AfterFunc(stopSendTimeout, cancelSend) })
	defer stopSends()
	var send func(context.Context, []Message) (rejected int, err error)
	// deadLetter writes skips to the dead-letter topic; nil with a collector, which dead-letters
	// what it refuses itself and is not given what replay skipped.
	var deadLetter func(context.Context, []Skip) error
	chunk := 20000
	if cfg.Collector != "" {
		base, err := ParseBaseURL(cfg.Collector)
		if err != nil {
			return sum, fmt.Errorf("replay: collector %q: %w", cfg.Collector, err)
		}
		send, chunk = collectorSender(base.JoinPath("v1", "batch").String(), cfg.WriteKey), 200
	} else {
		if len(cfg.Brokers) == 0 {
			return sum, errors.New("replay: no kafka brokers")
		}
		transport := ownTransport()
		defer transport.CloseIdleConnections() // after w.Close
		w := &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Transport:              transport,
			Topic:                  cfg.Topic,
			Balancer:               partitionBalancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              2000,
			BatchBytes:             1_000_000, // Kafka's default message.max.bytes is 1 MiB
			BatchTimeout:           5 * time.Millisecond,
			AllowAutoTopicCreation: true,
		}
		defer closeWriter(ctx, sendCtx, w)
		send = kafkaSender(w, cfg.Format)
		dlq := &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Transport:              transport,
			Topic:                  cfg.DLQTopic,
			Balancer:               partitionBalancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchBytes:             1_000_000,
			BatchTimeout:           5 * time.Millisecond,
			AllowAutoTopicCreation: true,
		}
		defer closeWriter(ctx, sendCtx, dlq)
		deadLetter = deadLetterSender(dlq, cfg.Format)
	}
	if cfg.Pace > 0 {
		chunk = max(min(chunk, cfg.Pace/10), 1) // a tenth of a second's messages at a time
	}
	start := time.Now()
	pending := make([]Message, 0, chunk)
	var dead []Skip // skips of the first pass not yet dead-lettered
	// tally counts the first pass's lines: when more were skipped than used, the file is most
	// likely not of cfg.Format, and Replay stops before it sends more (a FormatError). It judges
	// before each chunk is sent, once formatSample lines are read, and at the end.
	var tally lineTally
	pass := 0
	wrongFormat := func(final bool) error {
		if !final && tally.used+tally.skipped < formatSample {
			return nil
		}
		if ferr := tally.mostSkipped(cfg.Format); ferr != nil {
			return ferr
		}
		return nil
	}
	// flush sends what is pending, and dead-letters what was skipped; paced, it first waits until
	// cfg.Pace lets it send, or ctx ends. sendFailed says a send (or dead-lettering) failed: what it
	// sent may have reached Kafka in part (kafka-go's errors are per message, a collector's
	// answer per body), so it is not sent again.
	var sendFailed bool
	flush := func(paced bool) error {
		if len(pending) == 0 && len(dead) == 0 {
			return nil
		}
		if err := wrongFormat(false); err != nil {
			return err
		}
		if len(dead) > 0 && deadLetter != nil {
			if err := deadLetter(sendCtx, dead); err != nil {
				sendFailed = true
				return err
			}
			sum.DeadLettered += len(dead)
		}
		dead = dead[:0]
		if len(pending) == 0 {
			return nil
		}
		if paced && cfg.Pace > 0 { // the messages sent so far are due at sent/Pace seconds
			due := start.Add(time.Duration(float64(sum.Sent) / float64(cfg.Pace) * float64(time.Second)))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(due)):
			}
		}
		rejected, err := send(sendCtx, pending)
		if err != nil {
			sendFailed = true
			return err
		}
		sum.Sent += len(pending)
		sum.Rejected += rejected
		pending = pending[:0]
		if cfg.Progress != nil {
			cfg.Progress(sum.Sent)
		}
		return nil
	}
	lastLine := 0 // the line last counted in sum.Lines, 0 at the start of a pass
	countLine := func(line int) {
		if line != lastLine {
			sum.Lines++
			lastLine = line
		}
	}
	// linger sends the pending events of an input read as it is written (standard input, a named
	// pipe: contextReader calls it, on this goroutine, before each read and once a read has waited
	// idleFlush) when the earliest of them was read idleFlush ago or more, as a log shipper's
	// linger does (Kafka's linger.ms, Fluent Bit's flush interval): a live writer (`tail -f`, a
	// slow export) saw nothing sent until the input ended or a chunk filled, and Ctrl-C then lost
	// what was read (tester 53's F12); one writing a line every half second was never quiet the
	// second a wait counted from the last line, and held its events for hours (tester 54's F2).
	// Skipped lines alone wait, as does an input more of whose lines were skipped than used so
	// far: it is judged before anything of it is sent or dead-lettered (wrongFormat).
	// It returns how long until it may have more to send.
	var heldSince time.Time // when the earliest pending event was read
	linger := func() (time.Duration, error) {
		if len(pending) == 0 || tally.mostSkipped(cfg.Format) != nil {
			return idleFlush, nil
		}
		if held := time.Since(heldSince); held < idleFlush {
			return idleFlush - held, nil
		}
		return idleFlush, flush(true)
	}
	// stopped is err, the error that ended the replay of name, once what was read and not yet
	// sent is sent when ctx's end stopped it (Ctrl-C, SIGTERM): at most a chunk, the events read
	// since the last was sent, which were lost before (Fluent Bit, too, flushes what it holds on
	// SIGTERM, within its grace time). They go unpaced, within what is left of stopSendTimeout (a
	// second signal ends the command at once, see cmd/waymark). An input judged not of cfg.Format
	// so far sends nothing, and says why. What a failed send held is not sent again: part of it
	// may be on the topic, and sent again it was there twice (tester 55's F1); the error says how
	// many events that send held. When everything read was sent, the error is a *StoppedError,
	// which says so: the cut-short read's or pacing's error read as a failure (tester 54's F4).
	stopped := func(name string, err error) error {
		if ctx.Err() == nil {
			return err
		}
		if ferr := tally.mostSkipped(cfg.Format); ferr != nil {
			return fmt.Errorf("replay %s: stopped; what it read since its last send was neither sent nor dead-lettered: %w", name, ferr)
		}
		n := len(pending)
		// unanswered is the error of a send that did not end before the time sends have after a
		// stop was over.
		unanswered := fmt.Errorf("replay %s: stopped; the send of the %d events it had read did not end within %s of the stop (no answer from the broker, which may hold some of them)", name, n, stopSendTimeout)
		switch {
		case sendFailed && sendCtx.Err() != nil:
			return unanswered
		case sendFailed:
			return fmt.Errorf("%w; stopped, the %d events of that send not sent again (the broker may hold some of them)", err, n)
		}
		if ferr := flush(false); ferr != nil {
			if sendCtx.Err() != nil {
				return unanswered
			}
			return fmt.Errorf("replay %s: stopped; sending the %d events it had read: %w", name, n, ferr)
		}
		if err != nil && !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%w (stopped; every event it had read was sent)", err) // another error came first
		}
		return &StoppedError{File: name, Cause: ctx.Err()}
	}
	emit := func(m Message) error {
		if err := ctx.Err(); err != nil {
			return err // stopped: a regular file is read on, sends outlasting ctx (sendCtx)
		}
		countLine(m.Line)
		if pass == 0 {
			tally.add(m.Line, nil)
		}
		sum.Read++
		if m.FutureTimestamp {
			sum.FutureTimestamps++
		}
		if len(pending) == 0 {
			heldSince = time.Now()
		}
		pending = append(pending, m)
		if len(pending) == chunk {
			return flush(true)
		}
		return nil
	}
	if cfg.Reader != nil {
		if cfg.Repeat > 1 {
			return sum, errors.New("replay: a reader is read once; repeat must be 1")
		}
		name := cfg.File
		if name == "" || name == "-" {
			name = "stdin"
		}
		skip := func(s Skip) {
			countLine(s.Line)
			sum.Skipped, dead = append(sum.Skipped, s), append(dead, s)
			sum.SkippedEvents++
			tally.add(s.Line, &s)
		}
		in := &contextReader{ctx: ctx, r: cfg.Reader, linger: linger}
		r, err := decompressed(in, true)
		if err != nil {
			return sum, stopped(name, fmt.Errorf("replay %s: %w", name, in.cause(err)))
		}
		if err := read(r, 0, withinEventLimit(emit, skip), skip); err != nil {
			return sum, stopped(name, fmt.Errorf("replay %s: %w", name, in.cause(err)))
		}
		if err := wrongFormat(true); err != nil {
			return sum, fmt.Errorf("replay %s: %w", name, err)
		}
		return sum, stopped(name, flush(true))
	}
	for ; pass < cfg.Repeat; pass++ {
		lastLine = 0
		skip := func(s Skip) {
			countLine(s.Line)
			sum.SkippedEvents++
			if pass == 0 {
				sum.Skipped, dead = append(sum.Skipped, s), append(dead, s)
				tally.add(s.Line, &s)
			}
		}
		if err := replayFile(ctx, cfg.File, pass, read, withinEventLimit(emit, skip), skip, linger); err != nil {
			return sum, stopped(cfg.File, err)
		}
		if pass == 0 {
			if err := wrongFormat(true); err != nil {
				return sum, fmt.Errorf("replay %s: %w", cfg.File, err)
			}
		}
	}
	return sum, stopped(cfg.File, flush(true))
}

// StoppedError is the error of a replay its context's end stopped (Ctrl-C, SIGTERM) after
// everything it had read was sent: what it sent is in its ReplaySummary.
type StoppedError struct {
	File  string // the file replayed, "stdin" for standard input
	Cause error  // the context's error
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("replay %s: every event it had read was sent", e.File)
}

func (e *StoppedError) Unwrap() error { return e.Cause }

// closeWriter closes w, a writer of a replay, once its writes end; for a replay ctx stopped, it
// waits only until sendCtx ends (stopSendTimeout after the stop): kafka-go's Close waits for the
// writes it still retries, a minute or more when the broker is gone or hung (tester 54's F1).
func closeWriter(ctx, sendCtx context.Context, w io.Closer) {
	if ctx.Err() == nil {
		w.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Close()
	}()
	select {
	case <-done:
	case <-sendCtx.Done():
	}
}

// stopSendTimeout is how long a replay's sends go on once its context ended (Replay's sendCtx):
// the send under way, then what it had read (Replay's stopped). It is kafka-go's default write
// timeout.
const stopSendTimeout = 10 * time.Second

// replaySourcePrefix starts the source of the events replay produces straight to Kafka:
// replay-FORMAT.
const replaySourcePrefix = "replay-"

// Replayed reports whether source is replay's (replay-FORMAT): its events' receivedAt is the
// export's, not the time Waymark received them (Event.Arrived).
func Replayed(source string) bool { return strings.HasPrefix(source, replaySourcePrefix) }

func kafkaSender(w *kafka.Writer, format string) func(context.Context, []Message) (int, error) {
	source := []kafka.Header{{Key: HeaderSource, Value: []byte(replaySourcePrefix + format)}}
	return func(ctx context.Context, batch []Message) (int, error) {
		msgs := make([]kafka.Message, len(batch))
		for i, m := range batch {
			msgs[i] = kafka.Message{Key: []byte(m.Key), Value: m.Value, Headers: source}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return 0, fmt.Errorf("produce to %s: %w", w.Topic, summarizeWriteErrors(err))
		}
		return 0, nil
	}
}

// deadLetterSender writes skips to w, the dead-letter topic, as the consumer and the collector
// write theirs (newDeadLetter): what was skipped (the line, or its event) as its value, keyed by
// the customer its ids name as far as they could be read (check), with replay's source header
// (replay-FORMAT), the reason code and the error, which names the place in the file ("line 3
// batch[2]: invalid_timestamp (field timestamp): …").
//
// A skipped line longer than maxDeadLetterBytes (a line up to MaxLineBytes is read, one over
// DefaultMaxEventBytes skipped as too_large) would be refused by Kafka (message.max.bytes is
// 1 MB by default) and stop the replay: its dead letter holds its first maxDeadLetterBytes, and
// its error says so.
func deadLetterSender(w *kafka.Writer, format string) func(context.Context, []Skip) error {
	source := kafka.Header{Key: HeaderSource, Value: []byte(replaySourcePrefix + format)}
	return func(ctx context.Context, skips []Skip) error {
		msgs := make([]kafka.Message, len(skips))
		for i, s := range skips {
			var key string
			if len(s.Raw) > 0 {
				key, _, _ = check(s.Raw, time.Now())
			}
			value, why := s.Raw, s.Place()+": "+s.Reason
			if len(value) > maxDeadLetterBytes {
				value = value[:maxDeadLetterBytes]
				why += fmt.Sprintf(" (this dead letter holds its first %d of %d bytes)", maxDeadLetterBytes, len(s.Raw))
			}
			msgs[i] = newDeadLetter([]byte(key), value, []kafka.Header{source}, s.Code, errors.New(why))
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("write %d dead letters to %s: %w", len(msgs), w.Topic, summarizeWriteErrors(err))
		}
		return nil
	}
}

// maxDeadLetterBytes is the most of a skipped line replay's dead letter holds (deadLetterSender).
const maxDeadLetterBytes = 512 << 10

// collectorSender posts batches to url, a collector's /v1/batch, in bodies within the collector's
// DefaultMaxBatchBytes, retrying what the Segment libraries retry (5xx, 429, network errors) with
// backoff, and failing on anything else.
//
// A replay is an import: its events' timestamps are final, and the sentAt a Segment export
// carries is history (when its client sent it, long ago), not a clock to correct. So each event
// goes without a sentAt, and so does the batch: the collector's clock-skew rule (SkewCorrected)
// corrects only a message that says when it was sent, and then by its time in transit too, so
// with none it keeps every event's time to the microsecond, as a replay straight to Kafka does
// (PostHog's rule for a timestamp without sent_at).
func collectorSender(url, writeKey string) func(context.Context, []Message) (int, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	var members []member
	return func(ctx context.Context, batch []Message) (int, error) {
		var bodies [][]byte
		var body []byte
		for _, m := range batch {
			var err error
			value := m.forCollector()
			if members, err = objectMembers(value, members[:0]); err != nil {
				return 0, fmt.Errorf("BUG: line %d is not a JSON object: %w", m.Line, err)
			}
			event := appendObject(nil, value, members, []string{"sentAt"}, nil)
			const envelope = 100 // {"batch":[…]}
			if len(body) > 0 && len(body)+1+len(event)+envelope > DefaultMaxBatchBytes {
				bodies, body = append(bodies, body), nil
			}
			if len(body) == 0 {
				body = append(body, `{"batch":[`...)
			} else {
				body = append(body, ',')
			}
			body = append(body, event...)
		}
		if len(body) > 0 {
			bodies = append(bodies, body)
		}
		rejected := 0
		for _, b := range bodies {
			b = append(b, "]}"...)
			n, err := post(ctx, client, url, writeKey, b)
			if err != nil {
				return rejected, err
			}
			rejected += n
		}
		return rejected, nil
	}
}

// post posts one batch body to a collector, retrying as collectorSender says, and returns how
// many of its events the collector rejected.
func post(ctx context.Context, client *http.Client, url, writeKey string, body []byte) (int, error) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, fmt.Errorf("post to collector: %w", err)
		}
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		var status int
		var msg []byte
		if err == nil {
			status = resp.StatusCode
			msg, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if status == http.StatusOK {
				var ok struct{ Rejected []json.RawMessage }
				_ = json.Unmarshal(msg, &ok)
				return len(ok.Rejected), nil
			}
			// An answer's body goes into the error: another server's page is cut short.
			if msg = bytes.TrimSpace(msg); len(msg) > 300 {
				msg = []byte(strings.ToValidUTF8(string(msg[:300]), "") + "…") // no rune cut in two
			}
			switch status {
			case http.StatusUnauthorized:
				return 0, fmt.Errorf("collector %s answered %d: %s: %w", url, status, msg, ErrWriteKeyRefused)
			case http.StatusNotFound, http.StatusMethodNotAllowed:
				return 0, fmt.Errorf("%s answered %d: %s: %w", url, status, msg, ErrNoCollectorAPI)
			}
			if status < 500 && status != http.StatusTooManyRequests {
				return 0, fmt.Errorf("collector %s answered %d: %s", url, status, msg)
			}
			err = fmt.Errorf("collector answered %d: %s", status, msg)
		}
		if attempt == 10 {
			return 0, fmt.Errorf("post to collector %s, %d attempts: %w", url, attempt, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// replayFile reads the dataset at path. A file that is not a regular one (a named pipe) is opened
// and read so that ctx's end ends the wait for its writer, and linger is called as it is read
// (contextReader); a regular file is read as it is.
func replayFile(ctx context.Context, path string, pass int, read datasetReader, emit func(Message) error, skip func(Skip), linger func() (time.Duration, error)) error {
	f, err := openContext(ctx, path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	var in io.Reader = f
	var live *contextReader // the reading of a file that is not a regular one; nil for one that is
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		live = &contextReader{ctx: ctx, r: f, linger: linger}
		in = live
	}
	r, err := decompressed(in, live != nil)
	if err != nil {
		return fmt.Errorf("replay %s: %w", path, live.cause(err))
	}
	if err := read(r, pass, emit, skip); err != nil {
		return fmt.Errorf("replay %s: %w", path, live.cause(err))
	}
	return nil
}

// idleFlush is how long replay holds an event read from standard input or a named pipe before it
// sends it, as its linger (Replay's linger, called by contextReader): a second, as a log shipper
// lingers (Fluent Bit's flush interval is one).
const idleFlush = time.Second

// contextReader is r whose reads end with ctx's error once ctx ends: a read of standard input or a
// pipe waits for its writer, and replay saw a signal (ctx) only when input came or ended (tester
// 50's F1). Each read runs in a goroutine of its own; one left when ctx ends stays waiting until
// input comes or the process ends, which replay's does next.
//
// linger, when set, is called on the goroutine calling Read, before each read and, while a read
// waits, again after the time it returned (the read waits on): replay sends what it has held
// idleFlush, whether the writer writes on or is quiet (tester 53's F12, tester 54's F2 and tester
// 55's F5: a linger counted from the read's start held an event up to two seconds). An error of
// linger ends the read, and every read after it, with that error (cause tells it).
type contextReader struct {
	ctx       context.Context
	r         io.Reader
	linger    func() (next time.Duration, err error)
	lingerErr error // what linger returned, ending the reading
}

func (c *contextReader) Read(p []byte) (int, error) {
	if c.lingerErr != nil {
		return 0, c.lingerErr
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	next := time.Duration(-1) // when to call linger again; none without linger
	if c.linger != nil {
		var err error
		if next, err = c.linger(); err != nil {
			c.lingerErr = err
			return 0, err
		}
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, len(p)) // not p: a read left waiting must not write into it later
	done := make(chan result, 1)
	go func() {
		n, err := c.r.Read(buf)
		done <- result{n, err}
	}()
	var quiet <-chan time.Time
	var t *time.Timer
	if next >= 0 {
		t = time.NewTimer(next)
		defer t.Stop()
		quiet = t.C
	}
	for {
		select {
		case res := <-done:
			return copy(p, buf[:res.n]), res.err
		case <-c.ctx.Done():
			select {
			case res := <-done: // read already: what the writer wrote before the end is used
				return copy(p, buf[:res.n]), res.err
			default:
			}
			return 0, c.ctx.Err()
		case <-quiet:
			next, err := c.linger()
			if err != nil {
				c.lingerErr = err
				return 0, err
			}
			t.Reset(next)
		}
	}
}

// cause is err, met reading through c, as its cause: linger's error (a send that failed) when that
// ended the reading, not the reading's wrapping of it ("read line 3: …"). A nil c read nothing:
// err is its own cause.
func (c *contextReader) cause(err error) error {
	if c != nil && c.lingerErr != nil {
		return c.lingerErr
	}
	return err
}

// openContext opens path for reading, giving up when ctx ends: opening a named pipe waits until a
// writer opens it. A file opened after that is closed.
func openContext(ctx context.Context, path string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.Open(path)
		if ctx.Err() != nil && f != nil {
			f.Close()
			f, err = nil, ctx.Err()
		}
		done <- result{f, err}
	}()
	select {
	case res := <-done:
		return res.f, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Decompressed returns r's text in UTF-8: uncompressed when r starts with gzip's magic bytes (1f
// 8b, RFC 1952), whatever the file is named, else r as it is; then decoded from UTF-16 when it
// starts with UTF-16's byte order mark (FF FE or FE FF, which PowerShell 5's > and Notepad's
// "Unicode" write), the mark dropped. Text in another encoding that can be told from its first
// bytes, UTF-32 (its byte order mark) or UTF-16 without a byte order mark (every other byte 0), is
// an *EncodingError: it is not guessed at. Other errors are of reading the gzip header; a corrupt
// stream fails the read that meets it. A UTF-8 byte order mark is left for the line reader, which
// drops it (TrimByteOrderMark). A gzip stream cut short or corrupt is said to be gzip's, with
// the bytes read of it (gzipError).
func Decompressed(r io.Reader) (io.Reader, error) { return decompressed(r, false) }

// decompressed is Decompressed of r, which is live when it is read as it is written (standard
// input, a named pipe): its first bytes are looked at as far as its first reads gave them, not
// waited for until binaryHead came (a writer of one line that keeps the pipe open would keep
// it from being read; tester 53's F12).
func decompressed(r io.Reader, live bool) (io.Reader, error) {
	in := &countingReader{r: r}
	br := bufio.NewReader(in)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read: %w", err)
	}
	if Gzipped(magic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip header: %w", gzipError(err, in.n))
		}
		br = bufio.NewReader(&gzipData{zr: zr, in: in})
	}
	return utf8Text(br, live)
}

// countingReader is r counting the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// gzipData is a gzip stream's data, decompressed, whose errors say they are the stream's
// (gzipError): a file cut short said only "read line 1: unexpected EOF" (tester 50's F11).
type gzipData struct {
	zr *gzip.Reader
	in *countingReader // the compressed bytes
}

func (g *gzipData) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = gzipError(err, g.in.n)
	}
	return n, err
}

// gzipError says what err, met reading a gzip stream after read of its bytes, means: the stream
// cut short (io.ErrUnexpectedEOF, a file copied or downloaded in part), or corrupt. Other errors
// (of the reading itself, a context's end) are err.
func gzipError(err error, read int64) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("gzip data cut short (%w) after %d bytes: it ends inside its compressed stream, as a file copied or downloaded in part does", err, read)
	case errors.As(err, &corrupt), errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("gzip data corrupt within its first %d bytes: %w", read, err)
	}
	return err
}

// Gzipped reports whether data starts with gzip's magic bytes (1f 8b, RFC 1952).
func Gzipped(data []byte) bool {
	return len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

// EncodingError says that a file's text is in an encoding replay does not read, told by its first
// bytes.
type EncodingError struct {
	Encoding string // UTF-32LE, UTF-32BE, UTF-16LE, UTF-16BE
	Sign     string // what told it: "byte order mark FF FE 00 00", "no byte order mark, …"
}

func (e *EncodingError) Error() string {
	from := strings.TrimSuffix(strings.TrimSuffix(e.Encoding, "LE"), "BE")
	if strings.Contains(e.Sign, "no byte order mark") {
		from = e.Encoding // iconv reads UTF-16 without a mark as big-endian
	}
	return fmt.Sprintf("the file is %s (%s), which replay does not read: convert it to UTF-8 first, e.g. `iconv -f %s -t UTF-8`", e.Encoding, e.Sign, from)
}

// utf8Text returns br's text in UTF-8, as Decompressed describes; of a live input (decompressed)
// it looks for binary data in the bytes its first reads gave.
func utf8Text(br *bufio.Reader, live bool) (io.Reader, error) {
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read: %w", err)
	}
	marks := []struct {
		mark, encoding string
	}{ // UTF-32LE's mark starts with UTF-16LE's: it comes first
		{"\xff\xfe\x00\x00", "UTF-32LE"}, {"\x00\x00\xfe\xff", "UTF-32BE"}, {"\xff\xfe", "UTF-16LE"}, {"\xfe\xff", "UTF-16BE"},
	}
	for _, m := range marks {
		if !bytes.HasPrefix(head, []byte(m.mark)) {
			continue
		}
		if strings.HasPrefix(m.encoding, "UTF-32") {
			return nil, &EncodingError{Encoding: m.encoding, Sign: fmt.Sprintf("byte order mark % X", m.mark)}
		}
		order := unicode.LittleEndian
		if m.encoding == "UTF-16BE" {
			order = unicode.BigEndian
		}
		return transform.NewReader(br, unicode.UTF16(order, unicode.ExpectBOM).NewDecoder()), nil
	}
	// Text starts with a character of ASCII (a JSON value's {, a CSV header, a digit): in UTF-16
	// without a mark, every other byte of it is 0, which no UTF-8 text has.
	if len(head) == 4 {
		switch {
		case head[0] != 0 && head[1] == 0 && head[2] != 0 && head[3] == 0:
			return nil, &EncodingError{Encoding: "UTF-16LE", Sign: "no byte order mark, every other byte 0"}
		case head[0] == 0 && head[1] != 0 && head[2] == 0 && head[3] != 0:
			return nil, &EncodingError{Encoding: "UTF-16BE", Sign: "no byte order mark, every other byte 0"}
		}
	}
	sniff := binaryHead
	if live {
		sniff = min(binaryHead, br.Buffered())
	}
	if head, _ = br.Peek(sniff); binaryData(head) {
		start := bytes.TrimLeft(head, " \t\r\n")
		return nil, &BinaryError{First: start[0], Kind: binaryKind(start)}
	}
	return br, nil
}

// binaryHead is how many of a file's first bytes binaryData looks at: as many as net/http's
// sniffing does.
const binaryHead = 512

// binaryData reports whether head, a file's first bytes, are binary data, not text: bytes no
// text has (a control character other than a space's, as net/http's sniffing counts them, or
// bytes that are no UTF-8), starting so that notJSON would call its first line binary data: with
// the magic bytes of a kind of file (binaryKind: an image, an archive), or with such a byte.
// Text in another encoding than UTF-8 (ISO 8859-1's ü) starting with a letter of ASCII is text:
// its lines are read, each refused or not on its own.
func binaryData(head []byte) bool {
	start := bytes.TrimLeft(head, " \t\r\n")
	if len(start) == 0 {
		return false
	}
	control := slices.ContainsFunc(head, func(b byte) bool {
		return b < 0x20 && !strings.ContainsRune("\t\n\r\f\x1b", rune(b)) || b == 0x7f
	})
	whole := head
	if len(head) == binaryHead { // a character cut by head's end is no fault of the text
		for i := len(head) - 1; i >= len(head)-utf8.UTFMax; i-- {
			if utf8.RuneStart(head[i]) {
				if !utf8.FullRune(head[i:]) {
					whole = head[:i]
				}
				break
			}
		}
	}
	if !control && utf8.Valid(whole) {
		return false
	}
	return binaryKind(start) != "" || start[0] < 0x20 || start[0] == 0x7f
}

// BinaryError says that a file is binary data, not text, told by its first bytes (binaryData): an
// image or an archive given by mistake. It is refused whole, before any line is read: each of its
// "lines" was skipped as not JSON, a PNG counted as three skipped lines and more (tester 50's
// F12).
type BinaryError struct {
	First byte   // its first byte that is not a space
	Kind  string // what kind of file it is ("a PNG image", "application/pdf"), "" when not known
}

func (e *BinaryError) Error() string {
	kind := ""
	if e.Kind != "" {
		kind = " (" + e.Kind + ")"
	}
	return fmt.Sprintf("not JSON or CSV: binary data starting with byte 0x%02x%s, where replay reads text: a JSON value (segment, otto) or a CSV record (taobao, rees46) a line", e.First, kind)
}

// WaitCaughtUp polls until the consumer group has committed everything on topic (which, as the
// consumer commits only after ClickHouse acknowledged, means it is stored) or ctx is done.
func WaitCaughtUp(ctx context.Context, brokers []string, group, topic string) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		lag, err := GroupLag(ctx, brokers, group, topic)
		total := int64(0)
		for _, l := range lag {
			total += l
		}
		if err == nil && total == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for group %s: %w", group, err)
			}
			return fmt.Errorf("wait for group %s: %d messages not yet stored: %w", group, total, ctx.Err())
		case <-tick.C:
		}
	}
}

// summarizeWriteErrors shortens kafka-go's WriteErrors, which lists one error per message, to a
// count and the distinct errors.
func summarizeWriteErrors(err error) error {
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) {
		return err
	}
	distinct := map[string]bool{}
	var first []error
	for _, e := range werrs {
		if e != nil && !distinct[e.Error()] {
			distinct[e.Error()] = true
			first = append(first, e)
		}
	}
	return fmt.Errorf("%d of %d messages failed: %w", werrs.Count(), len(werrs), errors.Join(first...))
}
