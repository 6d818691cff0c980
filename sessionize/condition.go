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

	re    *regexp.Regexp
	equal []string // EqualTexts, worked out by check
	line  int
}

// ContextFields are the event fields a condition can name besides properties
// (properties.NAME), in the order the documentation lists them.
func ContextFields() []string {
	return []string{"page.path", "page.referrer", "campaign.source", "campaign.medium", "campaign.name"}
}

// check verifies that the condition names a field and sets exactly one operator, and compiles its
// regular expression: the rule for a condition wherever it comes from (a journey map, a step's
// filter).
func (c *Condition) check() error {
	set := 0
	for _, on := range []bool{c.Equals != nil, c.OneOf != nil, c.Prefix != nil, c.Regexp != nil, c.GT != nil, c.GTE != nil, c.LT != nil, c.LTE != nil} {
		if on {
			set++
		}
	}
	switch {
	case c.Field == "":
		return fmt.Errorf("field: a condition needs the field it tests (a property name, or one of %s)", strings.Join(ContextFields(), ", "))
	case set != 1:
		return fmt.Errorf("condition on %q: want exactly one of equals, one_of, prefix, regexp, gt, gte, lt, lte; got %d", c.Field, set)
	}
	for _, f := range []*float64{c.GT, c.GTE, c.LT, c.LTE} {
		if f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) {
			return fmt.Errorf("condition on %q: %v is not a finite number", c.Field, *f)
		}
	}
	c.equal = c.EqualTexts()
	if c.Regexp != nil {
		re, err := regexp.Compile(*c.Regexp)
		if err != nil {
			return fmt.Errorf("regexp: %w", err)
		}
		c.re = re
	}
	return nil
}

// NewCondition returns the condition that field op value states, op being one of equals, one_of
// (value: the options separated by "|"), prefix, regexp, gt, gte, lt, lte (value: a finite
// decimal number). A field that is not a context field (ContextFields) nor properties.NAME is
// read as the property of that name. Errors name what is wrong.
func NewCondition(field, op, value string) (Condition, error) {
	if !strings.HasPrefix(field, "properties.") && !slices.Contains(ContextFields(), field) {
		field = "properties." + field
	}
	c := Condition{Field: field}
	switch op {
	case "equals":
		c.Equals = &value
	case "one_of":
		c.OneOf = strings.Split(value, "|")
	case "prefix":
		c.Prefix = &value
	case "regexp":
		c.Regexp = &value
	case "gt", "gte", "lt", "lte":
		n, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return Condition{}, fmt.Errorf("%q is not a finite number", value)
		}
		switch op {
		case "gt":
			c.GT = &n
		case "gte":
			c.GTE = &n
		case "lt":
			c.LT = &n
		default:
			c.LTE = &n
		}
	default:
		return Condition{}, fmt.Errorf("%q is not an operator (equals, one_of, prefix, regexp, gt, gte, lt, lte)", op)
	}
	return c, c.check()
}

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
	if err := c.check(); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
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

// EqualTexts returns the stored texts that equals (or one_of) accepts, nil for the other
// operators: each value as written and, for a value that is a JSON number, also its canonical
// text (ingest.CanonicalNumber), which is how JSON numbers are stored. So price=100, price=100.0
// and price=1e2 all find the number 100 however the client wrote it, and the string "100" too
// (it has the same text); the strings "100.0" and "1e2" are found by exactly their text. This is
// the one definition of equality: Matches uses it and the store renders it as SQL. The reasons
// are in docs/values.md.
//
// Numbers stored before Waymark kept numbers in canonical form (schema version 9) keep the text
// the client sent: a filter written in that text (price=100.0) finds them.
func (c *Condition) EqualTexts() []string {
	var values []string
	switch {
	case c.Equals != nil:
		values = []string{*c.Equals}
	case c.OneOf != nil:
		values = c.OneOf
	default:
		return nil
	}
	texts := make([]string, 0, len(values))
	for _, v := range values {
		texts = append(texts, v)
		if n, ok := ingest.CanonicalNumber(v); ok && n != v {
			texts = append(texts, n)
		}
	}
	return texts
}

// Matches reports whether e passes the condition.
func (c *Condition) Matches(e *ingest.Event) bool {
	v, ok := c.value(e)
	if !ok {
		return false
	}
	switch {
	case c.Equals != nil || c.OneOf != nil:
		texts := c.equal
		if texts == nil { // a Condition built without check
			texts = c.EqualTexts()
		}
		return slices.Contains(texts, v)
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
