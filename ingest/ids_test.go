package ingest

import (
	"fmt"
	"testing"
)

// TestNumericIDsAreOneIDHoweverWritten: a JSON number id is its CanonicalNumber text, for every
// id a message carries; a string stays as sent.
func TestNumericIDsAreOneIDHoweverWritten(t *testing.T) {
	for _, written := range []string{`4200`, `4.2e3`, `4200.0`, `"4200"`, `42e2`, `4200.000e0`} {
		raw := fmt.Sprintf(`{"type":"alias","userId":%[1]s,"anonymousId":%[1]s,"previousId":%[1]s,"messageId":%[1]s,"context":{"sessionId":%[1]s}}`, written)
		e, err := Decode([]byte(raw), "s", recv)
		if err != nil {
			t.Fatal(err)
		}
		for field, got := range map[string]string{"userId": e.UserID, "anonymousId": e.AnonymousID, "previousId": e.PreviousID, "messageId": e.MessageID, "context.sessionId": e.SessionID} {
			if got != "4200" {
				t.Errorf("%s %s read as %q, want 4200", field, written, got)
			}
		}
	}
	if e, _ := Decode([]byte(`{"type":"track","event":"A","userId":"4.2e3"}`), "s", recv); e.UserID != "4.2e3" {
		t.Errorf("the string \"4.2e3\" read as %q, want it as sent", e.UserID)
	}
}

// TestPageReferrerFromProperties: a page call's referrer is read from its properties like its
// path and url (Segment's page spec lists all three among a page's properties), with
// context.page's taking precedence as for path and url; other calls read context.page only.
func TestPageReferrerFromProperties(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{`{"type":"page","userId":"u","properties":{"path":"/shoes","referrer":"https://www.google.com/"}}`, "https://www.google.com/"},
		{`{"type":"page","userId":"u","properties":{"referrer":"https://www.google.com/"},"context":{"page":{"referrer":"https://www.bing.com/"}}}`, "https://www.bing.com/"},
		{`{"type":"page","userId":"u","properties":{"referrer":"https://www.google.com/"},"context":{"page":{"referrer":""}}}`, "https://www.google.com/"},
		{`{"type":"track","event":"A","userId":"u","properties":{"referrer":"https://www.google.com/"}}`, ""},
	}
	for _, tt := range tests {
		e, err := Decode([]byte(tt.raw), "s", recv)
		if err != nil {
			t.Fatal(err)
		}
		if e.Referrer != tt.want {
			t.Errorf("%s: referrer %q, want %q", tt.raw, e.Referrer, tt.want)
		}
	}
}
