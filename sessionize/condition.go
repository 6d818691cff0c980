package sessionize

import (
	"cmp"
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

// NewCondition returns the condition that field op values state, op being one of equals, one_of
// (values: the options, one or more), prefix, regexp, gt, gte, lt, lte (value: a finite decimal
// number); every op but one_of takes exactly one value. A field that is not a context field
// (ContextFields) nor properties.NAME is read as the property of that name. Errors name what is
// wrong.
func NewCondition(field, op string, values ...string) (Condition, error) {
	if !strings.HasPrefix(field, "properties.") && !slices.Contains(ContextFields(), field) {
		field = "properties." + field
	}
	c := Condition{Field: field}
	if op == "one_of" && len(values) > 0 {
		c.OneOf = slices.Clone(values)
		return c, c.check()
	}
	if len(values) != 1 {
		return Condition{}, fmt.Errorf("%s takes one value, not %d", op, len(values))
	}
	value := values[0]
	switch op {
	case "equals":
		c.Equals = &value
	case "prefix":
		c.Prefix = &value
	case "regexp":
		c.Regexp = &value
	case "gt", "gte", "lt", "lte":
		// A bound is written as a value must be to compare with it (NumberPattern): ParseFloat
		// alone also reads 1_000, 0x1p4 and Inf.
		n, err := strconv.ParseFloat(value, 64)
		if err != nil || !numberRE.MatchString(value) || math.IsNaN(n) || math.IsInf(n, 0) {
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
	op, bound := c.Bound()
	d, ok := ParseDecimal(v)
	if !ok {
		return false // only a decimal number compares
	}
	switch n := d.Compare(bound); op {
	case ">":
		return n > 0
	case ">=":
		return n >= 0
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	}
	return false
}

// Bound returns a bound condition's operator (">", ">=", "<" or "<=") and its bound as a decimal:
// the shortest decimal that reads as the condition's float64 (so a filter's 0.1 is 0.1, not the
// float64 nearest it). It returns "" for the other operators.
func (c *Condition) Bound() (string, Decimal) {
	op, f := "", (*float64)(nil)
	switch {
	case c.GT != nil:
		op, f = ">", c.GT
	case c.GTE != nil:
		op, f = ">=", c.GTE
	case c.LT != nil:
		op, f = "<", c.LT
	case c.LTE != nil:
		op, f = "<=", c.LTE
	default:
		return "", Decimal{}
	}
	d, ok := ParseDecimal(strconv.FormatFloat(*f, 'g', -1, 64))
	if !ok {
		panic(fmt.Sprintf("BUG: bound %v of %q is not a decimal number", *f, c.Field))
	}
	return op, d
}

// NumberPattern is the text a value needs to compare with a bound (gt, gte, lt, lte): a decimal
// number with an optional sign, digits with an optional point (".5" and "5." included) and an
// optional exponent, and nothing around it: no space, no "_", no hexadecimal, no Inf or NaN. It
// is RE2 syntax, which Go's regexp and ClickHouse's match both read, and has no "?" (the
// ClickHouse client binds every "?").
const NumberPattern = `^[-+]{0,1}([0-9]+[.]{0,1}[0-9]*|[.][0-9]+)([eE][-+]{0,1}[0-9]+){0,1}$`

// MaxExponentDigits bounds the digits of an exponent ParseDecimal reads: a larger exponent is
// read as ±10^MaxExponentDigits. That changes no comparison, as no text is long enough for its
// digits to move the point back within reach of a float64 bound.
const MaxExponentDigits = 15

// Decimal is a decimal number exactly: Sign × 0.Digits × 10^Point.
type Decimal struct {
	Sign   int    // -1, 0 (the number 0) or 1
	Digits string // no leading or trailing zeros; "" when Sign is 0
	Point  int64  // where the decimal point is, counted from the left of Digits
}

// ParseDecimal reads text as a decimal number (NumberPattern) and false when it is not one. The
// number is kept exactly, however many digits or how large an exponent it has: 1e400 is a number
// larger than any float64, 100.000000000000000001 is larger than 100. This is the one reading of
// a value for the bound operators; Matches uses it and the store renders it as SQL.
func ParseDecimal(text string) (Decimal, bool) {
	if !numberRE.MatchString(text) {
		return Decimal{}, false
	}
	neg := strings.HasPrefix(text, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(strings.TrimLeft(text, "+-")), "e")
	whole, frac, _ := strings.Cut(mant, ".")
	all := whole + frac
	digits := strings.TrimLeft(all, "0")
	lead := len(all) - len(digits)
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return Decimal{}, true
	}
	d := Decimal{Sign: 1, Digits: digits, Point: int64(len(whole)-lead) + exponent(exp)}
	if neg {
		d.Sign = -1
	}
	return d, true
}

// numberRE is NumberPattern compiled.
var numberRE = regexp.MustCompile(NumberPattern)

// exponent reads an exponent's text (an optional sign and digits, or ""), held to
// ±10^MaxExponentDigits.
func exponent(text string) int64 {
	digits := strings.TrimLeft(strings.TrimLeft(text, "+-"), "0")
	e, _ := strconv.ParseInt(digits, 10, 64) // "" is 0
	if len(digits) > MaxExponentDigits {
		e = int64(math.Pow10(MaxExponentDigits))
	}
	if strings.HasPrefix(text, "-") {
		return -e
	}
	return e
}

// Compare returns -1, 0 or 1 as d is less than, equal to or greater than b.
func (d Decimal) Compare(b Decimal) int {
	switch {
	case d.Sign != b.Sign:
		return cmp.Compare(d.Sign, b.Sign)
	case d.Sign == 0:
		return 0
	case d.Point != b.Point:
		return d.Sign * cmp.Compare(d.Point, b.Point)
	}
	return d.Sign * strings.Compare(d.Digits, b.Digits)
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
