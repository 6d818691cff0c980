package sessionize

import (
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
)

// FuzzParseMap: any YAML either parses into a valid map whose rules can be evaluated, or fails
// with a journey-map error; nothing panics. (Errors of the map's content name their line, see
// TestParseMapErrorsNameLineAndField; some YAML syntax errors carry none.)
func FuzzParseMap(f *testing.F) {
	f.Add(string(DefaultMapYAML()))
	f.Add("version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: x\n            gt: 1\n")
	f.Add("version: v\nstages: [{name: a, rules: [{event: [A], nth: 2, channel: [email]}]}]\n")
	f.Add("version: v\nchannels: [{channel: x, medium: [y]}]\nstages: [{name: a, rules: [{type: [page]}]}]\n")
	f.Add(":\n- [")
	f.Fuzz(func(t *testing.T, data string) {
		m, err := ParseMap([]byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "journey map") {
				t.Fatalf("error does not say it is about the journey map: %v", err)
			}
			return
		}
		e := ingest.Event{Type: "track", Event: "A", PropertyKeys: []string{"x"}, PropertyValues: []string{"2"}}
		for _, st := range m.Stages {
			for _, r := range st.Rules {
				r.Matches(&e, m.Channel(&e))
			}
		}
	})
}
