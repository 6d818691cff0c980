package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var recv = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		check func(t *testing.T, e Event)
	}{
		{
			name: "track with properties",
			raw:  `{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","timestamp":"2026-05-01T11:00:00.250Z","properties":{"revenue":42.5,"currency":"EUR","items":[1,2]}}`,
			check: func(t *testing.T, e Event) {
				if e.Event != "Order Completed" || e.UserID != "u1" || e.MessageID != "m1" || e.CustomerKey() != "u1" {
					t.Errorf("fields: %+v", e)
				}
				if want := time.Date(2026, 5, 1, 11, 0, 0, 250e6, time.UTC); !e.Timestamp.Equal(want) {
					t.Errorf("timestamp %s, want %s", e.Timestamp, want)
				}
				if v, _ := e.Property("currency"); v != "EUR" {
					t.Errorf("currency = %q", v)
				}
				if v, _ := e.Property("revenue"); v != "42.5" {
					t.Errorf("revenue = %q", v)
				}
				if v, _ := e.Property("items"); v != "[1,2]" {
					t.Errorf("items = %q", v)
				}
				if !e.ReceivedAt.Equal(recv) {
					t.Errorf("receivedAt %s, want the record time", e.ReceivedAt)
				}
			},
		},
		{
			name: "control characters other than NUL stay in ids and names",
			raw:  `{"type":"track","event":"A\tB","userId":"u\n1","anonymousId":"\u0001d","messageId":"m\u001f"}`,
			check: func(t *testing.T, e Event) {
				if e.Event != "A\tB" || e.UserID != "u\n1" || e.AnonymousID != "\x01d" || e.MessageID != "m\x1f" {
					t.Errorf("fields: %+v", e)
				}
			},
		},
		{
			name: "numeric ids and anonymous customer",
			raw:  `{"type":"page","name":"Home","anonymousId":12345,"messageId":7,"context":{"page":{"path":"/","referrer":"https://www.google.com/"},"campaign":{"source":"news","medium":"email","name":"spring"}}}`,
			check: func(t *testing.T, e Event) {
				if e.AnonymousID != "12345" || e.CustomerKey() != "12345" || e.MessageID != "7" || e.Event != "Home" {
					t.Errorf("fields: %+v", e)
				}
				if e.PagePath != "/" || e.Referrer != "https://www.google.com/" || e.CampaignMedium != "email" || e.CampaignName != "spring" {
					t.Errorf("context: %+v", e)
				}
				if !e.Timestamp.Equal(recv) {
					t.Errorf("no time given: timestamp %s, want receivedAt", e.Timestamp)
				}
			},
		},
		{
			name: "small skew corrected",
			raw:  `{"type":"track","event":"A","userId":"u","originalTimestamp":"2026-05-01T11:59:00Z","sentAt":"2026-05-01T11:59:52Z","receivedAt":"2026-05-01T12:00:00Z"}`,
			check: func(t *testing.T, e Event) {
				if want := time.Date(2026, 5, 1, 11, 59, 7, 2e8, time.UTC); !e.Timestamp.Equal(want) {
					t.Errorf("timestamp %s, want %s (8 s of skew: moved (8 − 2) × 1.2 s)", e.Timestamp, want)
				}
			},
		},
		{
			name: "large skew corrected",
			raw:  `{"type":"track","event":"A","userId":"u","originalTimestamp":"2026-05-01T09:59:00Z","sentAt":"2026-05-01T10:00:00Z","receivedAt":"2026-05-01T12:00:00Z"}`,
			check: func(t *testing.T, e Event) {
				if want := time.Date(2026, 5, 1, 11, 59, 0, 0, time.UTC); !e.Timestamp.Equal(want) {
					t.Errorf("timestamp %s, want %s (2h skew corrected)", e.Timestamp, want)
				}
			},
		},
		{
			name: "missing messageId derived from the bytes",
			raw:  `{"type":"identify","userId":"u","traits":{"plan":"pro"}}`,
			check: func(t *testing.T, e Event) {
				again, _ := Decode([]byte(`{"type":"identify","userId":"u","traits":{"plan":"pro"}}`), "s", recv)
				if !strings.HasPrefix(e.MessageID, "wm-") || e.MessageID != again.MessageID {
					t.Errorf("messageId %q, again %q: want the same derived id", e.MessageID, again.MessageID)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(tt.raw), "s", recv)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Raw) != tt.raw || e.Source != "s" {
				t.Errorf("raw or source not kept")
			}
			tt.check(t, e)
		})
	}
}

// TestDecodeSaysTextIsNotJSON (tester 47): text whose first character begins no JSON value, or
// a value other than an object followed by more (a CSV row), is said to be no JSON, with its
// first character, where the scanner said "invalid literal, want true at byte 0" of a line of
// text starting with a t; JSON broken further on, or one value other than an object, keeps its
// own error. The reason stays invalid_json.
func TestDecodeSaysTextIsNotJSON(t *testing.T) {
	tests := []struct {
		raw  string
		want string // the error's text
	}{
		{`this is a line of text`, `invalid_json: not JSON: text starting with 't'; a message is one JSON object`},
		{`not json`, `invalid_json: not JSON: text starting with 'n'; a message is one JSON object`},
		{`  hello`, `invalid_json: not JSON: text starting with 'h'; a message is one JSON object`},
		{`ürün,42`, `invalid_json: not JSON: text starting with 'ü'; a message is one JSON object`},
		{`1,2268318,2520377,pv,1511544070`, `invalid_json: not JSON: text starting with '1'; a message is one JSON object`},
		{`true story`, `invalid_json: not JSON: text starting with 't'; a message is one JSON object`},
		// binary data (tester 48's F5): the first byte in hex, not a replacement character
		{"\x89PNG\r", `invalid_json: not JSON: binary data starting with byte 0x89 (a PNG image); a message is one JSON object`},
		{"\xff\xd8\xff\xe0\x00\x10JFIF", `invalid_json: not JSON: binary data starting with byte 0xff (a JPEG image); a message is one JSON object`},
		{"\x1f\x8b\x08\x00", `invalid_json: not JSON: binary data starting with byte 0x1f (gzip data); a message is one JSON object`},
		// compressed exports that start with a letter, and what net/http's sniffing names (tester 50's F3)
		{"BZh91AY&SY", `invalid_json: not JSON: binary data starting with byte 0x42 (bzip2 data); a message is one JSON object`},
		{"BZh is a shop,42", `invalid_json: not JSON: text starting with 'B'; a message is one JSON object`},
		{"PK\x03\x04\x14\x00", `invalid_json: not JSON: binary data starting with byte 0x50 (a zip archive); a message is one JSON object`},
		{"(\xb5/\xfd\x04", `invalid_json: not JSON: binary data starting with byte 0x28 (zstd data); a message is one JSON object`},
		{"\xfd7zXZ\x00\x00", `invalid_json: not JSON: binary data starting with byte 0xfd (xz data); a message is one JSON object`},
		{"%PDF-1.7\n", `invalid_json: not JSON: binary data starting with byte 0x25 (application/pdf); a message is one JSON object`},
		{"GIF89a\x01\x00", `invalid_json: not JSON: binary data starting with byte 0x47 (image/gif); a message is one JSON object`},
		{"\xc3\x28\xa0", `invalid_json: not JSON: binary data, or text not in UTF-8, starting with byte 0xc3; a message is one JSON object`},
		{"\xfcr\xfcn,42", `invalid_json: not JSON: binary data, or text not in UTF-8, starting with byte 0xfc; a message is one JSON object`},
		{"\x00\x01\x02", `invalid_json: not JSON: binary data starting with byte 0x00; a message is one JSON object`},
		{" \x7fELF", `invalid_json: not JSON: binary data starting with byte 0x7f; a message is one JSON object`},
		{"\u0085x", `invalid_json: not JSON: text starting with '\u0085'; a message is one JSON object`}, // NEL is white space
		{`{"type":"track"`, `invalid_json: expected ',' or '}' after an object member at byte 15`},
		{`[1,2]`, `invalid_json: a message is a JSON object`},
		{`-x`, `invalid_json: invalid number at byte 1`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := Decode([]byte(tt.raw), "s", recv)
			if RejectReason(err) != ReasonInvalidJSON || err.Error() != tt.want {
				t.Errorf("Decode() error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		raw    string
		reason string
		field  string
	}{
		{`{"type":"track"`, ReasonInvalidJSON, ""},
		{`not json`, ReasonInvalidJSON, ""},
		{`{"type":"track","event":"A","userId":"u"} {}`, ReasonInvalidJSON, ""},
		{`{"type":"track","event":"A","userId":"u","properties":"oops"}`, ReasonInvalidField, "properties"},
		{`{"type":"track","event":"A","userId":"u","context":{"page":{"path":true}}}`, ReasonInvalidField, "context.page.path"},
		{`{"type":5,"event":"A","userId":"u"}`, ReasonInvalidField, "type"},
		{`[{"type":"track","event":"A","userId":"u"}]`, ReasonInvalidJSON, ""},
		{`{"type":"track","event":"A\x01","userId":"u"}`, ReasonInvalidJSON, ""},
		{`{"type":"track","event":"A","userId":"u","properties":{"n":1-2}}`, ReasonInvalidJSON, ""},
		{`{"event":"A","userId":"u"}`, ReasonInvalidType, "type"},
		{`{"type":"purchase","userId":"u"}`, ReasonInvalidType, "type"},
		{`{"type":"","event":"A","userId":"u"}`, ReasonInvalidType, "type"},
		// A /v1/batch body produced to the topic as one message (tester 29's F5).
		{`{"batch":[{"type":"track","event":"A","userId":"u"}]}`, ReasonInvalidType, "type"},
		{`{"type":"track","event":"A"}`, ReasonMissingIdentity, "userId"},
		{`{"type":"track","event":"A","userId":null,"anonymousId":""}`, ReasonMissingIdentity, "userId"},
		{`{"type":"track","userId":"u"}`, ReasonMissingEvent, "event"},
		{`{"type":"track","event":"A","userId":{"id":1}}`, ReasonInvalidField, "userId"},
		// NUL (ingest.Internal) is Waymark's own, in every id and name its ids and labels are built from
		{`{"type":"track","event":"A","userId":"\u0000kD7","anonymousId":"kD7"}`, ReasonInvalidField, "userId"},
		{`{"type":"track","event":"A","userId":"\u0000"}`, ReasonInvalidField, "userId"},
		{`{"type":"track","event":"A","anonymousId":"d\u0000"}`, ReasonInvalidField, "anonymousId"},
		{`{"type":"identify","userId":"u","anonymousId":"\u0000d"}`, ReasonInvalidField, "anonymousId"},
		{`{"type":"alias","userId":"u","previousId":"p\u0000"}`, ReasonInvalidField, "previousId"},
		{`{"type":"track","event":"\u0000identify","userId":"u"}`, ReasonInvalidField, "event"},
		{`{"type":"page","name":"\u0000alias","userId":"u"}`, ReasonInvalidField, "name"},
		{`{"type":"screen","name":"S\u0000","userId":"u"}`, ReasonInvalidField, "name"},
		// Half a UTF-16 surrogate pair is no character: read as U+FFFD, "sur\ud800", "sur\udfff" and
		// "sur\ufffd" would be one person (or one event, one session).
		{`{"type":"track","event":"A","userId":"sur\ud800"}`, ReasonInvalidField, "userId"},
		{`{"type":"track","event":"A","userId":"sur\udfff\ud800"}`, ReasonInvalidField, "userId"},
		{`{"type":"track","event":"A","userId":"\udc00\ud83d"}`, ReasonInvalidField, "userId"},
		{`{"type":"track","event":"A","anonymousId":"\ud83d"}`, ReasonInvalidField, "anonymousId"},
		{`{"type":"alias","userId":"u","previousId":"p\uDBFFx"}`, ReasonInvalidField, "previousId"},
		{`{"type":"track","event":"A","userId":"u","messageId":"m\ud800\\udc00"}`, ReasonInvalidField, "messageId"},
		{`{"type":"track","event":"A","userId":"u","context":{"sessionId":"s\udfff"}}`, ReasonInvalidField, "context.sessionId"},
		{`{"type":"track","event":"A","userId":"u","timestamp":"yesterday"}`, ReasonInvalidTimestamp, "timestamp"},
		{`{"type":"track","event":"A","userId":"u","sentAt":"2026-13-01T00:00:00Z"}`, ReasonInvalidTimestamp, "sentAt"},
		{`{"type":"track","event":"A","userId":"u","timestamp":"1970-01-01T00:00:00Z"}`, ReasonInvalidTimestamp, "timestamp"},
		// Go's zero time, sent: it is a time, not an absent one (it was replaced by receivedAt).
		{`{"type":"track","event":"A","userId":"u","timestamp":"0001-01-01T00:00:00Z"}`, ReasonInvalidTimestamp, "timestamp"},
		// The field named is the one the time was sent in.
		{`{"type":"track","event":"A","userId":"u","originalTimestamp":"0001-01-01T00:00:00Z"}`, ReasonInvalidTimestamp, "originalTimestamp"},
		{`{"type":"track","event":"A","userId":"u","receivedAt":"0001-01-01T00:00:00Z"}`, ReasonInvalidTimestamp, "receivedAt"},
		{`{"type":"track","event":"A","userId":"u","timestamp":"9999-12-31T23:59:59Z"}`, ReasonInvalidTimestamp, "timestamp"},
		// (A sentAt at year 9999 with a time in range keeps the client's time: TestEventTimeRange.)
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := Decode([]byte(tt.raw), "s", recv)
			if RejectReason(err) != tt.reason {
				t.Fatalf("Decode() error %v, want reason %s", err, tt.reason)
			}
			if tt.field != "" && !strings.Contains(err.Error(), "field "+tt.field) {
				t.Errorf("error %q does not name the field %s", err, tt.field)
			}
		})
	}
}

// TestDecodeSaysWhatAMessageWithoutTypeIs: a message without a type says the type is missing,
// not that "" is no call type, and a whole /v1/batch body says that is what it is and where it
// goes (tester 29's F5: the dead letter of a batch body copied onto the topic read
// `"" is not one of track…`).
func TestDecodeSaysWhatAMessageWithoutTypeIs(t *testing.T) {
	for raw, want := range map[string]string{
		`{"event":"A","userId":"u"}`:                                         "missing: want one of track",
		`{"batch":[{"type":"track","event":"A","userId":"u"}],"context":{}}`: "a whole /v1/batch body; POST it to /v1/batch, or produce each of its events as a message of its own",
		`{"type":"","batch":[]}`:                                             "a whole /v1/batch body",
		`{"type":"x","batch":[]}`:                                            `"x" is not one of track`,
		// Typed by a single call's endpoint (the collector stamps it): still a batch body.
		`{"type":"track","batch":[{"type":"track","event":"A","userId":"u"}]}`: "a whole /v1/batch body; POST it to /v1/batch",
	} {
		if _, err := Decode([]byte(raw), "s", recv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error saying %q", raw, err, want)
		}
	}
}

// TestCosmeticMembersAreIgnored: a member of the wrong type that no event needs (cosmetic) is
// read as absent and listed in Event.Ignored, the event kept with the rest of what it says, by
// every decoder (Decode, DecodeClient, the collector's check); the first member of the wrong type
// an event needs still refuses it, whatever cosmetic ones come before it.
func TestCosmeticMembersAreIgnored(t *testing.T) {
	tests := []struct {
		raw     string
		ignored []string // the members listed in Ignored, in order
		refused string   // the member that refuses the message, "" when it is kept
	}{
		{`{"type":"track","event":"A","userId":"u","context":{"userAgent":5,"page":{"path":"/p"}}}`, []string{"context.userAgent"}, ""},
		{`{"type":"track","event":"A","userId":"u","context":{"device":"x","userAgent":"Mozilla/5.0 (iPhone; Mobile)"}}`, []string{"context.device"}, ""},
		{`{"type":"track","event":"A","userId":"u","context":{"device":{"type":[]},"traits":"x"}}`, []string{"context.device.type", "context.traits"}, ""},
		{`{"type":"identify","userId":"u","traits":"pro"}`, []string{"traits"}, ""},
		{`{"type":"track","event":"A","userId":"u","context":{"locale":{},"ip":7,"library":"x","timezone":[]}}`, nil, ""},
		{`{"type":"track","event":"A","userId":"u","context":{"userAgent":5,"page":"x"}}`, nil, "context.page"},
		{`{"type":"track","event":"A","userId":"u","context":{"userAgent":5},"properties":[]}`, nil, "properties"},
		{`{"type":"track","event":"A","userId":"u","context":{"campaign":{"source":{}}}}`, nil, "context.campaign.source"},
		{`{"type":"track","event":"A","userId":"u","context":{"sessionId":true}}`, nil, "context.sessionId"},
		// The call's own name is essential, the other name member cosmetic.
		{`{"type":"track","event":5,"userId":"u"}`, nil, "event"},
		{`{"type":"page","name":["Home"],"userId":"u"}`, nil, "name"},
		{`{"type":"screen","name":{},"userId":"u","event":"x"}`, nil, "name"},
		{`{"type":"track","event":"A","name":{"first":"Ann"},"userId":"u"}`, []string{"name"}, ""},
		{`{"type":"page","name":"Home","event":7,"userId":"u"}`, []string{"event"}, ""},
		{`{"type":"identify","userId":"u","event":[],"name":5}`, []string{"event", "name"}, ""},
	}
	decoders := map[string]func([]byte) ([]*InvalidError, error){
		"Decode": func(raw []byte) ([]*InvalidError, error) { e, err := Decode(raw, "s", recv); return e.Ignored, err },
		"DecodeClient": func(raw []byte) ([]*InvalidError, error) {
			e, err := DecodeClient(raw, "kafka", recv)
			return e.Ignored, err
		},
		"check": func(raw []byte) ([]*InvalidError, error) { _, ignored, err := check(raw, recv); return ignored, err },
	}
	for _, tt := range tests {
		for name, decode := range decoders {
			t.Run(name+"/"+tt.raw, func(t *testing.T) {
				ignored, err := decode([]byte(tt.raw))
				if tt.refused != "" {
					var ie *InvalidError
					if !errors.As(err, &ie) || ie.Reason != ReasonInvalidField || ie.Field != tt.refused {
						t.Fatalf("error %v, want invalid_field naming %s", err, tt.refused)
					}
					return
				}
				if err != nil {
					t.Fatalf("error %v, want the event kept", err)
				}
				var got []string
				for _, ie := range ignored {
					if ie.Reason != ReasonInvalidField {
						t.Errorf("%s ignored with reason %s", ie.Field, ie.Reason)
					}
					got = append(got, ie.Field)
				}
				if !slices.Equal(got, tt.ignored) {
					t.Errorf("ignored %v, want %v", got, tt.ignored)
				}
			})
		}
	}
	// What the event says besides is read: the page path beside a bad user agent, the device
	// type from the user agent beside a bad device.
	e, err := Decode([]byte(tests[0].raw), "s", recv)
	if err != nil || e.PagePath != "/p" || e.DeviceType() != "" {
		t.Errorf("event %+v (%v), want page path /p and no device type", e, err)
	}
	if e, err = Decode([]byte(tests[1].raw), "s", recv); err != nil || e.DeviceType() != "mobile" {
		t.Errorf("device type %q (%v), want mobile from the user agent", e.DeviceType(), err)
	}
}

// TestContextNumbersAreTheirText is tester 51's F3: a JSON number in a member of the context that
// Waymark reads and needs (context.page's path, url and referrer, context.campaign's source,
// medium and name) refused the whole event ("want a string, got 2024"), where an id and a page's
// properties.url are a number's canonical text (CanonicalNumber). It is that text now, on the
// collector, as the consumer reads what the collector produced (Decode), and in a client's
// message produced straight to Kafka (DecodeClient); a boolean, an object or an array is still
// refused, naming the member.
func TestContextNumbersAreTheirText(t *testing.T) {
	tests := []struct {
		name, context string
		want          [6]string // campaign source, medium and name; page path, url and referrer
		refused       string    // the member named when the event is refused, "" when it is kept
	}{
		{"a campaign's name", `{"campaign":{"name":2024,"source":"news","medium":"email"}}`, [6]string{"news", "email", "2024"}, ""},
		{"each campaign member, however written", `{"campaign":{"source":1e3,"medium":-0.50,"name":4200.0}}`, [6]string{"1000", "-0.5", "4200"}, ""},
		{"a page's members", `{"page":{"path":404,"url":5,"referrer":7.0}}`, [6]string{3: "404", 4: "5", 5: "7"}, ""},
		{"members Waymark does not read", `{"page":{"path":"/p","title":2024,"search":1}}`, [6]string{3: "/p"}, ""},
		{"null is no name", `{"campaign":{"source":"news","name":null}}`, [6]string{0: "news"}, ""},
		{"a campaign's name true", `{"campaign":{"name":true,"source":"news"}}`, [6]string{}, "context.campaign.name"},
		{"a campaign's source an object", `{"campaign":{"source":{"id":1}}}`, [6]string{}, "context.campaign.source"},
		{"a page's url an array", `{"page":{"url":[5]}}`, [6]string{}, "context.page.url"},
		{"a page's referrer false", `{"page":{"referrer":false}}`, [6]string{}, "context.page.referrer"},
	}
	raw := func(i int, context string) string {
		return fmt.Sprintf(`{"type":"track","userId":"cw%d","event":"Order Completed","messageId":"CW-%d","timestamp":"2025-08-22T10:00:00Z","context":%s}`, i, i, context)
	}
	read := func(e Event) [6]string {
		return [6]string{e.CampaignSource, e.CampaignMedium, e.CampaignName, e.PagePath, e.PageURL, e.Referrer}
	}
	c := startCollector(t, nil)
	var batch []string
	for i, tt := range tests {
		batch = append(batch, raw(i, tt.context))
	}
	refused, stored := postBatch(t, c, batch)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, isRefused := refused[i]
			e, isStored := stored[fmt.Sprintf("CW-%d", i)]
			client, err := DecodeClient([]byte(raw(i, tt.context)), "kafka", recv)
			if tt.refused != "" {
				want := fmt.Sprintf("batch[%d].%s", i, tt.refused)
				if !isRefused || r["reason"] != ReasonInvalidField || r["field"] != want || !strings.Contains(fmt.Sprint(r["error"]), "want a string or a number, got ") || isStored {
					t.Errorf("collector: refused %v, stored %v; want refused as %s naming %s", r, isStored, ReasonInvalidField, want)
				}
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Reason != ReasonInvalidField || ie.Field != tt.refused {
					t.Errorf("DecodeClient: %v, want %s naming %s", err, ReasonInvalidField, tt.refused)
				}
				return
			}
			if isRefused || !isStored {
				t.Fatalf("collector: refused %v, stored %v; want it stored", r, isStored)
			}
			if got := read(e); got != tt.want {
				t.Errorf("stored as %q, want %q", got, tt.want)
			}
			if err != nil || read(client) != tt.want {
				t.Errorf("DecodeClient: %q (%v), want %q", read(client), err, tt.want)
			}
		})
	}
}

func TestDecodePropertiesAndTraits(t *testing.T) {
	raw := `{"type":"identify","userId":"u","traits":{"plan":"pro","tier":1},"context":{"traits":{"plan":"free","region":"eu"},"userAgent":"Mozilla/5.0 (iPhone; Mobile)"},` +
		`"properties":{"tier":"gold","note":"a\"b\\c\u00e9\n","list":[1, {"x" : null}],"dup":1,"dup":2}}`
	e, err := Decode([]byte(raw), "s", recv)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i, k := range e.PropertyKeys {
		got[k] = e.PropertyValues[i]
	}
	want := map[string]string{
		"traits.plan": "pro", "traits.tier": "1", "traits.region": "eu", "tier": "gold",
		"note": "a\"b\\cé\n", "list": `[1,{"x":null}]`, "dup": "2", DeviceTypeKey: "mobile",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("properties %v\nwant %v", got, want)
	}
	if !slices.IsSorted(e.PropertyKeys) {
		t.Errorf("property keys not sorted: %v", e.PropertyKeys)
	}
}

// BenchmarkDecode decodes a typical replayed message.
func BenchmarkDecode(b *testing.B) {
	raw := []byte(`{"type":"track","event":"Product Viewed","messageId":"taobao-0123456789abcdef01234567","userId":"1000123","timestamp":"2017-11-25T10:00:00Z","properties":{"category":"4756105","product_id":"2268318"},"context":{"library":{"name":"waymark-replay"}}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Decode(raw, "bench", recv); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPropertiesNullAndNested: null is no value (never the text "null"), a nested object's members
// are addressable with dots, and where a name repeats the winner's null hides what it overrides.
func TestPropertiesNullAndNested(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`{"coupon":null,"product":{"category":"shoes","price":{"amount":12.5}}}`, `product.category=shoes product.price.amount=12.5`},
		{`{"coupon":"null"}`, `coupon=null`},
		{`{"items":[1,{"a":null}],"empty":{}}`, `items=[1,{"a":null}]`},
		{`{"coupon":"SPRING","coupon":null}`, ``},
		{`{"coupon":null,"coupon":"SPRING"}`, `coupon=SPRING`},
		{`{"a.b":"flat","a":{"b":"nested"}}`, `a.b=nested`},
		// A dotted name and the nested member it names: the nested member, in either order.
		{`{"a":{"b":"nested"},"a.b":"flat"}`, `a.b=nested`},
		{`{"product":{"category":"shoes"},"product.category":"hats"}`, `product.category=shoes`},
		{`{"a.b.c":1,"a":{"b.c":2}}`, `a.b.c=2`},
		// "a" given twice: the last copy, whole (encoding/json's reading, tester 42's F3), whose
		// nested b.c then wins over the dotted name (3 until 2026-12-06: the copies were merged).
		{`{"a":{"b":{"c":3}},"a.b.c":1,"a":{"b.c":2}}`, `a.b.c=2`},
		{`{"a":{"b":null},"a.b":"flat"}`, ``},
	}
	for _, tt := range tests {
		raw := `{"type":"identify","userId":"u","properties":` + tt.raw + `,"traits":{"plan":null},"context":{"traits":{"plan":"free"}}}`
		e, err := Decode([]byte(raw), "s", time.Now())
		if err != nil {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		var got []string
		for i, k := range e.PropertyKeys {
			got = append(got, k+"="+e.PropertyValues[i])
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("properties %s: got %q, want %q", tt.raw, g, tt.want)
		}
	}
}

// TestTraitsComeFromTheirPlaces: a user's traits are read from an identify call's traits and any
// call's context.traits (Segment's places for them), never from properties, whatever a property is
// called, nor from a group call's traits (the group's); a property keeps its name under
// PropertyKey, so a filter still finds it. A trait in traits replaces the whole of that trait in
// context.traits, and an empty object is no value.
func TestTraitsComeFromTheirPlaces(t *testing.T) {
	for _, tt := range []struct {
		raw, keys, nulls string
		traitPlan        string // Trait("plan"), "-" when unset
		propertyPlan     string // Property("traits.plan"), "-" when unset
	}{
		{`{"type":"track","event":"A","userId":"u","properties":{"traits":{"plan":"x"}}}`, "properties.traits.plan=x", "", "-", "x"},
		{`{"type":"track","event":"A","userId":"u","properties":{"traits.plan":"x"}}`, "properties.traits.plan=x", "", "-", "x"},
		{`{"type":"track","event":"A","userId":"u","properties":{"traits":{"plan":"x"}},"context":{"traits":{"plan":"y"}}}`, "properties.traits.plan=x traits.plan=y", "", "y", "x"},
		{`{"type":"track","event":"A","userId":"u","properties":{"context":{"device_type":"fridge"}},"context":{"userAgent":"Mozilla/5.0 (iPhone; Mobile)"}}`,
			"context.device_type=mobile properties.context.device_type=fridge", "", "-", "-"},
		{`{"type":"track","event":"A","userId":"u","properties":{"properties":{"a":1},"plan":"p"}}`, "plan=p properties.properties.a=1", "", "-", "-"},
		{`{"type":"track","event":"A","userId":"u","traits":{"plan":"x"}}`, "", "", "-", "-"},
		{`{"type":"group","groupId":"g","userId":"u","traits":{"plan":"x"}}`, "", "", "-", "-"},
		{`{"type":"group","groupId":"g","userId":"u","context":{"traits":{"plan":"x"}}}`, "traits.plan=x", "", "x", "-"},
		{`{"type":"identify","userId":"u","traits":{"address":{"city":"L"}},"context":{"traits":{"address":{"zip":"1"},"name":"N"}}}`, "traits.address.city=L traits.name=N", "", "-", "-"},
		{`{"type":"identify","userId":"u","traits":{"address":"L"},"context":{"traits":{"address":{"zip":"1"}}}}`, "traits.address=L", "", "-", "-"},
		{`{"type":"identify","userId":"u","traits":{"address":{}},"context":{"traits":{"address":{"zip":"1"}}}}`, "", "traits.address", "-", "-"},
		{`{"type":"identify","userId":"u","traits":{"address":{"geo":{}}},"properties":{"empty":{}}}`, "", "empty traits.address.geo", "-", "-"},
	} {
		e, err := Decode([]byte(tt.raw), "s", recv)
		if err != nil {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		var keys []string
		for i, k := range e.PropertyKeys {
			keys = append(keys, k+"="+e.PropertyValues[i])
		}
		if got := strings.Join(keys, " "); got != tt.keys || !slices.IsSorted(e.PropertyKeys) {
			t.Errorf("%s: keys %q, want %q", tt.raw, got, tt.keys)
		}
		if got := strings.Join(e.NullKeys, " "); got != tt.nulls {
			t.Errorf("%s: null keys %q, want %q", tt.raw, got, tt.nulls)
		}
		show := func(v string, ok bool) string {
			if !ok {
				return "-"
			}
			return v
		}
		if got := show(e.Trait("plan")); got != tt.traitPlan {
			t.Errorf("%s: trait plan %q, want %q", tt.raw, got, tt.traitPlan)
		}
		if got := show(e.Property("traits.plan")); got != tt.propertyPlan {
			t.Errorf("%s: property traits.plan %q, want %q", tt.raw, got, tt.propertyPlan)
		}
	}
	for _, name := range []string{"plan", "traits.plan", "context.device_type", "properties.a", "properties", "traits", "context"} {
		if got, ok := PropertyName(PropertyKey(name)); !ok || got != name {
			t.Errorf("PropertyName(PropertyKey(%q)) = %q, %v", name, got, ok)
		}
	}
	for _, key := range []string{TraitPrefix + "plan", DeviceTypeKey} {
		if name, ok := PropertyName(key); ok {
			t.Errorf("PropertyName(%q) = %q, a property", key, name)
		}
	}
}

// TestBlankNamesAliasesAndURLCampaigns: a track whose event is blank is refused as one without,
// naming event, and one whose event (or a page's or screen's name) is longer than MaxNameBytes
// as name_too_long; an alias without previousId is refused naming previousId (one whose previousId
// is a placeholder is kept, linking nothing); a campaign the context does not name is read from
// the page URL's utm_* parameters, on every decoder.
func TestBlankNamesAliasesAndURLCampaigns(t *testing.T) {
	tests := []struct {
		name, raw string
		reason    string // refused with it, naming field
		field     string
		campaign  string // source/medium/name read, when taken
	}{
		{"blank event", `{"type":"track","userId":"u","event":"   "}`, ReasonMissingEvent, "event", ""},
		{"zero-width event", `{"type":"track","userId":"u","event":"\u200b\t"}`, ReasonMissingEvent, "event", ""},
		{"event with spaces around", `{"type":"track","userId":"u","event":" Order "}`, "", "", "//"},
		// A name is what queries ask about: one no step could hold is refused (MaxNameBytes).
		{"event of 20 KB", `{"type":"track","userId":"u","event":"` + strings.Repeat("x", 20<<10) + `"}`, ReasonNameTooLong, "event", ""},
		{"event one byte over 1 KiB", `{"type":"track","userId":"u","event":"` + strings.Repeat("é", 512) + `x"}`, ReasonNameTooLong, "event", ""},
		{"event of 1 KiB", `{"type":"track","userId":"u","event":"` + strings.Repeat("é", 512) + `"}`, "", "", "//"},
		{"page name of 2 KB", `{"type":"page","anonymousId":"a","name":"` + strings.Repeat("/p", 1024) + `"}`, ReasonNameTooLong, "name", ""},
		{"screen name of 2 KB", `{"type":"screen","anonymousId":"a","name":"` + strings.Repeat("/p", 1024) + `"}`, ReasonNameTooLong, "name", ""},
		{"a track's name member of 2 KB is not its name", `{"type":"track","userId":"u","event":"V","name":"` + strings.Repeat("/p", 1024) + `"}`, "", "", "//"},
		{"alias without previousId", `{"type":"alias","userId":"u"}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with a null previousId", `{"type":"alias","userId":"u","previousId":null}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with an empty previousId", `{"type":"alias","userId":"u","previousId":""}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with a placeholder previousId", `{"type":"alias","userId":"u","previousId":"undefined"}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with a blank previousId", `{"type":"alias","userId":"u","previousId":" \t"}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with the previousId 0", `{"type":"alias","userId":"u","previousId":0}`, ReasonMissingPreviousID, "previousId", ""},
		{"alias with a placeholder previousId beside an anonymousId", `{"type":"alias","userId":"u","previousId":"undefined","anonymousId":"d1"}`, "", "", "//"},
		{"alias", `{"type":"alias","userId":"u","previousId":"a1"}`, "", "", "//"},
		{"utm in the page URL", `{"type":"page","anonymousId":"a","context":{"page":{"url":"https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring%20sale&gclid=x#top"}}}`, "", "", "newsletter/email/spring sale"},
		{"utm after the fragment is none", `{"type":"page","anonymousId":"a","context":{"page":{"url":"https://shop.example/#x?utm_source=frag&utm_medium=email"}}}`, "", "", "//"},
		{"utm before the fragment", `{"type":"page","anonymousId":"a","context":{"page":{"url":"https://shop.example/?utm_source=q#x?utm_source=frag"}}}`, "", "", "q//"},
		{"utm in a page's properties.url", `{"type":"page","anonymousId":"a","properties":{"url":"https://shop.example/p?utm_source=google&utm_medium=cpc"}}`, "", "", "google/cpc/"},
		{"a blank campaign source is none", `{"type":"page","anonymousId":"a","context":{"campaign":{"source":"  ","medium":"\t"},"page":{"url":"https://shop.example/?utm_source=real&utm_medium=email"}}}`, "", "", "real/email/"},
		{"the context's campaign wins", `{"type":"page","anonymousId":"a","context":{"campaign":{"source":"ads"},"page":{"url":"https://shop.example/?utm_source=newsletter&utm_medium=email"}}}`, "", "", "ads//"},
		{"a context campaign without source", `{"type":"track","event":"V","anonymousId":"a","context":{"campaign":{"medium":"social"},"page":{"url":"https://shop.example/?utm_source=fb&utm_medium=email&utm_campaign=c"}}}`, "", "", "fb/social/c"},
		{"no utm", `{"type":"page","anonymousId":"a","context":{"page":{"url":"https://shop.example/?gclid=x"}}}`, "", "", "//"},
		{"a bad escape beside", `{"type":"page","anonymousId":"a","context":{"page":{"url":"https://shop.example/?x=%zz&utm_source=newsletter"}}}`, "", "", "newsletter//"},
	}
	for _, tt := range tests {
		for name, decode := range map[string]func([]byte, string, time.Time) (Event, error){"Decode": Decode, "DecodeClient": DecodeClient} {
			e, err := decode([]byte(tt.raw), "s", time.Now())
			var inv *InvalidError
			switch {
			case tt.reason != "" && (!errors.As(err, &inv) || inv.Reason != tt.reason || inv.Field != tt.field):
				t.Errorf("%s: %s = %v, want %s naming %s", tt.name, name, err, tt.reason, tt.field)
			case tt.reason == "" && err != nil:
				t.Errorf("%s: %s: %v", tt.name, name, err)
			case tt.reason == "" && e.CampaignSource+"/"+e.CampaignMedium+"/"+e.CampaignName != tt.campaign:
				t.Errorf("%s: %s read campaign %s/%s/%s, want %s", tt.name, name, e.CampaignSource, e.CampaignMedium, e.CampaignName, tt.campaign)
			}
		}
	}
}

// TestDeviceTypes is the tenth tester's M2: an Android tablet (no "Mobile" in its user agent) and
// a Kindle were phones, crawlers desktops, and Segment's mobile libraries' context.device.type
// (the operating system: ios, android) made groups of their own beside mobile and tablet.
func TestDeviceTypes(t *testing.T) {
	for _, tt := range []struct{ declared, userAgent, want string }{
		{"", "", ""},
		{"", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "desktop"},
		{"", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "mobile"},
		{"", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"", "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tablet"},
		{"", "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/535.19 (KHTML, like Gecko) Silk/3.68 like Chrome/39.0 Safari/535.19 Silk-Accelerated=true", "tablet"},
		{"", "Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "tablet"},
		{"", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"},
		{"", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0 Safari/537.36", "bot"},
		{"", "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"ios", "", "mobile"},
		{"iOS", "", "mobile"},
		{"ios", "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "tablet"},
		{"android", "", "mobile"},
		{"android", "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tablet"},
		{"Tablet", "Mozilla/5.0 (iPhone; Mobile)", "tablet"},
		{" TV ", "", "tv"},
		// The eleventh tester's F5, F6, F7: an Android app's own user agent (Dalvik) says phone,
		// not tablet; an iPad app says so by its model; TVs, consoles and HTTP clients.
		{"android", "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)", "mobile"},
		{"", "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)", "mobile"},
		{"ios/iPad13,1", "", "tablet"},
		{"ios/iPhone14,2", "", "mobile"},
		{"tvos", "", "tv"},
		{"macos", "", "desktop"},
		{"", "Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB Build/PTT1.190515.001.S52) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tv"},
		{"", "Mozilla/5.0 (Linux; Android 12; AFTKA Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tv"},
		{"", "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/538.1 (KHTML, like Gecko) Version/6.0 TV Safari/538.1", "tv"},
		// Samsung's Tizen phones and watches say Mobile, its TVs do not (tester 34's F6).
		{"", "Mozilla/5.0 (Linux; Tizen 2.3; SAMSUNG SM-Z130H) AppleWebKit/537.3 (KHTML, like Gecko) SamsungBrowser/1.0 Mobile Safari/537.3", "mobile"},
		{"", "Mozilla/5.0 (Linux; Tizen 2.3; SAMSUNG SM-R732) AppleWebKit/537.3 (KHTML, like Gecko) SamsungBrowser/1.0 Mobile Safari/537.3", "mobile"},
		{"", "Mozilla/5.0 (Linux; Tizen 2.4.0) AppleWebKit/538.1 (KHTML, like Gecko) Version/2.4.0 TV Safari/538.1", "tv"},
		// Opera Mini is a phone browser, and says no Mobile on Android.
		{"", "Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16", "mobile"},
		{"", "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)", "console"},
		{"", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edge/44.18363.8131", "console"},
		{"", "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)", "bot"},
		{"", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", "bot"},
		{"", "curl/8.4.0", "bot"},
		{"", "python-requests/2.31.0", "bot"},
	} {
		declared, model, _ := strings.Cut(tt.declared, "/")
		raw, _ := json.Marshal(map[string]any{"type": "track", "event": "A", "userId": "u",
			"context": map[string]any{"device": map[string]any{"type": declared, "model": model}, "userAgent": tt.userAgent}})
		e, err := Decode(raw, "s", recv)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := e.DeviceType(); got != tt.want {
			t.Errorf("device.type/model %q, user agent %q: %q, want %q", tt.declared, tt.userAgent, got, tt.want)
		}
	}
}

// TestHTTPLibrariesAreBots is tester 33's F7: HTTP libraries' and API tools' own user agents were
// desktops, while curl's was a bot. They are one class, bot; an app's own agent (Dalvik, an iOS
// app's CFNetwork, Flutter's Dart, an app naming itself before okhttp) is no library, and a
// declared android device is a phone whatever its agent.
func TestHTTPLibrariesAreBots(t *testing.T) {
	for _, tt := range []struct{ declared, userAgent, want string }{
		{"", "curl/8.0", "bot"},
		{"", "okhttp/4.9.0", "bot"},
		{"", "okhttp/3.12.1", "bot"},
		{"", "axios/1.6.0", "bot"},
		{"", "Apache-HttpClient/4.5.13 (Java/11.0.2)", "bot"},
		{"", "PostmanRuntime/7.36.0", "bot"},
		{"", "Ruby", "bot"},
		{"", "Java/1.8.0_292", "bot"},
		{"", "Java-http-client/17.0.2", "bot"},
		{"", "libwww-perl/6.72", "bot"},
		{"", "Python-urllib/3.11", "bot"},
		{"", "Python/3.11 aiohttp/3.9.1", "bot"},
		{"", "python-httpx/0.25.0", "bot"},
		{"", "GuzzleHttp/7", "bot"},
		{"", "node-fetch", "bot"},
		{"", "node", "bot"},
		{"", "undici", "bot"},
		{"", "Faraday v2.7.4", "bot"},
		{"", "rest-client/2.1.0 (linux x86_64) ruby/3.0.0p0", "bot"},
		{"", "got (https://github.com/sindresorhus/got)", "bot"},
		{"", "insomnia/2023.5.8", "bot"},
		{"", "HTTPie/3.2.2", "bot"},
		{"", "Go-http-client/2.0", "bot"},
		// Apps' own agents, and browsers, keep their class.
		{"", "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)", "mobile"},
		{"android", "okhttp/4.9.0", "mobile"},
		{"ios", "MyShop/2.1 CFNetwork/1410.0.3 Darwin/22.6.0", "mobile"},
		{"", "MyShop/2.1 CFNetwork/1410.0.3 Darwin/22.6.0", "desktop"}, // as before: no form factor in it
		{"", "MyShop/2.1 okhttp/4.9.0", "desktop"},
		{"", "Dart/3.1 (dart:io)", "desktop"},
		{"", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "desktop"},
		{"", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", "desktop"},
		{"", "Opera/9.80 (Windows NT 6.1; U; en) Presto/2.10.289 Version/12.02", "desktop"},
	} {
		raw, _ := json.Marshal(map[string]any{"type": "track", "event": "A", "userId": "u",
			"context": map[string]any{"device": map[string]any{"type": tt.declared}, "userAgent": tt.userAgent}})
		e, err := Decode(raw, "s", recv)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := e.DeviceType(); got != tt.want {
			t.Errorf("device.type %q, user agent %q: %q, want %q", tt.declared, tt.userAgent, got, tt.want)
		}
	}
}

// TestMonitorsAndPreviewsAreBots is tester 35's F3: chat link previews, uptime monitors, page
// testers, scripted browsers and AI assistants' fetchers were desktops and phones. People's
// browsers and apps, and the phones named Cubot, stay what they were.
func TestMonitorsAndPreviewsAreBots(t *testing.T) {
	for _, tt := range []struct{ userAgent, want string }{
		{"TelegramBot (like TwitterBot)", "bot"},
		{"Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "bot"},
		{"Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse", "bot"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 DatadogSynthetics", "bot"},
		{"Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", "bot"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Cypress/13.6.0 Chrome/114.0.5735.289 Electron/25.8.4 Safari/537.36", "bot"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PTST/231201.190611", "bot"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 ChatGPT-User/1.0", "bot"},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)", "bot"},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Perplexity-User/1.0)", "bot"},
		{"WhatsApp/2.23.20.0", "bot"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0 Headless", "bot"},
		{"Mozilla/5.0 (compatible; bot; +none)", "bot"},
		// Tester 36's F6: fetchers that name no bot.
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GoogleOther) Chrome/120.0.6099.224 Safari/537.36", "bot"},
		{"GoogleOther", "bot"},
		{"Google-Safety", "bot"},
		{"Mozilla/5.0 (Linux; Android 7.0; SM-G930V Build/NRD90M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.125 Mobile Safari/537.36 (compatible; Google-Read-Aloud)", "bot"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b", "bot"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 GTmetrix", "bot"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 (StatusCake)", "bot"},
		{"Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com", "bot"},
		{"facebookexternalhit/1.1", "bot"},
		{"facebookexternalhit/1.1;line-poker/1.0", "bot"},
		{"facebookcatalog/1.0", "bot"},
		{"Claude-Web/1.0 (web crawler; +claude-web@anthropic.com)", "bot"},
		{"Chrome Privacy Preserving Prefetch Proxy", "bot"},
		{"W3C_Validator/1.3 http://validator.w3.org/services", "bot"},
		{"Mozilla/5.0 (compatible; Dataprovider.com)", "bot"},
		// Googlebot's phone agent: its first comment is a phone's, its own names the bot.
		{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.224 Mobile Safari/537.36 (compatible; Googlebot/2.1)", "bot"},
		// Not bots: phones named Cubot or "… bot", browsers and apps whose agents hold "bot"
		// within a word, an Electron app, an in-app browser.
		{"Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Mozilla/5.0 (Linux; Android 9; M bot 60) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Mozilla/5.0 (Linux; Android 12; POWER BOT) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Botanica/3.1 CFNetwork/1410.0.3 Darwin/22.6.0", "desktop"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0 Electron/28.1.0 Safari/537.36", "desktop"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 307.0.0.34.111", "mobile"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 WhatsApp/2.23.20", "mobile"},
		// Tester 36's F5: a letter past ASCII ends no word; phones and apps named with "bot".
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Roboté/1.0", "mobile"},
		{"Mozilla/5.0 (Linux; Android 12; Robot 2 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Mozilla/5.0 (Linux; Android 10; Talbot T1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Mozilla/5.0 (Linux; Android 10; BOT-AL00 Build/HUAWEIBOT-AL00) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "mobile"},
		{"Dalvik/2.1.0 (Linux; U; Android 11; Robot Q7 Build/RP1A)", "mobile"},
		{"iRobot/7.16.2 CFNetwork/1410.0.3 Darwin/22.6.0", "desktop"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Lighthouse/2.3.1 Chrome/120.0 Electron/28.1.0 Safari/537.36", "desktop"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Power-User/1.0", "desktop"},
	} {
		raw, _ := json.Marshal(map[string]any{"type": "track", "event": "A", "userId": "u", "context": map[string]any{"userAgent": tt.userAgent}})
		e, err := Decode(raw, "s", recv)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := e.DeviceType(); got != tt.want {
			t.Errorf("user agent %q: %q, want %q", tt.userAgent, got, tt.want)
		}
	}
}

// TestFlattenedKeyCollisionIsIgnored: a dotted key and the nested member it names, in one
// object, are one key after flattening: the nested one is kept whatever their order, and the
// flat one is listed in Event.Ignored (key_collision, naming it), in properties, traits and
// context.traits alike; a key repeated in one object (same depth) is no collision.
func TestFlattenedKeyCollisionIsIgnored(t *testing.T) {
	recv := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, msg, key, want, field string
	}{
		{"properties flat first", `{"type":"track","event":"E","userId":"u","properties":{"a.b":1,"a":{"b":2}}}`, "a.b", "2", "properties.a.b"},
		{"properties nested first", `{"type":"track","event":"E","userId":"u","properties":{"a":{"b":2},"a.b":1}}`, "a.b", "2", "properties.a.b"},
		{"traits", `{"type":"identify","userId":"u","traits":{"address.city":"Lyon","address":{"city":"Nice"}}}`, TraitPrefix + "address.city", "Nice", "traits.address.city"},
		{"context.traits", `{"type":"track","event":"E","userId":"u","context":{"traits":{"address":{"city":"Nice"},"address.city":"Lyon"}}}`, TraitPrefix + "address.city", "Nice", "context.traits.address.city"},
		{"repeated key", `{"type":"track","event":"E","userId":"u","properties":{"a":1,"a":2}}`, "a", "2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode([]byte(tc.msg), "s", recv)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.Index(e.PropertyKeys, tc.key)
			if i < 0 || e.PropertyValues[i] != tc.want {
				t.Errorf("keys %q values %q, want %s=%s", e.PropertyKeys, e.PropertyValues, tc.key, tc.want)
			}
			var got []string
			for _, ig := range e.Ignored {
				got = append(got, ig.Reason+" "+ig.Field)
			}
			var want []string
			if tc.field != "" {
				want = []string{ReasonKeyCollision + " " + tc.field}
			}
			if !slices.Equal(got, want) {
				t.Errorf("ignored %q, want %q", got, want)
			}
		})
	}
}

// TestRepeatedObjectMembersLastWins: properties or traits given twice in one message are the
// last copy, whole, as every repeated member is (the last event, timestamp or messageId wins):
// a null last copy leaves none, where the first copy's stood (tester 19's T7). So is a member
// given twice inside them, at any depth, as encoding/json reads it: the first copy's nested
// members are not kept beside the last's (tester 42's F3), while a dotted name is another
// member than the object it names, which only wins over it key by key (docs/values.md).
func TestRepeatedObjectMembersLastWins(t *testing.T) {
	many := `"k0":{"z":0}`
	for i := 1; i <= membersListed+2; i++ {
		many += fmt.Sprintf(`,"k%d":%d`, i, i)
	}
	for msg, want := range map[string]string{
		`{"type":"track","event":"E","userId":"u","properties":{"product":{"c":"x"},"product":{"d":"y"}}}`: "[product.d=y]",
		`{"type":"track","event":"E","userId":"u","properties":{"coupon":"A","coupon":"B"}}`:               "[coupon=B]",
		`{"type":"track","event":"E","userId":"u","properties":{"product":"x","product":{"c":1}}}`:         "[product.c=1]",
		`{"type":"track","event":"E","userId":"u","properties":{"product":{"c":1},"product":"x"}}`:         "[product=x]",
		`{"type":"track","event":"E","userId":"u","properties":{"product":{"c":1},"product":null}}`:        "[]",
		`{"type":"track","event":"E","userId":"u","properties":{"product.c":"hats","product":{"d":"y"}}}`:  "[product.c=hats product.d=y]",
		`{"type":"track","event":"E","userId":"u","properties":{"a":{"b":{"c":1},"e":2,"b":{"d":3}}}}`:     "[a.b.d=3 a.e=2]",
		`{"type":"track","event":"E","userId":"u","properties":{` + many + `,"k0":{"y":1},"k1":{"x":2}}}`:  "[k0.y=1 k1.x=2 k10=10 k2=2 k3=3 k4=4 k5=5 k6=6 k7=7 k8=8 k9=9]",
		`{"type":"identify","userId":"u","traits":{"address":{"city":"a"},"address":{"zip":"1"}}}`:         "[" + TraitPrefix + "address.zip=1]",
		`{"type":"track","event":"E","userId":"u","properties":{"revenue":5},"properties":null}`:           "[]",
		`{"type":"track","event":"E","userId":"u","properties":{"revenue":5},"properties":{"total":3}}`:    "[total=3]",
		`{"type":"identify","userId":"u","traits":{"plan":"a"},"traits":{"email":"e"}}`:                    "[" + TraitPrefix + "email=e]",
		`{"type":"identify","userId":"u","traits":{"plan":"a"},"context":{"traits":{"plan":"b"}}}`:         "[" + TraitPrefix + "plan=a]",
	} {
		e, err := Decode([]byte(msg), "s", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, k := range e.PropertyKeys {
			got = append(got, k+"="+e.PropertyValues[i])
		}
		if s := "[" + strings.Join(got, " ") + "]"; s != want {
			t.Errorf("%s: properties %v, want %s", msg, got, want)
		}
	}
}

// TestRepeatedMembersNullLastIsAbsent: a member given twice is its last copy, whole, for every
// member, and a last null is as absent (tester 43's F2: userId, event, timestamp and context kept
// their first copy where messageId and properties took the null).
func TestRepeatedMembersNullLastIsAbsent(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		msg, want string // want: what the event holds, or the field an error names
	}{
		{`{"type":"track","event":"E","anonymousId":"a","userId":"u","userId":null}`, "user= anon=a"},
		{`{"type":"track","event":"E","anonymousId":"a","userId":null,"userId":"u"}`, "user=u anon=a"},
		{`{"type":"track","event":"E","userId":"u","event":null}`, "error event"},
		{`{"type":"track","event":"E","userId":"u","timestamp":"2026-04-01T00:00:00Z","timestamp":null}`, "time=2026-05-01T12:00:00Z"},
		{`{"type":"track","event":"E","userId":"u","context":{"campaign":{"medium":"email"}},"context":null}`, "medium= path="},
		{`{"type":"track","event":"E","userId":"u","context":{"campaign":{"medium":"email"},"page":{"path":"/a"}},"context":{"page":{"path":"/b"}}}`, "medium= path=/b"},
		{`{"type":"track","event":"E","userId":"u","context":{"page":{"path":"/a","url":"https://s/a"},"page":{"path":"/b"}}}`, "medium= path=/b url="},
		{`{"type":"track","event":"E","userId":"u","context":{"page":{"path":"/a","path":null}}}`, "medium= path="},
		{`{"type":"track","event":"E","userId":"u","context":{"traits":{"plan":"a"}},"context":{"traits":{"tier":"b"}}}`, "traits=[tier=b]"},
		{`{"type":"track","event":"E","userId":"u","context":{"traits":{"plan":"a"},"traits":{"tier":"b"}}}`, "traits=[tier=b]"},
		{`{"type":"track","event":"E","userId":"u","context":{"traits":{"plan":"a"}},"context":null}`, "traits=[]"},
	} {
		e, err := Decode([]byte(tt.msg), "s", at)
		var got string
		switch {
		case err != nil:
			var ie *InvalidError
			if errors.As(err, &ie) {
				got = "error " + ie.Field
			} else {
				got = "error " + err.Error()
			}
		case strings.HasPrefix(tt.want, "user="):
			got = "user=" + e.UserID + " anon=" + e.AnonymousID
		case strings.HasPrefix(tt.want, "time="):
			got = "time=" + e.Timestamp.UTC().Format(time.RFC3339)
		case strings.HasPrefix(tt.want, "medium="):
			got = "medium=" + e.CampaignMedium + " path=" + e.PagePath
			if strings.Contains(tt.want, " url=") {
				got += " url=" + e.PageURL
			}
		case strings.HasPrefix(tt.want, "traits="):
			var traits []string
			for i, k := range e.PropertyKeys {
				if name, ok := strings.CutPrefix(k, TraitPrefix); ok {
					traits = append(traits, name+"="+e.PropertyValues[i])
				}
			}
			got = "traits=[" + strings.Join(traits, " ") + "]"
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.msg, got, tt.want)
		}
	}
}

// TestAWrongTypedCopyIsReplaced: a member's earlier copy of the wrong type does not refuse a
// message whose last copy is right, at any depth; a last copy of the wrong type does (tester
// 44's F6: any wrong copy refused it).
func TestAWrongTypedCopyIsReplaced(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const head = `{"type":"track","userId":"u",`
	for _, tt := range []struct {
		msg, want string // want: the event's name and page path, or the field an error names
	}{
		{head + `"event":5,"event":"X"}`, "X /"},
		{head + `"event":"X","event":5}`, "error event"},
		{head + `"event":"X","timestamp":5,"timestamp":"2026-04-01T00:00:00Z"}`, "X /"},
		{head + `"event":"X","timestamp":"2026-04-01T00:00:00Z","timestamp":5}`, "error timestamp"},
		{head + `"event":"X","context":5,"context":{"page":{"path":"/a"}}}`, "X /a"},
		{head + `"event":"X","context":{"page":5},"context":{"page":{"path":"/a"}}}`, "X /a"},
		{head + `"event":"X","context":{"page":{"path":5},"page":{"path":"/a"}}}`, "X /a"},
		{head + `"event":"X","context":{"page":{"path":5,"path":"/a"}}}`, "X /a"},
		{head + `"event":"X","properties":5,"properties":{"a":1}}`, "X /"},
		{`{"type":"track","event":"X","userId":"\ud800","userId":"u"}`, "X /"},
		{head + `"event":5,"timestamp":5,"event":"X"}`, "error timestamp"},
		{head + `"event":"X","context":{"page":5},"context":{"campaign":5}}`, "error context.campaign"},
	} {
		e, err := Decode([]byte(tt.msg), "s", at)
		got := e.Event + " /" + strings.TrimPrefix(e.PagePath, "/")
		if err != nil {
			got = "error " + err.Error()
			var ie *InvalidError
			if errors.As(err, &ie) {
				got = "error " + ie.Field
			}
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.msg, got, tt.want)
		}
	}
}

// TestSurrogatePairsAndEscapedBackslashesAreIds: what refuses an id is half a surrogate pair
// alone; a whole pair is its character, an escaped backslash before "ud800" is text, and a
// property may hold half a pair (read as U+FFFD, as encoding/json reads it).
func TestSurrogatePairsAndEscapedBackslashesAreIds(t *testing.T) {
	for raw, want := range map[string]string{
		`{"type":"track","event":"A","userId":"sm\ud83d\ude00"}`:                        "sm\U0001F600",
		`{"type":"track","event":"A","userId":"b\\ud800"}`:                              `b\ud800`,
		`{"type":"track","event":"A","userId":"r\ufffd"}`:                               "r\ufffd",
		`{"type":"track","event":"A","userId":"p","properties":{"cut":"emoji \ud83d"}}`: "p",
	} {
		e, err := Decode([]byte(raw), "s", recv)
		if err != nil || e.UserID != want {
			t.Errorf("Decode(%s) = %q, %v; want userId %q", raw, e.UserID, err, want)
		}
	}
}

// TestPagePathFromTheURL: a call that sends a page URL and no path gets the URL's path, as
// analytics.js sends location.pathname beside location.href (tester 15's F13); a path sent wins.
func TestPagePathFromTheURL(t *testing.T) {
	tests := []struct{ name, raw, path string }{
		{"context URL only", `{"type":"track","event":"V","anonymousId":"a","context":{"page":{"url":"https://shop.example/p/1?utm_source=x#top"}}}`, "/p/1"},
		{"a page's properties.url only", `{"type":"page","anonymousId":"a","properties":{"url":"https://shop.example/cart"}}`, "/cart"},
		{"a host without path", `{"type":"page","anonymousId":"a","properties":{"url":"https://shop.example?x=1"}}`, "/"},
		{"percent-encoded as sent", `{"type":"page","anonymousId":"a","properties":{"url":"https://shop.example/p/caf%C3%A9"}}`, "/p/caf%C3%A9"},
		{"a path of its own wins", `{"type":"page","anonymousId":"a","properties":{"path":"/mine","url":"https://shop.example/theirs"}}`, "/mine"},
		{"context path wins", `{"type":"track","event":"V","anonymousId":"a","context":{"page":{"path":"/ctx","url":"https://shop.example/url"}}}`, "/ctx"},
		{"a relative URL", `{"type":"page","anonymousId":"a","properties":{"url":"/p/2?q=1"}}`, "/p/2"},
		{"a URL that does not parse", `{"type":"page","anonymousId":"a","properties":{"url":"https://shop.example/%zz"}}`, ""},
		{"not a URL of a page", `{"type":"page","anonymousId":"a","properties":{"url":"mailto:x@shop.example"}}`, ""},
		{"no URL", `{"type":"page","anonymousId":"a"}`, ""},
	}
	for _, tt := range tests {
		e, err := Decode([]byte(tt.raw), "s", time.Now())
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if e.PagePath != tt.path {
			t.Errorf("%s: page path %q, want %q", tt.name, e.PagePath, tt.path)
		}
	}
}
