package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

type replayed struct {
	msgs  []Message
	skips []Skip
}

func readDataset(t *testing.T, format, path string, pass int) replayed {
	t.Helper()
	read, err := datasetReaderFor(format)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r replayed
	err = read(f, pass, func(m Message) error { r.msgs = append(r.msgs, m); return nil }, func(s Skip) { r.skips = append(r.skips, s) })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDatasets(t *testing.T) {
	tests := []struct {
		format, file string
		events       []string // "customer/event/time" of each message
		skipped      []int    // lines
	}{
		{"taobao", "testdata/taobao.csv", []string{
			"1/Product Viewed/2017-11-28T06:01:34Z", "1/Product Added/2017-11-28T06:01:40Z", "2/Order Completed/2017-11-28T06:02:30Z",
		}, []int{4, 5, 7}},
		{"rees46", "testdata/rees46.csv", []string{
			"541312140/Product Viewed/2019-10-01T00:00:00Z", "554748717/Order Completed/2019-10-01T00:00:01Z",
			"554748717/Product Removed/2019-10-01T00:00:02Z",
		}, []int{5, 6, 7}},
		// Saved by Excel as "CSV UTF-8": a byte order mark before the header (tester11 F9).
		{"rees46", "testdata/rees46-bom.csv", []string{
			"541312140/Product Viewed/2019-10-01T00:00:00Z", "554748717/Order Completed/2019-10-01T00:00:01Z",
			"554748717/Product Removed/2019-10-01T00:00:02Z",
		}, []int{5, 6, 7}},
		{"otto", "testdata/otto.jsonl", []string{
			// OTTO's session 0, named so that it is not the placeholder id 0 (Placeholder).
			"otto-0/Product Viewed/2022-07-31T22:00:00.025Z", "otto-0/Product Added/2022-07-31T22:01:44.511Z", "1/Order Completed/2022-07-31T22:00:00.025Z",
		}, []int{1, 3}},
		{"segment", "testdata/segment.jsonl", []string{
			"u1/Product Viewed/2026-01-01T00:00:00Z", "anon-1/Home/2026-05-01T12:00:00Z", // no time given: receivedAt
		}, []int{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := readDataset(t, tt.format, tt.file, 0)
			var got []string
			for _, m := range r.msgs {
				e, err := Decode(m.Value, "test", recv)
				if err != nil {
					t.Fatalf("line %d is not a valid Segment message: %v\n%s", m.Line, err, m.Value)
				}
				if m.Key != e.CustomerKey() {
					t.Errorf("line %d: key %q, want the customer key %q", m.Line, m.Key, e.CustomerKey())
				}
				got = append(got, fmt.Sprintf("%s/%s/%s", e.CustomerKey(), e.Event, e.Timestamp.Format(time.RFC3339Nano)))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.events) {
				t.Errorf("events\n got %v\nwant %v", got, tt.events)
			}
			var lines []int
			for _, s := range r.skips {
				if s.Reason == "" {
					t.Errorf("line %d skipped without a reason", s.Line)
				}
				lines = append(lines, s.Line)
			}
			if fmt.Sprint(lines) != fmt.Sprint(tt.skipped) {
				t.Errorf("skipped lines %v, want %v (%v)", lines, tt.skipped, r.skips)
			}
		})
	}
}

// TestAnotherFormatIsNamed: each dataset reads as its own format (DetectFormat), and every line
// of it is skipped, with the reason, when it is read as another: so a replay in the wrong
// format stops (a FormatError naming the lines) and sends nothing. Before, every line of a
// Segment export read as OTTO was a session of no events, neither sent nor skipped.
func TestAnotherFormatIsNamed(t *testing.T) {
	files := map[string]string{"taobao": "testdata/taobao.csv", "rees46": "testdata/rees46.csv", "otto": "testdata/otto.jsonl", "segment": "testdata/segment.jsonl"}
	for format, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectFormat(f); got != format {
			t.Errorf("DetectFormat(%s) = %q, want %s", path, got, format)
		}
		f.Close()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, as := range Formats {
			if as == format {
				continue
			}
			_, err := Replay(context.Background(), ReplayConfig{Brokers: []string{"127.0.0.1:1"}, Format: as, Reader: bytes.NewReader(raw)})
			var wrong *FormatError
			if !errors.As(err, &wrong) || wrong.Format != as || wrong.Lines > 0 && wrong.Skipped != wrong.Lines {
				t.Errorf("replay of %s as %s: %v, want a FormatError with every line skipped", path, as, err)
			}
		}
	}
	if got := DetectFormat(strings.NewReader("")); got != "" {
		t.Errorf("DetectFormat of nothing = %q", got)
	}
}

func TestReplayIDsAreDeterministicAndFreshPerPass(t *testing.T) {
	ids := func(pass int) []string {
		var out []string
		for _, m := range readDataset(t, "taobao", "testdata/taobao.csv", pass).msgs {
			var w struct{ MessageID, UserID string }
			if err := json.Unmarshal(m.Value, &w); err != nil {
				t.Fatal(err)
			}
			out = append(out, w.MessageID+"|"+w.UserID)
		}
		return out
	}
	first, again, second := ids(0), ids(0), ids(1)
	if strings.Join(first, ",") != strings.Join(again, ",") {
		t.Errorf("ids differ between two reads of one file:\n%v\n%v", first, again)
	}
	seen := map[string]bool{}
	for _, id := range append(first, second...) {
		msg, user, _ := strings.Cut(id, "|")
		if seen[msg] || seen[user+"@"+msg] {
			t.Errorf("id %s repeated across passes", id)
		}
		seen[msg] = true
	}
	if _, user, _ := strings.Cut(second[0], "|"); user == "1" {
		t.Errorf("a fresh pass keeps customer id %q", user)
	}
}

// readText reads a dataset of format from text, as readDataset reads a file.
func readText(t *testing.T, format, text string) replayed {
	t.Helper()
	read, err := datasetReaderFor(format)
	if err != nil {
		t.Fatal(err)
	}
	var r replayed
	err = read(strings.NewReader(text), 0, func(m Message) error { r.msgs = append(r.msgs, m); return nil }, func(s Skip) { r.skips = append(r.skips, s) })
	if err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return r
}

// TestDatasetRowsOutOfTimeRangeAreSkipped: a row whose time Waymark does not accept (before
// 2000, from 2100, or an export's receipt after the replay) is skipped with the reason, naming the dataset's column, where it was sent and
// reported sent, then dead-lettered by the consumer (tester 18's F4); the rows around it are sent.
func TestDatasetRowsOutOfTimeRangeAreSkipped(t *testing.T) {
	tests := []struct {
		format, text string
		sent         int
		skipped      []int
		reason       string
	}{
		{"taobao", "1,2,3,pv,1511848894\n1,2,3,buy,-5\n1,2,3,pv,1511848895\n2,2,3,buy,4102444800\n3,2,3,buy,946684799\n3,2,3,buy,946684800\n",
			3, []int{2, 4, 5}, "invalid_timestamp (field timestamp): 1969-12-31T23:59:55Z is outside 2000-01-01T00:00:00Z"},
		{"rees46", "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n" +
			"2019-10-01 00:00:00 UTC,view,1,2,,b,1.0,8882,s1\n1999-12-31 23:59:59 UTC,view,1,2,,b,1.0,8882,s1\n2100-01-01 00:00:00 UTC,view,1,2,,b,1.0,8882,s1\n",
			1, []int{3, 4}, "invalid_timestamp (field event_time): 1999-12-31T23:59:59Z is outside"},
		{"otto", `{"session":881,"events":[{"aid":1,"ts":1659304800025,"type":"clicks"},{"aid":2,"ts":5000,"type":"clicks"},{"aid":3,"ts":4102444800000,"type":"orders"}]}` + "\n" +
			`{"session":882,"events":[{"aid":1,"ts":1659304800025,"type":"clicks"}]}` + "\n",
			2, []int{1, 1}, "invalid_timestamp (field events[1].ts): 1970-01-01T00:00:05Z is outside"},
		// An export's receipt after the replay (tester 18's F7): no receipt, so a line with no
		// other time has none; one with a timestamp is sent.
		{"segment", `{"type":"track","userId":"u","event":"V","receivedAt":"2099-12-31T23:59:59Z","messageId":"m1"}` + "\n" +
			`{"type":"track","userId":"u","event":"V","timestamp":"2026-04-30T08:00:00Z","receivedAt":"2099-12-31T23:59:59Z","messageId":"m2"}` + "\n",
			1, []int{1}, "invalid_timestamp (field receivedAt): 2099-12-31T23:59:59Z is more than 23h0m0s after the message reached Waymark"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			r := readText(t, tt.format, tt.text)
			for _, m := range r.msgs {
				if _, err := Decode(m.Value, "test", recv); err != nil {
					t.Errorf("line %d sent, and Waymark refuses it: %v", m.Line, err)
				}
			}
			var lines []int
			for _, s := range r.skips {
				lines = append(lines, s.Line)
			}
			if len(r.msgs) != tt.sent || fmt.Sprint(lines) != fmt.Sprint(tt.skipped) {
				t.Errorf("sent %d, skipped lines %v; want %d and %v (%v)", len(r.msgs), lines, tt.sent, tt.skipped, r.skips)
			}
			if len(r.skips) == 0 || !strings.Contains(r.skips[0].Reason, tt.reason) {
				t.Errorf("skipped for %v, want a reason with %q", r.skips, tt.reason)
			}
		})
	}
}

// TestRees46PricesAreKept: every row is sent with its price as given: a number as a number (the
// text CanonicalNumber gives it), anything else (NaN, Inf, 1_0, 0x10) as text, which before made
// encoding/json fail the whole replay (NaN, Inf) or was read as Go's number syntax (1_0 as 10,
// tester 18's F3).
func TestRees46PricesAreKept(t *testing.T) {
	prices := []struct{ price, stored string }{
		{"1.0", "1"}, {"289.50", "289.5"}, {"1e400", "1e+400"}, {"NaN", "NaN"}, {"Inf", "Inf"}, {"-Infinity", "-Infinity"},
		{"1_0", "1_0"}, {"0x10", "0x10"}, {"+5", "+5"}, {"", ""},
	}
	text := "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
	for i, p := range prices {
		text += fmt.Sprintf("2019-10-01 00:00:%02d UTC,view,1,2,,b,%s,8882,s1\n", i, p.price)
	}
	r := readText(t, "rees46", text)
	if len(r.msgs) != len(prices) || len(r.skips) != 0 {
		t.Fatalf("sent %d of %d rows, skipped %v", len(r.msgs), len(prices), r.skips)
	}
	for i, m := range r.msgs {
		e, err := Decode(m.Value, "test", recv)
		if err != nil {
			t.Fatalf("price %q: %v", prices[i].price, err)
		}
		if got, _ := e.Property("price"); got != prices[i].stored {
			t.Errorf("price %q stored as %q, want %q", prices[i].price, got, prices[i].stored)
		}
	}
}

// TestRees46EventTypes: each REES46 event type is sent as its Segment e-commerce event; the
// cosmetics shop's remove_from_cart is Product Removed (tester 35's F12: it was skipped as an
// unknown event type); another type is skipped, naming it.
func TestRees46EventTypes(t *testing.T) {
	tests := []struct {
		eventType, event, skipped string // the event sent, or the reason the row is skipped
	}{
		{"view", "Product Viewed", ""},
		{"cart", "Product Added", ""},
		{"remove_from_cart", "Product Removed", ""},
		{"purchase", "Order Completed", ""},
		{"wishlist", "", `unknown event_type "wishlist"`},
		{"Remove_From_Cart", "", `unknown event_type "Remove_From_Cart"`},
	}
	for _, tt := range tests {
		t.Run(tt.eventType, func(t *testing.T) {
			r := readText(t, "rees46", "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"+
				"2019-12-01 00:00:00 UTC,"+tt.eventType+",5712790,1487580005268456287,,f.o.x,6.27,576802932,51d8\n")
			switch {
			case tt.skipped != "":
				if len(r.msgs) != 0 || len(r.skips) != 1 || r.skips[0].Reason != tt.skipped {
					t.Errorf("sent %d, skipped %v; want the row skipped: %s", len(r.msgs), r.skips, tt.skipped)
				}
			case len(r.msgs) != 1:
				t.Errorf("sent %d, skipped %v; want the row sent as %s", len(r.msgs), r.skips, tt.event)
			default:
				e, err := Decode(r.msgs[0].Value, "test", recv)
				if err != nil || e.Event != tt.event || e.Type != "track" {
					t.Errorf("sent %s (%v), want a track %s", r.msgs[0].Value, err, tt.event)
				}
			}
		})
	}
}

// TestReplayReadsUTF16 (tester 35's F7): a file in UTF-16 with its byte order mark (PowerShell
// 5's >, Notepad's "Unicode"), gzip-compressed or not, is read as the same file in UTF-8 is, line
// for line and message for message (the same messageIds). UTF-32, and UTF-16 without a byte
// order mark, are refused naming the encoding, not read as lines of another format that blame a
// byte 'ÿ'. A UTF-8 byte order mark is dropped as before.
func TestReplayReadsUTF16(t *testing.T) {
	text := "\ufeff" + `{"type":"track","userId":"rp4","event":"RP Café","timestamp":"2024-05-29T10:00:00Z"}` + "\r\n" +
		`{"type":"track","userId":"rp5","event":"RP 𝄞","timestamp":"2024-05-29T10:01:00Z"}` + "\n"
	in16 := func(order binary.AppendByteOrder, s string) []byte {
		var b []byte
		for _, u := range utf16.Encode([]rune(s)) {
			b = order.AppendUint16(b, u)
		}
		return b
	}
	in32 := func(order binary.AppendByteOrder, s string) []byte {
		var b []byte
		for _, r := range s {
			b = order.AppendUint32(b, uint32(r))
		}
		return b
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	noMark := strings.TrimPrefix(text, "\ufeff")
	tests := []struct {
		name string
		file []byte
		want string // "" when read as the UTF-8 file, else a part of the error
	}{
		{"UTF-8", []byte(noMark), ""},
		{"UTF-8 with its byte order mark", []byte(text), ""},
		{"UTF-16LE", in16(binary.LittleEndian, text), ""},
		{"UTF-16BE", in16(binary.BigEndian, text), ""},
		{"UTF-16LE, gzip-compressed", gz(in16(binary.LittleEndian, text)), ""},
		{"UTF-32LE", in32(binary.LittleEndian, text), "the file is UTF-32LE (byte order mark FF FE 00 00)"},
		{"UTF-32BE, gzip-compressed", gz(in32(binary.BigEndian, text)), "the file is UTF-32BE (byte order mark 00 00 FE FF)"},
		{"UTF-16LE without a mark", in16(binary.LittleEndian, noMark), "the file is UTF-16LE (no byte order mark, every other byte 0)"},
		{"UTF-16BE without a mark", in16(binary.BigEndian, noMark), "iconv -f UTF-16BE -t UTF-8"},
	}
	read := func(file []byte) ([]Message, []Skip, error) {
		var msgs []Message
		var skips []Skip
		r, err := Decompressed(bytes.NewReader(file))
		if err != nil {
			return nil, nil, err
		}
		err = ReadDataset(r, "segment", func(m Message) error { msgs = append(msgs, m); return nil }, func(s Skip) { skips = append(skips, s) })
		return msgs, skips, err
	}
	want, _, err := read([]byte(noMark))
	if err != nil || len(want) != 2 {
		t.Fatalf("the UTF-8 file: %d messages, %v", len(want), err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, skips, err := read(tt.file)
			if tt.want != "" {
				var enc *EncodingError
				if !errors.As(err, &enc) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%v (sent %d, skipped %v), want an EncodingError saying %q", err, len(msgs), skips, tt.want)
				}
				return
			}
			if err != nil || len(skips) > 0 || len(msgs) != len(want) {
				t.Fatalf("%d messages, skipped %v, %v; want the UTF-8 file's %d", len(msgs), skips, err, len(want))
			}
			for i := range msgs {
				if !bytes.Equal(msgs[i].Value, want[i].Value) || msgs[i].Line != want[i].Line {
					t.Errorf("line %d: %s, want %s", msgs[i].Line, msgs[i].Value, want[i].Value)
				}
			}
		})
	}
}

// TestBinaryDataIsRefusedWhole: a file of binary data (a PNG image, a JPEG, gzip inside gzip) is
// refused as one by its first bytes, before any line is read; each of its "lines" was skipped
// as not JSON and counted, a PNG as three skipped lines and more (tester 50's F12). Text with a
// byte no UTF-8 has is read line by line, as it was.
func TestBinaryDataIsRefusedWhole(t *testing.T) {
	t.Parallel()
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01"
	gz := func(s string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		return buf.String()
	}
	line := `{"type":"track","userId":"bd","event":"Café","messageId":"bd-1","timestamp":"2025-05-01T10:00:00Z"}` + "\n"
	tests := []struct {
		name, file string
		want       string // the error; "" when read as text
	}{
		{"a PNG", png, "not JSON or CSV: binary data starting with byte 0x89 (a PNG image), where replay reads text: a JSON value (segment, otto) or a CSV record (taobao, rees46) a line"},
		{"a PNG, gzip-compressed", gz(png), "binary data starting with byte 0x89 (a PNG image)"},
		{"a JPEG", "\xff\xd8\xff\xe0\x00\x10JFIF\x00", "binary data starting with byte 0xff (a JPEG image)"},
		{"gzip inside gzip", gz(gz(line)), "binary data starting with byte 0x1f (gzip data)"},
		{"a zip archive", "PK\x03\x04\x14\x00\x00\x00", "binary data starting with byte 0x50 (a zip archive)"},
		{"bytes of no kind", "\x00\x01\x02\n{}\n", "binary data starting with byte 0x00, where"},
		{"text", line, ""},
		// the first 512 bytes are looked at: a character they cut is not taken for no UTF-8
		{"text starting BM whose 512th byte cuts a character", "BMW," + strings.Repeat("a", 507) + "é,1,2\n", ""},
		{"text in ISO 8859-1", "M\xfcller,1,2,pv,1511544070\n", ""},
		{"text starting BM, a bitmap's magic", "BMW,1,2,pv,1511544070\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decompressed(strings.NewReader(tt.file))
			var bin *BinaryError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("%v, want it read", err)
			case tt.want != "" && (!errors.As(err, &bin) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("%v, want a BinaryError saying %q", err, tt.want)
			}
		})
	}
}

// TestGzipCutShortSaysSo: a gzip file cut short (head -c 100 x.json.gz) said "read line 1:
// unexpected EOF", naming no gzip (tester 50's F11); its error says the gzip data ends early,
// after how many of its bytes, and a corrupt one that it is corrupt.
func TestGzipCutShortSaysSo(t *testing.T) {
	t.Parallel()
	var text strings.Builder
	for i := range 200 {
		fmt.Fprintf(&text, `{"type":"track","userId":"gz%d","event":"E","messageId":"gz-%d","timestamp":"2025-05-01T10:00:00Z"}`+"\n", i, i)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(text.String()))
	zw.Close()
	whole := buf.Bytes()
	corrupt := bytes.Clone(whole)
	corrupt[len(corrupt)/2] ^= 0xff
	tests := []struct {
		name string
		file []byte
		want string // a part of the error; "" when read whole
	}{
		{"whole", whole, ""},
		{"cut in its header", whole[:5], "read gzip header: gzip data cut short (unexpected EOF) after 5 bytes"},
		{"cut at 100 bytes", whole[:100], "read line 1: gzip data cut short (unexpected EOF) after 100 bytes"},
		{"cut before its trailer", whole[:len(whole)-4], fmt.Sprintf("gzip data cut short (unexpected EOF) after %d bytes", len(whole)-4)},
		{"corrupt", corrupt, "gzip data corrupt within its first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			r, err := Decompressed(bytes.NewReader(tt.file))
			if err == nil {
				err = ReadDataset(r, "segment", func(Message) error { n++; return nil }, func(s Skip) { t.Errorf("skipped %v", s) })
			}
			switch {
			case tt.want == "" && (err != nil || n != 200):
				t.Errorf("read %d messages, %v; want 200", n, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, io.ErrUnexpectedEOF) && tt.name != "corrupt"):
				t.Errorf("read %d messages, %v; want an error saying %q", n, err, tt.want)
			}
		})
	}
}

// TestFormatErrorCountsLines (tester 48's F5): the error of a file most of whose lines were
// skipped counts them in words that read, a file of one line included ("all 1 lines were
// skipped", "1 of 1 lines are segment messages" read as a template's).
func TestFormatErrorCountsLines(t *testing.T) {
	good := `{"type":"track","userId":"fe","event":"E","timestamp":"2025-05-01T10:00:00Z"}`
	noEvent := `{"type":"track","userId":"fe","timestamp":"2025-05-01T10:00:00Z"}`
	for _, tt := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"one line skipped", []string{"hello"},
			"not segment: its only line was skipped (line 1: invalid_json: not JSON: text starting with 'h'; a message is one JSON object)"},
		{"two lines skipped", []string{"hello", "world"},
			"not segment: all 2 lines were skipped (first: line 1: invalid_json: not JSON: text starting with 'h'; a message is one JSON object)"},
		{"two of three skipped", []string{"hello", good, "world"},
			"not segment: 2 of 3 lines were skipped (first: line 1: invalid_json: not JSON: text starting with 'h'; a message is one JSON object)"},
		{"one line refused", []string{noEvent},
			"invalid events: its only line is a segment message Waymark refuses for its content (line 1: missing_event (field event): a track call needs an event name that is not blank)"},
		{"two of three refused", []string{noEvent, good, noEvent},
			"mostly invalid events: 2 of 3 lines are segment messages Waymark refuses for their content (first: line 1: missing_event (field event): a track call needs an event name that is not blank)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Replay(context.Background(), ReplayConfig{Brokers: []string{"127.0.0.1:1"}, Format: "segment",
				Reader: strings.NewReader(strings.Join(tt.lines, "\n") + "\n")})
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Error() != tt.want {
				t.Errorf("replay of %q: %v\nwant a FormatError %q", tt.lines, err, tt.want)
			}
		})
	}
}

// TestSpreadJSON: a value over several lines is spread, and an array is said to be one, spread
// or on one line (tester 48's F3: an array on one line got no advice); a value that goes on past
// what is read (the first bytes of standard input: tester 48's F6, or a pretty-printed array
// over MaxLineBytes) is judged by its part read, where it was no JSON.
func TestSpreadJSON(t *testing.T) {
	msg := `{"type":"track","anonymousId":"x","event":"E","timestamp":"2026-01-01T00:00:00Z"}`
	prettyArray := "[\n  " + msg + ",\n  " + msg + "\n]\n"
	for _, tt := range []struct {
		name          string
		text          string
		spread, array bool
	}{
		{"pretty object", "{\n  \"batch\": [\n    " + msg + "\n  ]\n}\n", true, false},
		{"pretty array", prettyArray, true, true},
		{"pretty array cut short", prettyArray[:len(prettyArray)/2], true, true},
		{"pretty array over MaxLineBytes", "[\n" + strings.Repeat(msg+",\n", MaxLineBytes/len(msg)+1) + msg + "\n]\n", true, true},
		{"array on a line", "[" + msg + "," + msg + "]\n" + "[" + msg + "]\n", false, true},
		{"array on a line cut short", "[" + msg + "," + msg[:20], false, true},
		{"object a line", msg + "\n" + msg + "\n", false, false},
		{"object a line cut short", msg[:30], false, false},
		{"string", `"one"` + "\n" + `"two"` + "\n", false, false},
		{"text", "hello\nworld\n", false, false},
		{"CSV", "1,2,3\n4,5,6\n", false, false},
		{"JSON broken on its second line", "{\n  \"a\": x\n}\n", false, false},
		{"nothing", "", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if spread, array := SpreadJSON(strings.NewReader(tt.text)); spread != tt.spread || array != tt.array {
				t.Errorf("SpreadJSON() = %v, %v; want %v, %v", spread, array, tt.spread, tt.array)
			}
		})
	}
}

// TestOneValueALine (tester 53's F14): the JSON values a file starts with, one a line, as jq -c
// writes them, tell what format they are once compacted: a pretty-printed array of Segment
// messages is segment, whatever --format it was given.
func TestOneValueALine(t *testing.T) {
	msg := `{"type":"track","anonymousId":"x","event":"E","timestamp":"2026-01-01T00:00:00Z"}`
	session := `{"session":1,"events":[{"aid":2,"ts":1659304800025,"type":"clicks"}]}`
	prettyArray := "[\n  " + msg + ",\n  " + msg + "\n]\n"
	for _, tt := range []struct {
		name, text, lines, format string
	}{
		{"pretty array", prettyArray, msg + "\n" + msg + "\n", "segment"},
		{"pretty array cut short", prettyArray[:len(prettyArray)-10], msg + "\n", "segment"},
		{"pretty object", "{\n  \"batch\": [\n    " + msg + "\n  ]\n}\n", `{"batch":[` + msg + "]}\n", "segment"},
		{"arrays on lines", "[" + msg + "]\n[" + msg + "," + msg + "]\n", msg + "\n" + msg + "\n" + msg + "\n", "segment"},
		{"pretty OTTO sessions", "[\n" + session + "\n]", session + "\n", "otto"},
		{"CSV", "1,2,3\n4,5,6\n", "1\n", ""},
		{"text", "hello\n", "", ""},
		{"nothing", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines, _ := io.ReadAll(OneValueALine(strings.NewReader(tt.text)))
			if string(lines) != tt.lines {
				t.Errorf("OneValueALine() = %q, want %q", lines, tt.lines)
			}
			if got := DetectFormat(bytes.NewReader(lines)); got != tt.format {
				t.Errorf("DetectFormat(OneValueALine()) = %q, want %q", got, tt.format)
			}
		})
	}
}

// TestRees46HeaderErrorIsQuoted (tester 48's F6): a file replayed as rees46 whose first line is no
// header is named in the error quoted, so no raw byte of it (control characters, bytes that are
// no UTF-8) reaches the terminal.
func TestRees46HeaderErrorIsQuoted(t *testing.T) {
	for _, tt := range []struct{ name, first, want string }{
		{"binary", "\x8f\x1b[2J\x00\xcb\x9fT,x", `no column "event_time" in "\x8f\x1b[2J\x00˟T,x"`},
		{"text", "type,userId,event", `no column "event_time" in "type,userId,event"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := readRees46(strings.NewReader(tt.first+"\n"), 0, func(Message) error { return nil }, func(Skip) {})
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(fe.Problem, tt.want) {
				t.Fatalf("readRees46: %v, want a FormatError with %s", err, tt.want)
			}
			if !utf8.ValidString(fe.Problem) || strings.IndexFunc(fe.Problem, unicode.IsControl) >= 0 {
				t.Errorf("the error holds raw bytes: %q", fe.Problem)
			}
		})
	}
}
