package sessionize

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
	"gopkg.in/yaml.v3"
)

// Condition tests one field of an event: a property (properties.NAME) or a context field
// (page.path, page.referrer, campaign.source, campaign.medium, campaign.name). Exactly one
// operator is set. A missing field fails every operator.
type Condition struct {
	Field  string   `yaml:"field"`
	Equals *string  `yaml:"equals,omitempty"`
	OneOf  []string `yaml:"one_of,omitempty"`
	Prefix *string  `yaml:"prefix,omitempty"`
	Regexp *string  `yaml:"regexp,omitempty"`
	GT     *float64 `yaml:"gt,omitempty"`
	GTE    *float64 `yaml:"gte,omitempty"`
	LT     *float64 `yaml:"lt,omitempty"`
	LTE    *float64 `yaml:"lte,omitempty"`

	re   *regexp.Regexp
	line int
}

// contextFields are the event fields a condition can name besides properties.
var contextFields = []string{"page.path", "page.referrer", "campaign.source", "campaign.medium", "campaign.name"}

// UnmarshalYAML checks the condition's fields and compiles its regexp, with line numbers.
func (c *Condition) UnmarshalYAML(n *yaml.Node) error {
	type plain Condition
	if err := knownFields(n, "condition", "field", "equals", "one_of", "prefix", "regexp", "gt", "gte", "lt", "lte"); err != nil {
		return err
	}
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	c.line = n.Line
	set := 0
	for _, on := range []bool{c.Equals != nil, c.OneOf != nil, c.Prefix != nil, c.Regexp != nil, c.GT != nil, c.GTE != nil, c.LT != nil, c.LTE != nil} {
		if on {
			set++
		}
	}
	switch {
	case c.Field == "":
		return fmt.Errorf("line %d: field: a condition needs the field it tests (a property name, or one of %s)", n.Line, strings.Join(contextFields, ", "))
	case set != 1:
		return fmt.Errorf("line %d: condition on %q: want exactly one of equals, one_of, prefix, regexp, gt, gte, lt, lte; got %d", n.Line, c.Field, set)
	}
	if c.Regexp != nil {
		re, err := regexp.Compile(*c.Regexp)
		if err != nil {
			return fmt.Errorf("line %d: regexp: %w", n.Line, err)
		}
		c.re = re
	}
	return nil
}

// value returns the field's text value in e and whether it is set.
func (c *Condition) value(e *ingest.Event) (string, bool) {
	switch c.Field {
	case "page.path":
		return e.PagePath, e.PagePath != ""
	case "page.referrer":
		return e.Referrer, e.Referrer != ""
	case "campaign.source":
		return e.CampaignSource, e.CampaignSource != ""
	case "campaign.medium":
		return e.CampaignMedium, e.CampaignMedium != ""
	case "campaign.name":
		return e.CampaignName, e.CampaignName != ""
	}
	return e.Property(strings.TrimPrefix(c.Field, "properties."))
}

// Matches reports whether e passes the condition.
func (c *Condition) Matches(e *ingest.Event) bool {
	v, ok := c.value(e)
	if !ok {
		return false
	}
	switch {
	case c.Equals != nil:
		return v == *c.Equals
	case c.OneOf != nil:
		return slices.Contains(c.OneOf, v)
	case c.Prefix != nil:
		return strings.HasPrefix(v, *c.Prefix)
	case c.re != nil:
		return c.re.MatchString(v)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !decimal(v) || math.IsInf(f, 0) || math.IsNaN(f) {
		return false // only a finite decimal number compares
	}
	switch {
	case c.GT != nil:
		return f > *c.GT
	case c.GTE != nil:
		return f >= *c.GTE
	case c.LT != nil:
		return f < *c.LT
	case c.LTE != nil:
		return f <= *c.LTE
	}
	return false
}

// Key identifies the condition's meaning, for sharing SQL between steps.
func (c *Condition) Key() string {
	return fmt.Sprintf("%s|%v|%v|%v|%v|%v|%v|%v|%v", c.Field, deref(c.Equals), c.OneOf, deref(c.Prefix), deref(c.Regexp),
		derefF(c.GT), derefF(c.GTE), derefF(c.LT), derefF(c.LTE))
}

func deref(s *string) string {
	if s == nil {
		return "\x00"
	}
	return *s
}

func derefF(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}
