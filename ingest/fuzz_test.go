package ingest

import (
	"errors"
	"testing"
	"time"
)

// FuzzDecode: any bytes either decode into an event with an identity and a sane time, or fail
// with an InvalidError that names a reason; nothing panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"track","event":"A","userId":"u","timestamp":"2026-01-01T00:00:00Z","properties":{"a":1,"b":"x"}}`,
		`{"type":"page","anonymousId":7,"context":{"page":{"path":"/"},"campaign":{"medium":"email"},"sessionId":3}}`,
		`{"type":"alias","userId":"u","previousId":"a"}`,
		`{"type":"track"`, `[]`, `null`, `{"type":"track","event":"A","userId":{}}`,
	} {
		f.Add([]byte(seed))
	}
	received := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(raw, "fuzz", received)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if e.CustomerKey() == "" || e.MessageID == "" || e.Timestamp.Year() < 2000 || e.Timestamp.Year() > 2100 {
			t.Fatalf("accepted an unusable event: %+v", e)
		}
		if len(e.PropertyKeys) != len(e.PropertyValues) {
			t.Fatalf("property keys and values differ in length")
		}
	})
}
