package sessionize

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
	"gopkg.in/yaml.v3"
)

//go:embed journey-map.yaml
var defaultMapYAML []byte

// DefaultMapYAML returns the built-in shop journey map as YAML.
func DefaultMapYAML() []byte { return bytes.Clone(defaultMapYAML) }

// Map is a journey map: ordered stages, each reached by events that match one of its rules.
type Map struct {
	Version string  `yaml:"version"`
	Stages  []Stage `yaml:"stages"`
	// Channels overrides the default channel rules (see ChannelRule) when set.
	Channels []ChannelRule `yaml:"channels,omitempty"`
}

// EnteredStages returns the stages (bit i: stage i of a Map) a person enters when an event, or
// the events of one time together, reach the stages reached, given the stages they reached
// before (before, skipped ones included). A person's stage is the furthest they have entered so
// far, and it only moves forward, as a HubSpot lifecycle stage does; so they enter the stages
// reached that lie past the furthest of before, and a stage reached after a further one (a
// converted customer adding to a cart) is skipped: not entered, so never left nor an exit, as a
// step done out of order takes no step of an ordered funnel (Mixpanel's and Amplitude's
// default order). A stage passed over on the way (awareness, then an order) is not entered
// either. The stages query (store), the live entries (Stats.StageEntries) and their tests all
// ask this.
func EnteredStages(before, reached uint64) uint64 {
	return reached &^ (1<<bits.Len64(before) - 1)
}

// Stage is one step of the journey.
type Stage struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	Rules       []Rule `yaml:"rules"`
	line        int
}

// Rule matches events. Every condition it sets must hold; an empty list sets no condition.
type Rule struct {
	Types  []string `yaml:"type,omitempty"`  // Segment call types (track, page, screen, …)
	Events []string `yaml:"event,omitempty"` // event names (track) or page/screen names
	// Nth, when above 1, matches only the customer's nth or later distinct event matching the
	// other conditions (e.g. 2 for a repeat order). Default 1.
	Nth int `yaml:"nth,omitempty"`
	// Where lists conditions on properties or context fields; all must hold.
	Where []Condition `yaml:"where,omitempty"`
	// Channels, when set, requires the touchpoint's channel (see Channel) to be one of these.
	Channels []string `yaml:"channel,omitempty"`
	line     int
	// nthSet says the map's text states nth, so that a stated 0 is refused as -1 is, not read as
	// no nth.
	nthSet bool
}

// UnmarshalYAML records the line of a stage for error messages.
func (s *Stage) UnmarshalYAML(n *yaml.Node) error {
	type plain Stage
	if err := knownFields(n, "stage", "name", "description", "rules"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

// UnmarshalYAML records the line of a rule for error messages.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	type plain Rule
	if err := knownFields(n, "rule", "type", "event", "nth", "where", "channel"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.line = n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		r.nthSet = r.nthSet || n.Content[i].Value == "nth"
	}
	return nil
}

// knownFields rejects keys of a mapping node that are not in allowed. (The decoder's KnownFields
// setting does not reach types with their own UnmarshalYAML.)
func knownFields(n *yaml.Node, what string, allowed ...string) error {
	if n.Kind != yaml.MappingNode {
		return nil // Decode reports the type error with its line
	}
	for i := 0; i < len(n.Content); i += 2 {
		if key := n.Content[i]; !slices.Contains(allowed, key.Value) {
			return fmt.Errorf("line %d: field %s not found in %s (want one of %s)", key.Line, key.Value, what, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Needs is how many distinct events matching the rule's conditions a customer must have for the
// rule to match the last of them: Nth, at least 1.
func (r *Rule) Needs() int { return max(r.Nth, 1) }

// Matches reports whether e, whose channel is channel, meets the rule's conditions, not
// counting Nth (see Needs).
func (r *Rule) Matches(e *ingest.Event, channel string) bool {
	if len(r.Types) > 0 && !slices.Contains(r.Types, e.Type) ||
		len(r.Events) > 0 && !slices.Contains(r.Events, e.Event) ||
		len(r.Channels) > 0 && !slices.Contains(r.Channels, channel) {
		return false
	}
	for i := range r.Where {
		if !r.Where[i].Matches(e) {
			return false
		}
	}
	return true
}

// ParseMap reads and validates a journey map. Errors name the line and the field.
func ParseMap(data []byte) (*Map, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("journey map: %w", err)
	}
	if doc.Kind == 0 {
		return nil, errors.New("journey map: the file is empty (or only comments): want a version and stages")
	}
	lists := listProblems(&doc)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Map
	if err := dec.Decode(&m); err != nil {
		return nil, errors.Join(append(lists, fmt.Errorf("journey map: %w", err))...)
	}
	// A second document (after ---) would be dropped without a word: a file holds one map
	// (tester 29's N1: two maps concatenated read as the first).
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, fmt.Errorf("journey map: line %d: a second YAML document (after ---); a file holds one journey map", next.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("journey map: %w", err)
	}
	for i := range m.Channels {
		m.Channels[i].normalize()
	}
	if err := errors.Join(append(lists, m.Validate())...); err != nil {
		return nil, err
	}
	return &m, nil
}

// listProblems finds the lists of a journey map (n, its YAML) that state nothing: an empty list,
// a list holding a null (~, null, Null, or an item left empty) or a list field with no value.
// Each would otherwise read as the condition not being there at all, and widen its rule to every
// event: `event: [~]` beside `type: [track]` matched every track call (tester 29's F3), and an
// empty one_of failed every query that used its stage (F2). A name that is literally "null" is
// written quoted. The stages and rules lists are left to Validate, which names an empty one.
func listProblems(n *yaml.Node) []error {
	var errs []error
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if !slices.Contains(mapLists, key.Value) {
				continue
			}
			bad := func(line int, format string, args ...any) {
				errs = append(errs, fmt.Errorf("journey map: line %d: %s: %s", line, key.Value, fmt.Sprintf(format, args...)))
			}
			switch {
			case value.Kind == yaml.ScalarNode && value.Tag == "!!null":
				bad(key.Line, "no value; list at least one, or leave %s out", key.Value)
			case value.Kind == yaml.SequenceNode && len(value.Content) == 0:
				bad(key.Line, "an empty list states nothing; list at least one, or leave %s out", key.Value)
			case value.Kind == yaml.SequenceNode:
				for j, item := range value.Content {
					if item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
						bad(item.Line, "item %d is null (~, null or an empty item), which names nothing; quote it (\"null\") if that is the name", j+1)
					}
				}
			}
		}
	}
	for _, c := range n.Content {
		errs = append(errs, listProblems(c)...)
	}
	return errs
}

// mapLists are the fields of a journey map that hold lists of names, values or conditions (see
// listProblems): a rule's type, event, where and channel, a condition's one_of and not_one_of,
// and the channel rules and their medium, source and click_id.
var mapLists = []string{"type", "event", "where", "channel", "one_of", "not_one_of", "channels", "medium", "source", "click_id"}

// LoadMap reads the journey map at path, or the default map when path is empty.
func LoadMap(path string) (*Map, error) {
	if path == "" {
		return ParseMap(defaultMapYAML)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("journey map: %w", err)
	}
	m, err := ParseMap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Validate reports every problem in the map, each with its line and field.
func (m *Map) Validate() error {
	var errs []error
	bad := func(line int, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("journey map: line %d: %s: %s", line, field, fmt.Sprintf(format, args...)))
	}
	if m.Version == "" {
		bad(1, "version", "is required")
	}
	for i, r := range m.Channels {
		if r.Channel == "" {
			bad(1, "channels", "rule %d has no channel name", i+1)
		}
		if len(r.Mediums) == 0 && !r.PaidMedium && len(r.Sources) == 0 && len(r.ClickIDs) == 0 && !r.Referrer {
			bad(1, "channels", "rule %d (%s) has no condition (medium, paid_medium, source, click_id or referrer), so it matches nothing; a touchpoint no rule matches is other or direct", i+1, r.Channel)
		}
	}
	if len(m.Stages) == 0 {
		bad(1, "stages", "at least one stage is required")
	}
	if len(m.Stages) > 32 {
		bad(m.Stages[32].line, "stages", "at most 32 stages, got %d", len(m.Stages))
	}
	seen := map[string]bool{}
	for _, s := range m.Stages {
		switch {
		case s.Name == "":
			bad(s.line, "name", "a stage needs a name")
		case seen[s.Name]:
			bad(s.line, "name", "stage %q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Rules) == 0 {
			bad(s.line, "rules", "stage %q has no rules", s.Name)
		}
		for _, r := range s.Rules {
			if len(r.Types) == 0 && len(r.Events) == 0 && len(r.Where) == 0 && len(r.Channels) == 0 {
				bad(r.line, "rules", "a rule of stage %q sets no condition (type, event, where or channel)", s.Name)
			}
			for _, typ := range r.Types {
				if !slices.Contains(ingest.CallTypes(), typ) {
					bad(r.line, "type", "%q is not a Segment call type (want one of %s)", typ, strings.Join(ingest.CallTypes(), ", "))
				}
			}
			for _, ev := range r.Events {
				if strings.TrimSpace(ev) == "" {
					bad(r.line, "event", "a blank event name matches no event (an event without a name is refused when it arrives)")
				}
			}
			for _, ch := range r.Channels {
				if !m.knownChannel(ch) {
					bad(r.line, "channel", "unknown channel %q (want one of %s)", ch, strings.Join(m.channelNames(), ", "))
				}
			}
			if r.Nth < 0 || r.Nth == 0 && r.nthSet {
				bad(r.line, "nth", "must be 1 or more, got %d", r.Nth)
			}
		}
	}
	return errors.Join(errs...)
}

// Stage returns the stage with the given name.
func (m *Map) Stage(name string) (*Stage, bool) {
	for i := range m.Stages {
		if m.Stages[i].Name == name {
			return &m.Stages[i], true
		}
	}
	return nil, false
}

// YAML renders the map as YAML.
func (m *Map) YAML() ([]byte, error) {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render journey map: %w", err)
	}
	return b, nil
}
