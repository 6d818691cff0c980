package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Formats lists the dataset formats Replay reads.
var Formats = []string{"taobao", "rees46", "otto", "segment"}

// Message is one Segment message ready for Kafka, keyed by its customer key.
type Message struct {
	Key   string
	Value []byte
	Line  int // line of the source file it came from
	// FutureTimestamp says its time lies more than MaxFutureTimestamp after its receive time, so
	// that it is stored at that time (SkewCorrected): counted in ReplaySummary.FutureTimestamps.
	FutureTimestamp bool
	// ToCollector, when set, is the message as sent to a collector instead of Value: its time
	// moved to its receive time by replay, since a collector, which takes its own clock as the
	// receive time, cannot. Sent to Kafka, Value keeps the client's time, and the consumer moves
	// it and counts it in waymark_future_timestamps_total, as it does any message's.
	ToCollector []byte
}

// forCollector is the message as sent to a collector: ToCollector, else Value.
func (m Message) forCollector() []byte {
	if m.ToCollector != nil {
		return m.ToCollector
	}
	return m.Value
}

// Skip is a source line, or an event of one (a batch body's, an OTTO session's), that could not
// be turned into a message, and why. Replay dead-letters it (DeadLetter) and lists it.
type Skip struct {
	Line   int
	Event  string // the event of the line skipped ("batch[3]", "events[2]"); "" for the whole line
	Reason string // why, as printed: the rejection as the consumer words it, or the reader's words
	// Code is the reason code of the dead letter (HeaderDLQReason): the rejection's (an
	// *InvalidError's Reason), else ReasonInvalidLine.
	Code string
	// Raw is what was skipped, the dead letter's value: the line, or the event of it; nil for a
	// line longer than MaxLineBytes, which is not kept.
	Raw []byte
	// Message says that what was skipped is a message of the format refused for its content (a
	// Segment message, a batch body or an event of one: a JSON object with a Segment type; a row
	// whose time Waymark does not accept), not a line of another format: such skips do not make
	// a file "not FORMAT" (lineTally).
	Message bool
}

// Place names what was skipped: "line 3", or "line 3 batch[2]".
func (s Skip) Place() string {
	if s.Event == "" {
		return "line " + strconv.Itoa(s.Line)
	}
	return "line " + strconv.Itoa(s.Line) + " " + s.Event
}

// refused is the Skip of raw, a message of the format that Waymark refuses (err).
func refused(line int, raw []byte, err error) Skip {
	code := RejectReason(err)
	if code == "" {
		code = ReasonInvalidLine
	}
	return Skip{Line: line, Reason: err.Error(), Code: code, Raw: raw, Message: true}
}

// unread is the Skip of a line (raw) that is not of the format, for reason.
func unread(line int, raw []byte, reason string) Skip {
	return Skip{Line: line, Reason: reason, Code: ReasonInvalidLine, Raw: raw}
}

// datasetReader turns a dataset into messages. pass > 0 makes every customer and message id fresh,
// so a file can be replayed many times as new traffic.
type datasetReader func(r io.Reader, pass int, emit func(Message) error, skip func(Skip)) error

func datasetReaderFor(format string) (datasetReader, error) {
	switch format {
	case "taobao":
		return readTaobao, nil
	case "rees46":
		return readRees46, nil
	case "otto":
		return readOtto, nil
	case "segment":
		return readSegment, nil
	}
	return nil, fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// trackMessage is the Segment track call a dataset row becomes.
type trackMessage struct {
	Type       string         `json:"type"`
	Event      string         `json:"event"`
	MessageID  string         `json:"messageId"`
	UserID     string         `json:"userId"`
	Timestamp  string         `json:"timestamp"`
	Properties map[string]any `json:"properties,omitempty"`
	Context    trackContext   `json:"context"`
}

type trackContext struct {
	Library struct {
		Name string `json:"name"`
	} `json:"library"`
}

// newTrack builds the track message of a dataset's row: user is the dataset's customer, named by
// its number. A customer whose number reads as a placeholder id (Placeholder: OTTO numbers its
// sessions from 0, and 0 is a client's unset id) is named format-number ("otto-0"): it is a real
// customer of the dataset, which Decode would otherwise read as no id. A time t Waymark does not
// accept (InTimeRange) is an *InvalidError naming timeField, the dataset's column of it: the row
// is to be skipped (see sendable), as the consumer would dead-letter it.
func newTrack(format string, pass, line int, row, user, event string, t time.Time, timeField string, props map[string]any) (Message, error) {
	if err := checkEventTime(t, timeField); err != nil {
		return Message{}, err
	}
	if _, placeholder := Placeholder(user); placeholder {
		user = format + "-" + user
	}
	if pass > 0 {
		user = user + "~" + strconv.Itoa(pass)
	}
	m := trackMessage{
		Type:       "track",
		Event:      event,
		MessageID:  rowID(format, pass, line, row),
		UserID:     user,
		Timestamp:  t.UTC().Format(time.RFC3339Nano),
		Properties: props,
	}
	m.Context.Library.Name = "waymark-replay"
	b, err := json.Marshal(m)
	if err != nil {
		return Message{}, fmt.Errorf("encode line %d: %w", line, err)
	}
	return Message{Key: user, Value: b, Line: line}, nil
}

// sendable reports whether newTrack's message of line is to be sent: err is nil. A row Waymark
// would refuse (an *InvalidError) is skipped with the reason, and sendable returns false and nil;
// another error is returned.
func sendable(line int, raw string, err error, skip func(Skip)) (bool, error) {
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		skip(refused(line, []byte(raw), err))
		return false, nil
	}
	return err == nil, err
}

// rowID is a messageId that is the same every time the same row of the same format is replayed.
func rowID(format string, pass, line int, row string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", format, pass, line, row)
	return format + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

var taobaoEvents = map[string]string{
	"pv":   "Product Viewed",
	"fav":  "Product Added to Wishlist",
	"cart": "Product Added",
	"buy":  "Order Completed",
}

// readTaobao reads `user_id,item_id,category_id,behavior,timestamp` rows (no header, unix seconds).
func readTaobao(r io.Reader, pass int, emit func(Message) error, skip func(Skip)) error {
	return eachLine(r, func(line int, text string) error {
		f := strings.Split(text, ",")
		if len(f) != 5 {
			skip(unread(line, []byte(text), fmt.Sprintf("want 5 comma-separated fields, got %d", len(f))))
			return nil
		}
		event, ok := taobaoEvents[f[3]]
		if !ok {
			skip(unread(line, []byte(text), fmt.Sprintf("unknown behavior %q", f[3])))
			return nil
		}
		sec, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil || f[0] == "" {
			skip(unread(line, []byte(text), fmt.Sprintf("bad user or timestamp in %q", text)))
			return nil
		}
		m, err := newTrack("taobao", pass, line, text, f[0], event, time.Unix(sec, 0), "timestamp",
			map[string]any{"product_id": f[1], "category": f[2]})
		if ok, err := sendable(line, text, err, skip); !ok {
			return err
		}
		return emit(m)
	}, skip)
}

// rees46Events are the Segment e-commerce events of REES46's event types: its electronics
// export has view, cart and purchase, its cosmetics shop's export also remove_from_cart on about
// one row in six (tester 35's F12), Segment's Product Removed.
var rees46Events = map[string]string{
	"view":             "Product Viewed",
	"cart":             "Product Added",
	"remove_from_cart": "Product Removed",
	"purchase":         "Order Completed",
}

// readRees46 reads the REES46 CSV with its header line.
func readRees46(r io.Reader, pass int, emit func(Message) error, skip func(Skip)) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil // no line: no event
	case err != nil:
		return &FormatError{Format: "rees46", Problem: fmt.Sprintf("line 1 is no REES46 header: %v", err)}
	}
	col := map[string]int{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, byteOrderMark) // Excel's "CSV UTF-8" starts with one
		}
		col[h] = i
	}
	for _, want := range []string{"event_time", "event_type", "product_id", "user_id"} {
		if _, ok := col[want]; !ok {
			return &FormatError{Format: "rees46", Problem: fmt.Sprintf("line 1 is no REES46 header: no column %q in %q", want, abbreviate([]byte(strings.Join(header, ","))))}
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			skip(unread(line, []byte(strings.Join(rec, ",")), err.Error()))
			continue
		}
		event, ok := rees46Events[get(rec, "event_type")]
		if !ok {
			skip(unread(line, []byte(strings.Join(rec, ",")), fmt.Sprintf("unknown event_type %q", get(rec, "event_type"))))
			continue
		}
		// REES46 writes its times in UTC, with the zone's name: 2019-10-01 00:00:00 UTC. Another
		// name is not guessed at (Go's time.Parse reads an unknown one as UTC).
		text, utc := strings.CutSuffix(get(rec, "event_time"), " UTC")
		t, err := ParseTimestamp(text)
		if !utc || err != nil || get(rec, "user_id") == "" {
			skip(unread(line, []byte(strings.Join(rec, ",")), fmt.Sprintf("bad user_id or event_time %q", get(rec, "event_time"))))
			continue
		}
		props := map[string]any{"product_id": get(rec, "product_id"), "category_id": get(rec, "category_id")}
		for src, dst := range map[string]string{"category_code": "category", "brand": "brand", "user_session": "session_id"} {
			if v := get(rec, src); v != "" {
				props[dst] = v
			}
		}
		// A price is kept as sent: a JSON number where it is one (CanonicalNumber, so 289.50 is
		// 289.5, as a client's JSON would be stored), else its text (NaN, 1_0), as a client's
		// string property is: every row is sent, none of its values dropped.
		if price := get(rec, "price"); price != "" {
			if n, ok := CanonicalNumber(price); ok {
				props["price"] = json.Number(n)
			} else {
				props["price"] = price
			}
		}
		m, err := newTrack("rees46", pass, line, strings.Join(rec, ","), get(rec, "user_id"), event, t, "event_time", props)
		if ok, err := sendable(line, strings.Join(rec, ","), err, skip); !ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := emit(m); err != nil {
			return err
		}
	}
}

var ottoEvents = map[string]string{
	"clicks": "Product Viewed",
	"carts":  "Product Added",
	"orders": "Order Completed",
}

// readOtto reads OTTO JSON Lines: one session per line with its events (ts in unix milliseconds).
// The session number is the customer.
func readOtto(r io.Reader, pass int, emit func(Message) error, skip func(Skip)) error {
	return eachLine(r, func(line int, text string) error {
		var s struct {
			Session json.Number `json:"session"`
			Events  *[]struct {
				Aid  json.Number `json:"aid"`
				Ts   int64       `json:"ts"`
				Type string      `json:"type"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			reason := "invalid JSON: " + err.Error()
			if nj := notJSON([]byte(text)); nj != nil { // a line of text, a CSV row (tester 48's F6)
				reason = nj.Error() + "; an OTTO line is one JSON object"
			}
			skip(unread(line, []byte(text), reason))
			return nil
		}
		if s.Session == "" || s.Events == nil {
			// Any JSON object unmarshals into s: a Segment message would be a session of no
			// events, and a file of them replayed as nothing, successfully.
			skip(unread(line, []byte(text), `no OTTO session: want {"session":…,"events":[…]}, got `+abbreviate([]byte(text))))
			return nil
		}
		for i, e := range *s.Events {
			event, ok := ottoEvents[e.Type]
			if !ok {
				sk := unread(line, []byte(text), fmt.Sprintf("unknown type %q", e.Type))
				sk.Event = fmt.Sprintf("events[%d]", i)
				skip(sk)
				continue
			}
			row := fmt.Sprintf("%s/%d/%s/%d/%s", s.Session, i, e.Aid, e.Ts, e.Type)
			m, err := newTrack("otto", pass, line, row, s.Session.String(), event, time.UnixMilli(e.Ts), fmt.Sprintf("events[%d].ts", i),
				map[string]any{"product_id": e.Aid.String()})
			eventSkip := func(sk Skip) { sk.Event = fmt.Sprintf("events[%d]", i); skip(sk) }
			if ok, err := sendable(line, text, err, eventSkip); !ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := emit(m); err != nil {
				return err
			}
		}
		return nil
	}, skip)
}

// readSegment reads JSON Lines of Segment messages (an export: history, whose times a receiver
// stamped) and sends them as they are: a fresh pass only renames the ids, and a message without
// timestamp gets the one Decode gives it (by originalTimestamp, SkewCorrected against its own
// sentAt and receivedAt; else its receivedAt, which the collector would replace by its own
// clock), so that it keeps that time however it is replayed. A timestamp more than
// MaxFutureTimestamp after the line's receive time (its receivedAt, else the time of the replay)
// is stored at that time, the line's kept as originalTimestamp (SkewCorrected: PostHog's rule):
// straight to Kafka the consumer moves it, as it moves any stamped message's, and counts it in
// waymark_future_timestamps_total{path="consumer"}; to a collector replay sends it moved
// (Message.ToCollector), so that both store it alike. A line may also be a whole batch body as POSTed to /v1/batch
// ({"batch":[…],"context":…,"sentAt":…}): each of its events is read as a line of its own, with
// its batch's sentAt and context given to it by the rule of the collector (withBatch). Lines that
// are not valid Segment messages (or batch bodies) are skipped with the reason; a batch's events
// one by one, named batch[i].
func readSegment(r io.Reader, pass int, emit func(Message) error, skip func(Skip)) error {
	repeats := make(Repeats)
	return eachLine(r, func(line int, text string) error {
		raw := []byte(text)
		if !isBatchBody(raw) {
			return readSegmentMessage(raw, pass, line, "line "+strconv.Itoa(line), repeats, emit, skip)
		}
		req, err := parseRequest(raw, "batch")
		if err != nil {
			sk := refused(line, raw, err)
			sk.Reason = "batch body: " + sk.Reason
			skip(sk)
			return nil
		}
		var members []member
		for i, event := range req.events {
			name := "batch[" + strconv.Itoa(i) + "]"
			if members, err = objectMembers(event, members[:0]); err != nil {
				sk := refused(line, event, notAnEvent(members, err))
				sk.Event = name
				skip(sk)
				continue
			}
			drop, add := withBatch(members, req, nil, nil)
			event = appendObject(nil, event, members, drop, add)
			eventSkip := func(s Skip) { s.Event, s.Message = name, true; skip(s) }
			if err := readSegmentMessage(event, pass, line, "line "+strconv.Itoa(line)+" "+name, repeats, emit, eventSkip); err != nil {
				return err
			}
		}
		return nil
	}, skip)
}

// segmentMessage says whether raw is a JSON object naming a Segment call type: a Segment message,
// whatever else is wrong with it.
func segmentMessage(raw []byte) bool {
	members, err := topMembers(raw)
	if err != nil {
		return false
	}
	t := lookup(members, "type")
	if t == nil {
		return false
	}
	typ, ok := stringOf(t.value)
	return ok && knownTypes[typ]
}

// isBatchBody says whether a line is a JSON object with a top-level "batch" array and no "type":
// a body as POSTed to /v1/batch, not a message.
func isBatchBody(raw []byte) bool {
	members, err := topMembers(raw)
	if err != nil {
		return false
	}
	b := lookup(members, "batch")
	return b != nil && len(b.value) > 0 && b.value[0] == '[' && lookup(members, "type") == nil
}

// readSegmentMessage reads one Segment message of a line (readSegment); place names it for
// nameLine ("line 7", or "line 7 batch[2]" for an event of a batch body), and repeats counts the
// file's messages for it.
func readSegmentMessage(raw []byte, pass, line int, place string, repeats Repeats, emit func(Message) error, skip func(Skip)) error {
	e, err := Decode(raw, "replay", time.Now())
	if err != nil {
		sk := refused(line, raw, err)
		sk.Message = segmentMessage(raw)
		skip(sk)
		return nil
	}
	if raw, err = nameLine(raw, line, place, repeats); err != nil {
		return err
	}
	if pass > 0 {
		// The line is a message (Decode above: the same lines are skipped in every pass,
		// which encoding/json, reading text after the message or invalid UTF-8, would not).
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers as sent: an id of 20 digits keeps them all
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			skip(unread(line, raw, "invalid JSON: "+err.Error()))
			return nil
		}
		// Every id the identity rules read is renamed, and the messageId: an id left out joins
		// each pass's person to the first pass's (an alias whose previousId kept its name merged
		// every copy of its user into one person).
		for _, k := range []string{"userId", "anonymousId", "previousId", "messageId"} {
			var id string
			switch v := m[k].(type) {
			case string:
				id = v
			case json.Number: // one id however it is written (CanonicalNumber)
				id, _ = CanonicalNumber(v.String())
			default:
				continue
			}
			if _, placeholder := Placeholder(id); placeholder {
				continue // no id, in every pass: a placeholder renamed would pass for one
			}
			m[k] = id + "~" + strconv.Itoa(pass)
		}
		if raw, err = json.Marshal(m); err != nil {
			return fmt.Errorf("encode line %d: %w", line, err)
		}
		if e, err = Decode(raw, "replay", time.Now()); err != nil {
			skip(refused(line, raw, err))
			return nil
		}
	}
	members, err := objectMembers(raw, nil)
	if err != nil {
		return fmt.Errorf("BUG: line %d decoded but is not an object: %w", line, err)
	}
	absent := func(name string) bool { m := lookup(members, name); return m == nil || string(m.value) == "null" }
	var toCollector []byte
	switch {
	case absent("timestamp") && (!e.OriginalTimestamp.IsZero() || !absent("receivedAt")):
		raw = appendObject(nil, raw, members, []string{"timestamp"},
			[]field{{"timestamp", quoteASCII(e.Timestamp.Format(time.RFC3339Nano))}})
	case e.FutureTimestamp: // its timestamp, moved to its receive time: the client's is kept
		skip, extra := []string{"timestamp"}, []field(nil)
		if absent("originalTimestamp") {
			skip = append(skip, "originalTimestamp") // a null one
			extra = append(extra, field{"originalTimestamp", lookup(members, "timestamp").value})
		}
		toCollector = appendObject(nil, raw, members, skip,
			append(extra, field{"timestamp", quoteASCII(e.Timestamp.Format(time.RFC3339Nano))}))
	}
	return emit(Message{Key: e.CustomerKey(), Value: raw, Line: line, FutureTimestamp: e.FutureTimestamp, ToCollector: toCollector})
}

// nameLine gives a line that has no messageId (or a placeholder) the id it has in its file.
// One that states no time (timestamp, originalTimestamp, receivedAt) gets the id
// DerivedMessageID derives from its bytes and its place in the file, so that replaying a file
// again gives it the same id (one event, whose earliest copy counts), where the consumer would
// name each replay of it a receipt of its own; two identical such lines of one file are two
// events, as two such calls are. One that states its time is named by its bytes, as a client's
// call is, and a file is replayed as one request (IDParts.Repeat): the first line of its bytes
// goes as it is (the consumer, or the collector, derives its id: the one it had before repeats
// were counted), and the k-th repeat of it gets the id with its repeat, so identical lines of
// one file are events of their own, as Segment counts every message its libraries send, and a
// file replayed again gives each the same id. repeats counts the file's lines (in one pass): an
// entry per distinct such line, none for lines with their messageId (as Segment's exports have).
func nameLine(raw []byte, line int, place string, repeats Repeats) ([]byte, error) {
	members, err := objectMembers(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("BUG: line %d decoded but is not an object: %w", line, err)
	}
	if m := lookup(members, "messageId"); m != nil && string(m.value) != "null" && !placeholderJSON(m.value) {
		return raw, nil
	}
	stated := func(name string) bool { m := lookup(members, name); return m != nil && string(m.value) != "null" }
	var p IDParts
	if stated("timestamp") || stated("originalTimestamp") || stated("receivedAt") {
		if p.Repeat = repeats.Next(DerivedMessageID("replay", raw, p)); p.Repeat == 0 {
			return raw, nil
		}
	} else {
		p.Receipt = place
	}
	id := DerivedMessageID("replay", raw, p)
	return appendObject(nil, raw, members, []string{"messageId"}, []field{{"messageId", quoteASCII(id)}}), nil
}

// withinEventLimit passes on to emit the messages of at most DefaultMaxEventBytes and skips the
// others with the reason, as the collector refuses such an event with 400 and the consumer
// dead-letters such a message (too_large): a replay is held to the limit of every path.
func withinEventLimit(emit func(Message) error, skip func(Skip)) func(Message) error {
	return func(m Message) error {
		if len(m.Value) > DefaultMaxEventBytes {
			skip(Skip{Line: m.Line, Reason: fmt.Sprintf("%s: message of %d bytes is larger than %d", ReasonTooLarge, len(m.Value), DefaultMaxEventBytes),
				Code: ReasonTooLarge, Raw: m.Value, Message: true})
			return nil
		}
		return emit(m)
	}
}

// byteOrderMark is the UTF-8 encoding of U+FEFF, which Windows tools (PowerShell's Out-File,
// Excel's "CSV UTF-8", .NET's Encoding.UTF8) write at the start of a text file or a request body.
// The Unicode Standard (§23.8) calls it no part of the text there; it is read as such only at the
// start.
const byteOrderMark = "\ufeff"

// TrimByteOrderMark returns b without the UTF-8 byte order mark (EF BB BF) it may start with:
// what a file, a line-delimited dataset or an HTTP body holds after it. Only a leading one is
// dropped; one further in is text (a JSON reader refuses it outside a string).
func TrimByteOrderMark(b []byte) []byte { return bytes.TrimPrefix(b, []byte(byteOrderMark)) }

// MaxLineBytes is the longest line a dataset reader reads: a batch body as POSTed to /v1/batch
// (MaxBatchBytes) and then some. A longer line is skipped (too_large), read through in bounded
// memory, and the lines after it are read.
const MaxLineBytes = 4 << 20

// eachLine calls fn for every non-empty line, numbered from 1; a byte order mark starting the
// first line is dropped. A line over MaxLineBytes goes to skip instead, with its length.
func eachLine(r io.Reader, fn func(line int, text string) error, skip func(Skip)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for line := 1; ; line++ {
		b, n, err := readLine(br, buf[:0], MaxLineBytes)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", line, err)
		}
		buf = b
		if n > MaxLineBytes {
			skip(Skip{Line: line, Reason: fmt.Sprintf("%s: line of %d bytes is longer than replay reads (%d)", ReasonTooLarge, n, MaxLineBytes), Code: ReasonTooLarge})
			continue
		}
		if line == 1 {
			b = TrimByteOrderMark(b)
		}
		text := string(bytes.TrimRight(b, "\r"))
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := fn(line, text); err != nil {
			return err
		}
	}
}

// readLine appends to buf the next line of br, without its "\n", and returns it and its length
// n. Past max bytes it keeps nothing more but reads on to the line's end, counting. err is
// io.EOF only when br had nothing left.
func readLine(br *bufio.Reader, buf []byte, max int) (line []byte, n int, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err == nil {
			chunk = chunk[:len(chunk)-1]
		}
		n += len(chunk)
		if n <= max {
			buf = append(buf, chunk...)
		}
		switch {
		case full:
			continue
		case err == io.EOF && n == 0:
			return buf, 0, io.EOF
		case err != nil && err != io.EOF:
			return buf, n, err
		}
		return buf, n, nil
	}
}

// FormatError says that a dataset does not read as the format it was replayed as: most of its
// lines (more were skipped than used: Lines and Skipped) or its header (Problem) are not that
// format's. DetectFormat tells which format it may be. When Invalid, the lines skipped are
// mostly messages of the format that Waymark refuses for their content (Segment messages whose
// timestamp is a number, tracks without event): the file is of the format, its events invalid.
type FormatError struct {
	Format  string // the format asked for
	Problem string // what was found: the first line skipped and why, or the header's fault
	Lines   int    // lines read, of the first pass; 0 when the header was at fault
	Skipped int    // lines of them none of whose messages could be used
	Invalid bool   // the skipped lines are mostly the format's messages, refused for their content
}

// Error says how many lines were skipped, a file of one line as such ("all 1 lines were skipped"
// read as a template's: tester 48's F5).
func (e *FormatError) Error() string {
	switch {
	case e.Lines == 0:
		return fmt.Sprintf("not %s: %s", e.Format, e.Problem)
	case e.Invalid && e.Lines == 1:
		return fmt.Sprintf("invalid events: its only line is a %s message Waymark refuses for its content (%s)", e.Format, e.Problem)
	case e.Invalid:
		return fmt.Sprintf("mostly invalid events: %d of %d lines are %s messages Waymark refuses for their content (first: %s)",
			e.Skipped, e.Lines, e.Format, e.Problem)
	case e.Lines == 1:
		return fmt.Sprintf("not %s: its only line was skipped (%s)", e.Format, e.Problem)
	case e.Skipped == e.Lines:
		return fmt.Sprintf("not %s: all %d lines were skipped (first: %s)", e.Format, e.Lines, e.Problem)
	}
	return fmt.Sprintf("not %s: %d of %d lines were skipped (first: %s)", e.Format, e.Skipped, e.Lines, e.Problem)
}

// lineTally counts the lines of a dataset's first pass that gave messages (used) and those that
// gave none and were skipped, from the messages and skips of its lines in order (an OTTO line
// gives several; one some of whose events are skipped counts as used). Of the skipped, refused
// are the lines all of whose skips are messages of the format refused for their content
// (Skip.Message).
type lineTally struct {
	used, skipped, refused int
	line                   int  // the line being counted
	gave, skips, other     bool // whether it gave a message, was skipped, was skipped as not the format's
	cur                    Skip // the first skip of the line being counted
	first                  Skip // the first skip of a line that gave nothing
}

// add counts a message (skip == nil) or a skip of line.
func (t *lineTally) add(line int, skip *Skip) {
	if line != t.line {
		t.end()
		t.line = line
	}
	if skip == nil {
		t.gave = true
		return
	}
	if !t.skips {
		t.cur = *skip
	}
	t.skips = true
	t.other = t.other || !skip.Message
}

// end counts the line being counted.
func (t *lineTally) end() {
	switch {
	case t.gave:
		t.used++
	case t.skips:
		t.skipped++
		if !t.other {
			t.refused++
		}
		if t.first.Line == 0 {
			t.first = t.cur
		}
	}
	t.gave, t.skips, t.other = false, false, false
}

// mostSkipped returns the FormatError of format when, of the lines counted so far, more were
// skipped than used, nil otherwise. It is Invalid when most of the skipped lines are messages of
// the format refused for their content (Skip.Message) rather than lines of another format.
func (t lineTally) mostSkipped(format string) *FormatError {
	t.end()
	if t.skipped == 0 || t.skipped <= t.used {
		return nil
	}
	return &FormatError{Format: format, Problem: t.first.Place() + ": " + t.first.Reason,
		Lines: t.used + t.skipped, Skipped: t.skipped, Invalid: t.refused*2 > t.skipped}
}

// SpreadJSON reports whether r starts with a JSON value written over several lines (a
// pretty-printed body), which replay, reading one value per line, cannot read, and whether that
// value is an array, spread or on one line (of messages, each of which goes on a line of its
// own, where an object goes on one line whole). Only the first MaxLineBytes are looked at, and r
// may end before the value does (a large array, or the first bytes of standard input as replay
// read them): the value is judged by its part read, spread when a line ends in it. Text that is
// no JSON is neither.
func SpreadJSON(r io.Reader) (spread, array bool) {
	data, _ := io.ReadAll(io.LimitReader(r, MaxLineBytes)) // a read error ends the part read
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	open, ok := tok.(json.Delim)
	if err != nil || !ok {
		return false, false // no JSON, or a string, number or literal, which ends on its line
	}
	start := dec.InputOffset() - 1
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the value goes on past the part read
		}
		if err != nil {
			return false, false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return bytes.ContainsAny(data[start:dec.InputOffset()], "\n\r"), open == '['
}

// OneValueALine returns the JSON values r starts with, one a line, as `jq -c '.[]'` writes an
// array's elements and `jq -c .` any other value: what a pretty-printed file, or one of arrays,
// holds as replay reads it once it is put one value a line (DetectFormat of it tells the format
// of its values). Only the first MaxLineBytes of r are looked at, and of them the whole values,
// at most formatSample: a value cut by the part read (the first bytes of standard input as
// replay read them) ends them. Text that is no JSON gives none.
func OneValueALine(r io.Reader) io.Reader {
	data, _ := io.ReadAll(io.LimitReader(r, MaxLineBytes)) // a read error ends the part read
	dec := json.NewDecoder(bytes.NewReader(data))
	var lines bytes.Buffer
	n := 0
	add := func(v json.RawMessage) bool {
		if err := json.Compact(&lines, v); err != nil {
			return false
		}
		lines.WriteByte('\n')
		n++
		return n < formatSample
	}
	for n < formatSample {
		rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")
		if len(rest) == 0 || rest[0] != '[' {
			var v json.RawMessage
			if dec.Decode(&v) != nil || !add(v) {
				break
			}
			continue
		}
		if _, err := dec.Token(); err != nil { // the array's [
			break
		}
		for dec.More() {
			var v json.RawMessage
			if dec.Decode(&v) != nil || !add(v) {
				return &lines
			}
		}
		if _, err := dec.Token(); err != nil { // its ]
			break
		}
	}
	return &lines
}

// JSONLines reports whether format's lines are JSON values, one a line (otto, segment), not
// CSV records (taobao, rees46).
func JSONLines(format string) bool { return format == "otto" || format == "segment" }

// formatSample is how many lines DetectFormat reads.
const formatSample = 100

// DetectFormat returns the format (one of Formats) that the first lines of r read best as: the
// one that uses most of them; "" when none uses any.
func DetectFormat(r io.Reader) string {
	var sample bytes.Buffer
	n := 0
	_ = eachLine(r, func(_ int, text string) error {
		sample.WriteString(text + "\n")
		if n++; n == formatSample {
			return io.EOF
		}
		return nil
	}, func(Skip) {})
	if n == 0 {
		return ""
	}
	best, most := "", 0
	for _, format := range Formats {
		read, _ := datasetReaderFor(format)
		var t lineTally
		emit := func(m Message) error { t.add(m.Line, nil); return nil }
		skip := func(s Skip) { t.add(s.Line, &s) }
		if err := read(bytes.NewReader(sample.Bytes()), 0, emit, skip); err != nil {
			continue
		}
		if t.end(); t.used > most {
			best, most = format, t.used
		}
	}
	return best
}

// ReadDataset turns a dataset file of the given format (taobao, rees46, otto, segment) into
// Segment messages, as replay sends them; lines it cannot use go to skip.
func ReadDataset(r io.Reader, format string, emit func(Message) error, skip func(Skip)) error {
	read, err := datasetReaderFor(format)
	if err != nil {
		return err
	}
	return read(r, 0, withinEventLimit(emit, skip), skip)
}
