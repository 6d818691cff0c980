package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// TestCollectorDecodesTheDeclaredCharset (tester 35's F11): a body in the charset its
// Content-Type names (ISO-8859-1 from a PHP backend, windows-1252, UTF-16) is decoded to UTF-8 and
// its names stored as sent, where Latin-1 text was stored as U+FFFD and "Café" and "Cafè" became
// one name; a UTF-16 body is told by its byte order mark whether labelled or not. A UTF-8 body's
// stray bytes are read as before (U+FFFD). A charset Waymark does not read is a 415 naming
// Content-Type, nothing stored; a body that outgrows the limit once decoded is a 413. Through the
// real collector, on single calls and batches, compressed or not.
func TestCollectorDecodesTheDeclaredCharset(t *testing.T) {
	e := startCollector(t, nil)
	le16 := func(s string) []byte {
		b := []byte{0xff, 0xfe}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return b
	}
	be16 := func(s string) []byte {
		b := []byte{0xfe, 0xff}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u>>8), byte(u))
		}
		return b
	}
	track := func(id, event string) string {
		return fmt.Sprintf(`{"userId":"cs","event":"%s","messageId":"%s","timestamp":"2024-07-03T10:00:00Z"}`, event, id)
	}
	tests := []struct {
		name, path, contentType, coding string
		id                              string // the messageId sent
		body                            []byte
		status                          int
		event                           string // the event stored (status 200), or the field the error names
	}{
		{"ISO-8859-1", "/v1/track", "application/json; charset=ISO-8859-1", "", "cs1", []byte(track("cs1", "Caf\xe9 Latin")), 200, "Café Latin"},
		{"ISO-8859-1, another letter", "/v1/track", "application/json; charset=iso-8859-1", "", "cs2", []byte(track("cs2", "Caf\xe8 Latin")), 200, "Cafè Latin"},
		{"latin1 quoted, spaces, trailing ;", "/v1/track", `application/json;charset = "latin1";`, "", "cs3", []byte(track("cs3", "M\xfcnchen")), 200, "München"},
		{"windows-1252", "/v1/track", "application/json; charset=windows-1252", "", "cs4", []byte(track("cs4", "\x80 Offer")), 200, "€ Offer"},
		{"ISO-8859-1, gzip, a batch", "/v1/batch", "application/json; charset=ISO-8859-1", "gzip", "cs5",
			gz(t, []byte(`{"batch":[{"type":"track",`+strings.TrimPrefix(track("cs5", "Gr\xfc\xdfe"), "{")+`]}`)), 200, "Grüße"},
		{"UTF-16 labelled", "/v1/track", "application/json; charset=utf-16", "", "cs6", le16(track("cs6", "Café 16")), 200, "Café 16"},
		{"UTF-16LE unlabelled", "/v1/track", "application/json", "", "cs7", le16(track("cs7", "Café 16LE")), 200, "Café 16LE"},
		{"UTF-16BE labelled otherwise", "/v1/track", "text/plain; charset=ISO-8859-1", "", "cs8", be16(track("cs8", "Café 16BE")), 200, "Café 16BE"},
		{"UTF-8 labelled", "/v1/track", "application/json; charset=UTF-8", "", "cs9", []byte(track("cs9", "Café 8")), 200, "Café 8"},
		{"UTF-8 with a stray byte", "/v1/track", "application/json; charset=utf-8", "", "cs10", []byte(track("cs10", "Caf\xe9 8")), 200, "Caf\ufffd 8"},
		{"unknown charset", "/v1/track", "application/json; charset=x-klingon", "", "cs11", []byte(track("cs11", "Q")), 415, "Content-Type"},
		{"replacement charset", "/v1/track", "application/json; charset=ISO-2022-KR", "", "cs12", []byte(track("cs12", "Q")), 415, "Content-Type"},
		{"over the limit once decoded", "/v1/track", "application/json; charset=ISO-8859-1", "", "cs13",
			[]byte(`{"userId":"cs","event":"Big","messageId":"cs13","properties":{"s":"` + strings.Repeat("\xe9", DefaultMaxEventBytes*3/4) + `"}}`), 413, "body"},
	}
	want := map[string]string{} // messageId: event
	for _, tt := range tests {
		headers := map[string]string{"Authorization": basicWeb["Authorization"], "Content-Type": tt.contentType}
		if tt.coding != "" {
			headers["Content-Encoding"] = tt.coding
		}
		status, h, got := e.do(t, call{path: tt.path, headers: headers, body: tt.body})
		switch {
		case status != tt.status:
			t.Errorf("%s: %d %v, want %d", tt.name, status, got, tt.status)
		case status == 200 && got["rejected"] != nil:
			t.Errorf("%s: rejected %v", tt.name, got["rejected"])
		case status != 200 && got["field"] != tt.event:
			t.Errorf("%s: %d %v, want the error naming %s", tt.name, status, got, tt.event)
		case status == 415 && h.Get("Accept-Encoding") != "":
			t.Errorf("%s: 415 with Accept-Encoding %q: the coding is not at fault", tt.name, h.Get("Accept-Encoding"))
		case status == 200:
			want[tt.id] = tt.event
		}
	}
	stored := map[string]string{}
	for _, m := range topicMessages(t, e.broker.Addr(), "events") {
		ev, err := Decode(m.Value, "web", time.Now())
		if err != nil {
			t.Fatalf("a stored message does not decode: %v\n%s", err, m.Value)
		}
		if !bytes.Contains(m.Value, []byte("\ufeff")) {
			stored[ev.MessageID] = ev.Event
		} else {
			t.Errorf("%s stored with a byte order mark: %s", ev.MessageID, m.Value)
		}
	}
	if fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Errorf("stored %v\nwant   %v", stored, want)
	}
}

func TestCharsetOf(t *testing.T) {
	tests := []struct{ contentType, want string }{
		{"", ""},
		{"application/json", ""},
		{"application/json; charset=UTF-8", "utf-8"},
		{`text/plain;charset="ISO-8859-1";`, "iso-8859-1"},
		{"application/json; boundary=x; Charset = latin1", "latin1"},
		{"application/json; charsetx=latin1", ""},
	}
	for _, tt := range tests {
		if got := charsetOf(tt.contentType); got != tt.want {
			t.Errorf("charsetOf(%q) = %q, want %q", tt.contentType, got, tt.want)
		}
	}
}
