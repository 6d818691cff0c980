package store

import (
	"net/url"
	"strings"
	"testing"
)

// TestDropoffOfOneStepSaysTwoAreNeeded: a drop-off given one step names steps and says two are
// needed, instead of offering an empty range of steps ("give 1 to 0").
func TestDropoffOfOneStepSaysTwoAreNeeded(t *testing.T) {
	_, err := ParseDropoffQuery(url.Values{"steps": {"Product Viewed"}, "from": {"2024-11-01"}, "to": {"2024-11-08"}})
	if err == nil || !strings.Contains(err.Error(), "steps") || !strings.Contains(err.Error(), "at least two steps") {
		t.Errorf("one step: %v, want an error naming steps and saying at least two steps are needed", err)
	}
}
