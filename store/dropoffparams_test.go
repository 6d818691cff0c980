package store_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
)

// TestStepCountErrorsSayWhatIsWrong: a drop-off or correlation given one step names steps and
// says two are needed, instead of offering an empty range of steps ("give 1 to 0"), in words that
// fit a query string, a batch body and the CLI alike (no flag, no "give steps twice", which is
// refused as a repeated parameter: tester 49's F3); a drop-off step past the one before the last
// of two steps offers 1, not "1 to 1" (F5).
func TestStepCountErrorsSayWhatIsWrong(t *testing.T) {
	day := url.Values{"from": {"2024-11-01"}, "to": {"2024-11-08"}}
	with := func(kv ...string) url.Values { return withParams(day, kv...) }
	tests := []struct {
		name  string
		parse func(url.Values) error
		v     url.Values
		param string
		says  string
		never []string
	}{
		{"drop-off of one step", dropoffErr, with("steps", "Product Viewed"), "steps", "at least two steps", []string{"--", "twice"}},
		{"correlation of one step", correlationErr, with("steps", "Product Viewed"), "steps", "at least two steps", []string{"--", "twice"}},
		{"drop-off after the last of two", dropoffErr, with("steps", "A,B", "step", "2"), "step", "give 1 (", []string{"1 to 1"}},
		{"drop-off after the last of three", dropoffErr, with("steps", "A,B,C", "step", "3"), "step", "give 1 to 2 (the step before the last)", nil},
		// a + sign is refused, as in every whole number, blaming the sign, not the number
		// ("+1" is not a step …: give 1 to 2: tester 50's F7)
		{"drop-off step with a + sign", dropoffErr, with("steps", "A,B,C", "step", "+1"), "step",
			`"+1" has a + sign, which a step's number is written without: give 1 to 2 (the step before the last), or 0`, []string{"is not a step"}},
		{"drop-off limit with a + sign", dropoffErr, with("steps", "A,B,C", "limit", "+5"), "limit",
			`"+5" has a + sign, which a whole number is written without: give one from 1 to 1000`, []string{"is not a whole number"}},
		{"drop-off step negative", dropoffErr, with("steps", "A,B,C", "step", "-1"), "step", `"-1" is not a step to count drop-offs after: give 1 to 2`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.v)
			var pe *store.ParamError
			if !errors.As(err, &pe) || pe.Param != tt.param || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%v, want an error naming %s that says %q", err, tt.param, tt.says)
			}
			for _, s := range tt.never {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%v: says %q", err, s)
				}
			}
		})
	}
}

func dropoffErr(v url.Values) error {
	_, err := store.ParseDropoffQuery(v)
	return err
}

func correlationErr(v url.Values) error {
	_, err := store.ParseCorrelationQuery(v)
	return err
}

// TestAnUnencodedPlusBeforeAStepIsASpace: in a query string an unencoded + is a space
// (application/x-www-form-urlencoded), trimmed as around any whole number: step=+2 is step 2, as
// limit=+5 is limit 5, where %2B2, a + sign, is refused (tester 50's F7).
func TestAnUnencodedPlusBeforeAStepIsASpace(t *testing.T) {
	v, err := url.ParseQuery("steps=A,B,C&from=2024-11-01&to=2024-11-08&step=+2&limit=+5")
	if err != nil {
		t.Fatal(err)
	}
	q, err := store.ParseDropoffQuery(v)
	if err != nil || q.Step != 2 || q.Limit != 5 {
		t.Errorf("step=+2&limit=+5: step %d, limit %d, %v; want 2 and 5", q.Step, q.Limit, err)
	}
	v.Set("step", "+2")
	if _, err := store.ParseDropoffQuery(v); err == nil || !strings.Contains(err.Error(), "has a + sign") {
		t.Errorf("step=%%2B2: %v, want it refused for its + sign", err)
	}
}
