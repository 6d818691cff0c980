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
// (page.path, page.referrer, campaign.source, campaign.medium, campaign.name, device.type).
// Exactly one
// operator is set. A missing field fails every operator but not_equals and not_one_of, which it
// passes: an event without the value does not equal it (PostHog's "is not" and Mixpanel's "does
// not equal" count the events that lack the property too).
type Condition struct {
	Field     string   `yaml:"field"`
	Equals    *string  `yaml:"equals,omitempty"`
	OneOf     []string `yaml:"one_of,omitempty"`
	NotEquals *string  `yaml:"not_equals,omitempty"`
	NotOneOf  []string `yaml:"not_one_of,omitempty"`
	Prefix    *string  `yaml:"prefix,omitempty"`
	Regexp    *string  `yaml:"regexp,omitempty"`
	GT        *Number  `yaml:"gt,omitempty"`
	GTE       *Number  `yaml:"gte,omitempty"`
	LT        *Number  `yaml:"lt,omitempty"`
	LTE       *Number  `yaml:"lte,omitempty"`

	re    *regexp.Regexp
	equal []string // EqualTexts, worked out by check
	line  int
}

// ContextFields are the event fields a condition can name besides properties
// (properties.NAME), in the order the documentation lists them.
func ContextFields() []string { return slices.Clone(contextFields[:]) }

// contextFields are ContextFields. device.type is the device type Waymark reads from the
// context (ingest.DeviceTypeKey: mobile, tablet, desktop, tv, console, bot), named as Segment's
// Common Fields spec names the member it is read from first (context.device.type), so that
// [device.type!=bot] leaves bots out (tester 35's F3). A bare "device" stays a property's name,
// as every name without a dot is.
var contextFields = [...]string{"page.path", "page.referrer", "campaign.source", "campaign.medium", "campaign.name", "device.type"}

// isContextField reports whether field is one of ContextFields, without making their list (a
// condition is tested on every event).
func isContextField(field string) bool { return slices.Contains(contextFields[:], field) }

// conditionOps are a condition's operators, as a journey map names them.
var conditionOps = []string{"equals", "one_of", "not_equals", "not_one_of", "prefix", "regexp", "gt", "gte", "lt", "lte"}

// check verifies that the condition names a field and sets exactly one operator, and compiles its
// regular expression: the rule for a condition wherever it comes from (a journey map, a step's
// filter).
func (c *Condition) check() error {
	set := 0
	for _, on := range []bool{c.Equals != nil, c.OneOf != nil, c.NotEquals != nil, c.NotOneOf != nil, c.Prefix != nil, c.Regexp != nil, c.GT != nil, c.GTE != nil, c.LT != nil, c.LTE != nil} {
		if on {
			set++
		}
	}
	switch {
	case c.Field == "":
		return fmt.Errorf("field: a condition needs the field it tests (a property name, or one of %s)", strings.Join(ContextFields(), ", "))
	case set != 1:
		return fmt.Errorf("condition on %q: want exactly one of %s; got %d", c.Field, strings.Join(conditionOps, ", "), set)
	case c.OneOf != nil && len(c.OneOf) == 0, c.NotOneOf != nil && len(c.NotOneOf) == 0:
		// An empty one_of matches no value, and its SQL, "IN ()", is no SQL (tester 29's F2).
		return fmt.Errorf("condition on %q: an empty list of values; list at least one", c.Field)
	}
	for _, n := range []*Number{c.GT, c.GTE, c.LT, c.LTE} {
		if n != nil {
			if err := n.check(); err != nil {
				return fmt.Errorf("condition on %q: %w", c.Field, err)
			}
		}
	}
	c.equal = c.EqualTexts()
	if c.Regexp != nil {
		// ClickHouse's match() reads a pattern with re2's dot_nl: "." matches a newline too, and
		// so it does here ((?s)), or a value holding one would enter a stage in Go (sessions,
		// live metrics) and not in the SQL (funnels, stages), or the other way round.
		re, err := regexp.Compile("(?s)" + *c.Regexp)
		if err != nil {
			return fmt.Errorf("regexp: %w", err)
		}
		if strings.IndexByte(*c.Regexp, 0) >= 0 {
			// ClickHouse 18.16's match() reads a pattern up to its first NUL only, so it would
			// test another expression than Go does (tester 19's T2).
			return fmt.Errorf("regexp: %q holds a NUL byte, which ClickHouse's match() takes for the end of the expression", *c.Regexp)
		}
		if namedGroupWithoutP(*c.Regexp) {
			return fmt.Errorf("regexp: %q names a group as (?<name>…), which Go reads but ClickHouse 18.16's re2 refuses: write (?P<name>…)", *c.Regexp)
		}
		c.re = re
	}
	return nil
}

// namedGroupWithoutP reports whether expr, a regular expression Go's regexp compiles, has a group
// named as (?<name>…): Go (since 1.22) and re2 (since 2023) read it, the re2 of ClickHouse 18.16
// refuses it, so a condition that runs in ClickHouse must write (?P<name>…). Escaped characters
// and character classes are skipped: `\(?<` and `[(?<]` name no group.
func namedGroupWithoutP(expr string) bool {
	inClass := false
	for i := 0; i < len(expr); i++ {
		switch {
		case expr[i] == '\\':
			i++ // the escaped byte
		case inClass:
			inClass = expr[i] != ']'
		case expr[i] == '[':
			inClass = true
			// A ] first in the class (after an optional ^) is a literal.
			if strings.HasPrefix(expr[i+1:], "^]") {
				i += 2
			} else if strings.HasPrefix(expr[i+1:], "]") {
				i++
			}
		case strings.HasPrefix(expr[i:], "(?<"):
			return true
		}
	}
	return false
}

// NewCondition returns the condition that field op values state, op being one of equals, one_of
// (values: the options, one or more), not_equals, not_one_of (one or more), prefix, regexp, gt, gte, lt, lte (value: a finite decimal
// number); every op but one_of and not_one_of takes exactly one value. A field that is not a context field
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
	if op == "not_one_of" && len(values) > 0 {
		c.NotOneOf = slices.Clone(values)
		return c, c.check()
	}
	if len(values) != 1 {
		return Condition{}, fmt.Errorf("%s takes one value, not %d", op, len(values))
	}
	value := values[0]
	switch op {
	case "equals":
		c.Equals = &value
	case "not_equals":
		c.NotEquals = &value
	case "prefix":
		c.Prefix = &value
	case "regexp":
		c.Regexp = &value
	case "gt", "gte", "lt", "lte":
		n := Number(value)
		if err := n.check(); err != nil {
			return Condition{}, err
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
		return Condition{}, fmt.Errorf("%q is not an operator (%s)", op, strings.Join(conditionOps, ", "))
	}
	return c, c.check()
}

// UnmarshalYAML checks the condition's fields and compiles its regexp, with line numbers.
func (c *Condition) UnmarshalYAML(n *yaml.Node) error {
	type plain Condition
	if err := knownFields(n, "condition", append([]string{"field"}, conditionOps...)...); err != nil {
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
	case "device.type":
		v := e.DeviceType()
		return v, v != ""
	}
	return e.Property(strings.TrimPrefix(c.Field, "properties."))
}

// EqualTexts returns the stored texts that equals (or one_of) accepts, or that not_equals (or
// not_one_of) refuses, nil for the other operators: each value as written and, for a value that is a JSON number, also its canonical
// text (ingest.CanonicalNumber), which is how JSON numbers are stored. So price=100, price=100.0
// and price=1e2 all find the number 100 however the client wrote it, and the string "100" too
// (it has the same text); the strings "100.0" and "1e2" are found by exactly their text. This is
// the one definition of equality: Matches uses it and the store renders it as SQL. The reasons
// are in docs/values.md. A value that is a JSON array is also taken in its canonical text
// (ingest.CanonicalArray), how arrays are stored: tags=["a", "b"] finds ["a","b"].
//
// Numbers stored before Waymark kept numbers in canonical form (schema version 9) keep the text
// the client sent: a filter written in that text (price=100.0) finds them; so do arrays stored
// before their canonical text (2026-12-05).
func (c *Condition) EqualTexts() []string {
	var values []string
	switch {
	case c.Equals != nil:
		values = []string{*c.Equals}
	case c.OneOf != nil:
		values = c.OneOf
	case c.NotEquals != nil:
		values = []string{*c.NotEquals}
	case c.NotOneOf != nil:
		values = c.NotOneOf
	default:
		return nil
	}
	texts := make([]string, 0, len(values))
	for _, v := range values {
		texts = append(texts, v)
		if n, ok := ingest.CanonicalNumber(v); ok && n != v {
			texts = append(texts, n)
		}
		if a, ok := ingest.CanonicalArray(v); ok && a != v {
			texts = append(texts, a)
		}
	}
	return texts
}

// Negated reports whether the condition is not_equals or not_one_of: it passes an event that
// lacks the field, and one whose value is none of EqualTexts.
func (c *Condition) Negated() bool { return c.NotEquals != nil || c.NotOneOf != nil }

// Matches reports whether e passes the condition. A property's value is its text and, for a list
// (a JSON array), each of its items (ingest.Event.ItemKeys: products.category names the category
// of each product of the list products): the condition matches when the text or any item does,
// each by the operator's own rule; not_equals and not_one_of pass when neither the text nor any
// item is one of the values (Mixpanel's and Amplitude's "is not" on a list: no item equals).
func (c *Condition) Matches(e *ingest.Event) bool {
	v, ok := c.value(e)
	hit := ok && c.matchesText(v)
	if !hit && len(e.ItemKeys) > 0 && !isContextField(c.Field) {
		key := ingest.PropertyKey(strings.TrimPrefix(c.Field, "properties."))
		for i, k := range e.ItemKeys {
			if k == key && c.matchesText(e.ItemValues[i]) {
				hit = true
				break
			}
		}
	}
	return hit != c.Negated()
}

// matchesText reports whether the text v passes the condition's operator, not_equals and
// not_one_of read as equals and one_of (Matches negates them).
func (c *Condition) matchesText(v string) bool {
	texts := c.equal
	if texts == nil { // a Condition built without check
		texts = c.EqualTexts()
	}
	switch {
	case c.Equals != nil || c.OneOf != nil || c.Negated():
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

// Bound returns a bound condition's operator (">", ">=", "<" or "<=") and its bound as a decimal,
// exactly as written (9007199254740993 stays that, where a float64 would read 9007199254740992).
// It returns "" for the other operators.
func (c *Condition) Bound() (string, Decimal) {
	op, n := "", (*Number)(nil)
	switch {
	case c.GT != nil:
		op, n = ">", c.GT
	case c.GTE != nil:
		op, n = ">=", c.GTE
	case c.LT != nil:
		op, n = "<", c.LT
	case c.LTE != nil:
		op, n = "<=", c.LTE
	default:
		return "", Decimal{}
	}
	d, ok := ParseDecimal(string(*n))
	if !ok {
		panic(fmt.Sprintf("BUG: bound %q of %q is not a decimal number", string(*n), c.Field))
	}
	return op, d
}

// Number is a bound's number (gt, gte, lt, lte) as written: a decimal number (NumberPattern)
// within float64's range, kept as text so that it compares exactly (ParseDecimal), never rounded
// through float64. In a journey map it is a YAML number (gt: 100, gte: 1e3); a quoted string, a
// hexadecimal or 1_000 form, .inf and .nan are refused.
type Number string

// check verifies that n is written as a value must be to compare with it (NumberPattern:
// strconv.ParseFloat alone also reads 1_000, 0x1p4 and Inf) and lies within float64's range, the
// bounds Waymark takes (a larger exponent would reach the values ParseDecimal holds to
// ±10^MaxExponentDigits).
func (n Number) check() error {
	if _, err := strconv.ParseFloat(string(n), 64); err != nil || !numberRE.MatchString(string(n)) {
		return fmt.Errorf("%q is not a finite number", string(n))
	}
	return nil
}

// UnmarshalYAML reads a YAML number's text as written.
func (n *Number) UnmarshalYAML(node *yaml.Node) error {
	if tag := node.ShortTag(); node.Kind != yaml.ScalarNode || tag != "!!int" && tag != "!!float" {
		return fmt.Errorf("line %d: %q is not a number", node.Line, node.Value)
	}
	if err := Number(node.Value).check(); err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	*n = Number(node.Value)
	return nil
}

// MarshalYAML writes the number as it was written, unquoted.
func (n Number) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: string(n)}, nil
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

// ParseNumber reads a stored value's text as a float64 by the one number rule of
// docs/values.md: the text is a number when all of it is a decimal number (NumberPattern), and
// ok is false for any other text, " 100", "1_0", "0x1p3", "Inf" and "NaN" included (which
// strconv.ParseFloat alone reads as numbers). A number beyond float64's range is ±Inf (1e400),
// one too small for it ±0. Every place that reads a stored text as a float (amounts, survey
// scores) reads it so; the bound operators compare the same texts exactly (ParseDecimal).
func ParseNumber(text string) (f float64, ok bool) {
	if !numberRE.MatchString(text) {
		return 0, false
	}
	f, _ = strconv.ParseFloat(text, 64) // only a range error is left: f is ±Inf or ±0
	return f, true
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

// decimalOf returns f, a finite float64, as a Decimal: the number the float64 is, for comparing
// a stored number's text with a bound Waymark holds as a float64 (a survey's scale,
// MaxOrderAmount) exactly.
func decimalOf(f float64) Decimal {
	d, _ := ParseDecimal(strconv.FormatFloat(f, 'g', -1, 64))
	return d
}

// Abs returns d's magnitude.
func (d Decimal) Abs() Decimal {
	d.Sign *= d.Sign
	return d
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

// OrderKey is a text whose byte order is d's order among decimals (Compare): "1" for 0; "2" and
// the magnitude (the point plus 5e17, 18 digits, then the digits) for a positive number; "0", the
// magnitude with each digit replaced by 9 minus it, and "~" for a negative one, which reverses
// the order of magnitudes (a shorter run of digits is a smaller magnitude, and "~" is above every
// digit). The store keeps it beside each list item that is a number, so that a bound compares
// items exactly in SQL as Matches does.
func (d Decimal) OrderKey() string {
	switch d.Sign {
	case 0:
		return "1"
	case 1:
		return "2" + d.magnitude()
	}
	m := []byte(d.magnitude())
	for i, c := range m {
		m[i] = '9' - (c - '0')
	}
	return "0" + string(m) + "~"
}

// magnitude is the order of |d| as text (OrderKey).
func (d Decimal) magnitude() string {
	return strconv.FormatInt(d.Point+5e17, 10) + d.Digits
}

// Key identifies the condition's meaning, for sharing SQL between steps.
func (c *Condition) Key() string {
	return fmt.Sprintf("%s|%q|%q|%q|%q|%q|%q|%v|%v|%v|%v", c.Field, deref(c.Equals), c.OneOf, deref(c.NotEquals), c.NotOneOf,
		deref(c.Prefix), deref(c.Regexp), boundKey(c.GT), boundKey(c.GTE), boundKey(c.LT), boundKey(c.LTE))
}

func deref(s *string) string {
	if s == nil {
		return "\x00"
	}
	return *s
}

// boundKey is a bound's exact value (so 100 and 1e2 are one), "-" when unset.
func boundKey(n *Number) string {
	if n == nil {
		return "-"
	}
	d, _ := ParseDecimal(string(*n))
	return fmt.Sprint(d)
}
