package store

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// A step is an event name, a stage name, or either with property filters in brackets:
//
//	Order Completed[revenue>=100;currency=EUR|USD]
//	Product Viewed[category=shoes]
//	awareness[campaign.medium=email]
//
// A filter is FIELD OP VALUE, filters separated by ";". FIELD is a property name or one of the
// context fields a journey map condition can test (page.path, campaign.medium, …). OP is one of
// = (equals; a|b|c: one of), != (not equals; a|b|c: none of, and an event without the field
// passes), ^= (prefix), ~= (regular expression), >, >=, <, <=. The operator is the filter's first
// unescaped character of filterOpChars and the longest operator there; such a character beside
// it (==, =!=, !~=, !^=, =>, <>, a value but a regular expression starting with one) and a
// filter with no field ([=x]) are refused, not read into the field or value. A value of a|b|c is
// never empty: [plan=A|] is refused, the empty value is asked for alone ([plan=]) or with
// others by a regular expression ([plan~=^(A|)$]). The filters mean
// what the same conditions mean in the journey map, and are added to every rule of a stage.
// Lists of steps (steps, exclude) separate them with ","; an exclusion may end in ":a-b".
//
// Escapes: a backslash before one of the characters the syntax gives a meaning to (stepSyntax:
// , ; | [ ] = < > ^ ~ ! : \ and white space) stands for that character itself, so that any stored
// name or value can be asked about: Checkout\, Step 2, [city=Washington\, D.C.], [coupon=A\|B],
// [expr=x\;y], Ratio\:1-2. A backslash before any other character is itself (C:\temp and the
// regular expression \d+ read as they always did). White space around a name, a field, a value
// or an entry of a list is dropped unless escaped: [sp=\ padded\ ] is the value " padded ". A
// regular expression (~=) gets its text with the backslashes kept: re2 reads an escaped
// punctuation character or space as that character, so \, \; \] mean there what they mean
// everywhere else. The journey map page escapes the names it sends (escapeName in app.js).
// PostHog, Amplitude and Mixpanel take steps as JSON arrays, where no separator needs escaping;
// a batch body may too (QueryParams marks the list parameters).

// stepSyntax are the characters, besides white space, that a backslash escapes in a step.
const stepSyntax = `,;|[]=<>^~!:\`

// escapeHint says how to write a name or value holding the syntax's characters, for errors.
const escapeHint = `a backslash makes the next , ; | [ ] = < > ^ ~ ! : \ or space part of a name or value: Checkout\, Step 2 or [city=Washington\, D.C.] (docs/queries.md)`

// EscapeStep returns name written as a step that means exactly name: every character of
// stepSyntax, and the white space at its ends (which a step drops), preceded by a backslash. It
// is how a client puts a stored event or stage name into steps, exclude or anchor; app.js's
// escapeName does the same.
func EscapeStep(name string) string {
	first := len(name) - len(strings.TrimLeftFunc(name, unicode.IsSpace))
	last := len(strings.TrimRightFunc(name, unicode.IsSpace))
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		if strings.ContainsRune(stepSyntax, r) || (i < first || i >= last) && unicode.IsSpace(r) {
			b.WriteByte('\\')
		}
		b.WriteString(name[i : i+n]) // the bytes as given, invalid UTF-8 included
		i += n
	}
	return b.String()
}

// TouchpointStep returns the step that asks about a touchpoint as the answers count it, from its
// label (labelSQL: an event's name, or for the page and screen calls without one their type
// marked as unnamedLabel): page or screen for those calls; else EscapeStep(label), after "event:"
// when a bare name would mean something else (parseStep): a stage of jm, or page or screen
// (unnamedLabels), which mean the calls without a name. It differs from the name only where the
// name pasted back as a step would mean something else: the event "event:x" is event\:x, the event
// "conversion" of a map with a stage conversion is event:conversion, a track event named "page"
// is event:page, "Checkout, Step 2" is Checkout\, Step 2. (Of a map with a stage named page, page
// asks about the stage, and no step about the pages without a name alone.) The answers give it
// beside each touchpoint (Ranked.Step, PathRow.Steps), and the CLI and the journey map page use
// it, so the rule is here alone.
func TouchpointStep(jm *sessionize.Map, label string) string {
	if typ, unnamed := unnamedLabel(label); unnamed {
		return typ
	}
	if _, stage := jm.Stage(label); stage || slices.Contains(unnamedLabels, label) {
		return "event:" + EscapeStep(label)
	}
	return EscapeStep(label)
}

// stepToken is one character of a step's text: an escaped one (written with a backslash before
// it) is never syntax and never dropped as white space.
type stepToken struct {
	r       rune
	esc     bool
	at, end int // its bytes in the text, the backslash included
}

// stepText is some of a step's text, read into tokens; its parts share the text.
type stepText struct {
	src  string
	toks []stepToken
}

func lexStep(s string) stepText {
	t := stepText{src: s}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == '\\' && i+n < len(s) {
			next, m := utf8.DecodeRuneInString(s[i+n:])
			if strings.ContainsRune(stepSyntax, next) || unicode.IsSpace(next) {
				t.toks = append(t.toks, stepToken{next, true, i, i + n + m})
				i += n + m
				continue
			}
		}
		t.toks = append(t.toks, stepToken{r, false, i, i + n})
		i += n
	}
	return t
}

func (t stepText) part(i, j int) stepText { return stepText{t.src, t.toks[i:j]} }

// is reports whether token i is the unescaped r.
func (t stepText) is(i int, r rune) bool {
	return i >= 0 && i < len(t.toks) && !t.toks[i].esc && t.toks[i].r == r
}

// index is the first unescaped r at or after from, -1 when none.
func (t stepText) index(r rune, from int) int {
	for i := from; i < len(t.toks); i++ {
		if t.is(i, r) {
			return i
		}
	}
	return -1
}

// split cuts t at each unescaped sep.
func (t stepText) split(sep rune) []stepText {
	var out []stepText
	start := 0
	for i := range t.toks {
		if t.is(i, sep) {
			out = append(out, t.part(start, i))
			start = i + 1
		}
	}
	return append(out, t.part(start, len(t.toks)))
}

// trim drops unescaped white space at both ends.
func (t stepText) trim() stepText {
	space := func(k stepToken) bool { return !k.esc && unicode.IsSpace(k.r) }
	i, j := 0, len(t.toks)
	for i < j && space(t.toks[i]) {
		i++
	}
	for j > i && space(t.toks[j-1]) {
		j--
	}
	return t.part(i, j)
}

// raw is t as written, escapes included.
func (t stepText) raw() string {
	if len(t.toks) == 0 {
		return ""
	}
	return t.src[t.toks[0].at:t.toks[len(t.toks)-1].end]
}

// text is what t means: its characters with the escapes' backslashes taken away. It keeps the
// bytes as given, invalid UTF-8 included.
func (t stepText) text() string {
	var b strings.Builder
	for _, k := range t.toks {
		at := k.at
		if k.esc {
			at++
		}
		b.WriteString(t.src[at:k.end])
	}
	return b.String()
}

// trimStep drops the unescaped white space around s, a step or a list of them.
func trimStep(s string) string { return lexStep(s).trim().raw() }

// splitList cuts a list of steps at its unescaped commas and trims each entry, which keeps its
// escapes: each is a step to parse (parseStep) and the name it is shown by.
func splitList(s string) []string {
	var out []string
	for _, e := range lexStep(s).split(',') {
		out = append(out, e.trim().raw())
	}
	return out
}

// JoinSteps writes steps as one list (steps, exclude) that splitList reads back into them: each
// step's unescaped commas escaped, and a backslash at its end, which the comma after it would
// escape, doubled. A batch body's JSON array of steps is read so.
func JoinSteps(steps []string) string {
	var b strings.Builder
	for i, s := range steps {
		if i > 0 {
			b.WriteByte(',')
		}
		t := lexStep(s)
		for j, k := range t.toks {
			switch {
			case t.is(j, ','):
				b.WriteString(`\,`)
			case j == len(t.toks)-1 && t.is(j, '\\'):
				b.WriteString(`\\`)
			default:
				b.WriteString(s[k.at:k.end])
			}
		}
	}
	return b.String()
}

var exclusionRange = regexp.MustCompile(`^\s*(\d+)\s*-\s*(\d+)$`)

// misspeltRange matches what after an exclusion's last colon was meant as a range of steps but
// is not one: two numbers with another dash (– —), dots, "to", "~" or space between them, a
// number with a hyphen on one side only, or two with a sign ("-1-2", "1-+2": tester 40's F2).
// No shop names an event "Checkout:1 to 3".
var misspeltRange = regexp.MustCompile(`^\s*(\d+\s*(–|—|‐|\.\.\.?|to|~|_|\s)\s*\d+|\d+\s*-|-\s*\d+|[+-]?\d+\s*-\s*[+-]?\d+)\s*$`)

// cutExclusionRange reads an exclusion, "Event" or "Event:a-b" (the last unescaped colon), into
// its step and the steps it lies between; ok is false when it has no range. misspelt is set when
// the text after that colon looks meant as a range but is none ("1–3", "1..3", "1 to 3", "1-").
func cutExclusionRange(x string) (step string, after, before int, ok, misspelt bool) {
	t := lexStep(x)
	i := len(t.toks) - 1
	for i >= 0 && !t.is(i, ':') {
		i--
	}
	if i < 0 {
		return x, 0, 0, false, false
	}
	tail := t.part(i+1, len(t.toks)).raw()
	m := exclusionRange.FindStringSubmatch(tail)
	if m == nil {
		return x, 0, 0, false, misspeltRange.MatchString(tail)
	}
	after, _ = strconv.Atoi(m[1])
	before, _ = strconv.Atoi(m[2])
	return t.part(0, i).trim().raw(), after, before, true, false
}

// stepFilterOps are the filter operators, longest first so ">=" is not read as ">".
var stepFilterOps = []struct{ op, key string }{
	{"!=", "not_equals"}, {">=", "gte"}, {"<=", "lte"}, {"^=", "prefix"}, {"~=", "regexp"}, {"=", "equals"}, {">", "gt"}, {"<", "lt"},
}

// MaxStepFilters is the most filters one step may carry: each becomes a condition in the SQL of
// every rule of the step, and ClickHouse limits the size of a query.
const MaxStepFilters = 10

// MaxFilterChoices is the most values one equality filter may list (`[p=a|b|c]`): each is a
// comparison in the SQL of every rule of the step, so with MaxTextBytes of one-letter choices on
// every step the largest query took 15–21 s on ClickHouse 18.16 (2 cores), against 2–3 s with
// this many. A longer list is a regular expression (`~=^(a|b|…)$`, one function call) or a prefix.
const MaxFilterChoices = 100

// nameKind says what a step's name may be: a stage or else an event (a bare name), or only one
// of them (the prefixes "event:" and "stage:").
type nameKind int

const (
	stageOrEvent nameKind = iota // a stage of the journey map if there is one so named, else an event
	eventOnly                    // "event:NAME": the event, even where a stage has its name
	stageOnly                    // "stage:NAME": the stage; no such stage is an error
)

// namePrefixes are the prefixes that say what a name is, unescaped before their colon.
var namePrefixes = []struct {
	word string
	kind nameKind
}{{"event", eventOnly}, {"stage", stageOnly}}

// parseStep reads a step into the name it asks about, what that name may be, and its filters
// (none when it has no brackets, or empty ones). A name is what comes before the first unescaped
// "[" of a step that ends in an unescaped "]"; otherwise the whole step, brackets included. A name
// written "event:NAME" or "stage:NAME" is NAME, only as an event or only as a stage (an event
// named like a stage of the map can be asked about so; "event\:x" is the name "event:x").
func parseStep(step string) (name string, kind nameKind, filters []sessionize.Condition, err error) {
	t := lexStep(step).trim()
	n := len(t.toks)
	nameText := t
	if i := t.index('[', 0); i > 0 && t.is(n-1, ']') {
		nameText = t.part(0, i).trim()
		if filters, err = parseFilters(t.part(i+1, n-1)); err != nil {
			return "", 0, nil, err
		}
	}
	for _, p := range namePrefixes {
		w := len(p.word)
		if len(nameText.toks) > w && nameText.is(w, ':') && nameText.part(0, w).raw() == p.word {
			if rest := nameText.part(w+1, len(nameText.toks)).trim(); len(rest.toks) > 0 {
				return rest.text(), p.kind, filters, nil
			}
		}
	}
	return nameText.text(), stageOrEvent, filters, nil
}

// parseFilters reads a step's filters as journey-map conditions (sessionize.NewCondition), so
// they are checked and mean exactly what the map's conditions mean. At most MaxStepFilters.
func parseFilters(filters stepText) ([]sessionize.Condition, error) {
	var out []sessionize.Condition
	for _, f := range filters.split(';') {
		if f = f.trim(); len(f.toks) == 0 {
			continue
		}
		if len(out) == MaxStepFilters {
			return nil, fmt.Errorf("more than %d filters", MaxStepFilters)
		}
		i, op, key := filterOp(f)
		switch {
		case i < 0:
			return nil, fmt.Errorf("filter %q: want FIELD OP VALUE with OP one of =, !=, ^=, ~=, >, >=, <, <=; %s", f.raw(), escapeHint)
		case op == "":
			return nil, fmt.Errorf("filter %q: %q is not an operator; %s", f.raw(), opRun(f, i), opHint)
		case len(f.part(0, i).trim().toks) == 0:
			return nil, fmt.Errorf("filter %q: no field before the operator %s; want FIELD OP VALUE, the field a property name or one of %s", f.raw(), op, strings.Join(sessionize.ContextFields(), ", "))
		}
		if err := strayBracket(f); err != nil {
			return nil, err
		}
		field, v := fieldName(f.part(0, i)), f.part(i+len(op), len(f.toks)).trim()
		if field == "properties." { // quoted as written, not as the property "" (tester 50's F10)
			return nil, fmt.Errorf("filter %q: properties. takes a property's name after it (properties.plan), or write the name alone (plan)", f.raw())
		}
		if key != "regexp" && startsWithOpChar(v) { // ==, =!=, <>, =>: a regular expression may start with ^
			return nil, fmt.Errorf("filter %q: %q is not an operator; %s", f.raw(), op+opRun(v, 0), opHint)
		}
		var values []string
		switch key {
		case "regexp":
			values = []string{v.raw()}
		case "equals", "not_equals":
			alts := v.split('|')
			for k, o := range alts {
				o = o.trim()
				switch {
				case len(alts) > 1 && len(o.toks) == 0:
					return nil, fmt.Errorf("filter %q: value %d of %d is empty (a \"|\" at an end, or two in a row); the empty value is asked for alone, [%s%s], and with others by a regular expression, [%s~=^(a|)$]", f.raw(), k+1, len(alts), field, op, field)
				case startsWithOpChar(o):
					return nil, fmt.Errorf("filter %q: value %q starts with %q, which is no value of a list of %s; %s", f.raw(), o.raw(), opRun(o, 0), op, opHint)
				}
				values = append(values, o.text())
			}
			if len(values) > MaxFilterChoices {
				return nil, fmt.Errorf("filter %.60q…: %d values, at most %d; match more with a regular expression (%s~=^(a|b|…)$) or a prefix (^=)", f.raw(), len(values), MaxFilterChoices, field)
			}
			if len(values) > 1 {
				key = map[string]string{"equals": "one_of", "not_equals": "not_one_of"}[key]
			}
		default:
			values = []string{v.text()}
		}
		c, err := sessionize.NewCondition(field, key, values...)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", f.raw(), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		// "Product Viewed[]" is most likely a filter left out, not the name alone.
		return nil, fmt.Errorf("no filter between [ and ]; write NAME[FIELD OP VALUE], or the name alone for every such event; %s", escapeHint)
	}
	return out, nil
}

// fieldName is the name t writes, a filter's field or a breakdown's property or trait: the
// white space around it dropped unless escaped, and the escapes' backslashes taken away
// ([coupon\ =x] and breakdown=property:coupon\  name the property "coupon "). One rule for a
// name wherever it is written (docs/queries.md, "Escapes").
func fieldName(t stepText) string { return t.trim().text() }

// bracketHint says how a step writes several filters, and a bracket in a name or value.
const bracketHint = `one pair of brackets holds all of a step's filters, separated by ";" ([a=1;b=2], not [a=1][b=2]); write \[ or \] for a bracket in a field or value`

// strayBracket refuses an unescaped "]" in filter f that closes no unescaped "[" before it in f,
// and an unescaped "[" that no "]" closes. A step's filters end at its last "]", so [a=1][b=2] or
// a doubled "]" would otherwise be read into a value that matches nothing, a silent zero. Brackets
// that pair up are the value's own, as they always were: [tag=[new]], and a regular expression's
// character classes, [sku~=^[a-z]+$].
func strayBracket(f stepText) error {
	open := 0
	for i := range f.toks {
		switch {
		case f.is(i, '['):
			open++
		case f.is(i, ']') && open == 0:
			return fmt.Errorf("filter %q: an unescaped ']' that closes no '['; %s", f.raw(), bracketHint)
		case f.is(i, ']'):
			open--
		}
	}
	if open > 0 {
		return fmt.Errorf("filter %q: an unescaped '[' that no ']' closes; %s", f.raw(), bracketHint)
	}
	return nil
}

// filterOpChars are the characters the filter operators are written with. The operator is the
// filter's first unescaped one and the longest operator there; an unescaped one beside it, in the
// field or at the start of a value, makes no operator (==, =!=, !~=, !^=, <>, =>) and is refused
// rather than read as part of the field or the value, which would match something else than
// meant, or nothing. A field or value holding one there escapes it ([wow\!=x], [v=\=x]).
const filterOpChars = "=!<>^~"

// opHint says what the operators are, for errors.
const opHint = `the operators are =, !=, ^=, ~=, >, >=, <, <=; a field or value with one of = ! < > ^ ~ next to the operator writes it with a backslash ([wow\!=x] is the property wow! equals x, [v=\=x] the value =x)`

// isOpChar reports whether token i of t is an unescaped character of filterOpChars.
func (t stepText) isOpChar(i int) bool {
	return i >= 0 && i < len(t.toks) && !t.toks[i].esc && strings.ContainsRune(filterOpChars, t.toks[i].r)
}

// startsWithOpChar reports whether t starts with an unescaped character of filterOpChars.
func startsWithOpChar(t stepText) bool { return t.isOpChar(0) }

// opRun is the run of unescaped operator characters (filterOpChars) of t from token i, as written.
func opRun(t stepText, i int) string {
	j := i
	for t.isOpChar(j) {
		j++
	}
	return t.part(i, j).raw()
}

// filterOp finds a filter's operator: at its first unescaped character of filterOpChars, the
// longest operator there. i is -1 when the filter has no such character; op and key are "" when
// what stands at i is no operator (!~=, ~x).
func filterOp(f stepText) (i int, op, key string) {
	for i = range f.toks {
		if !f.isOpChar(i) {
			continue
		}
		for _, o := range stepFilterOps {
			if f.is(i, rune(o.op[0])) && (len(o.op) == 1 || f.is(i+1, rune(o.op[1]))) {
				return i, o.op, o.key
			}
		}
		return i, "", ""
	}
	return -1, "", ""
}

// stepRules resolves a step: a stage of the journey map means its rules, "page" and "screen"
// the calls without a name, anything else an event name (a prefix, "event:" or "stage:", picks
// one; see parseStep); filters are added to every rule.
// Unparsable filters are reported by checkSteps, which runs first.
func stepRules(jm *sessionize.Map, step string) []sessionize.Rule {
	name, kind, conds, _ := parseStep(step)
	var rules []sessionize.Rule
	switch st, ok := jm.Stage(name); {
	case ok && kind != eventOnly:
		rules = slices.Clone(st.Rules)
	case slices.Contains(unnamedLabels, name) && kind == stageOrEvent:
		rules = []sessionize.Rule{{Types: []string{name}, Events: []string{""}}} // an event so named is event:page
	default:
		rules = []sessionize.Rule{{Events: []string{name}}}
	}
	if len(conds) == 0 {
		return rules
	}
	for i := range rules {
		rules[i].Where = append(slices.Clone(rules[i].Where), conds...)
	}
	return rules
}

// stepName is the name a step asks about, and what it may be.
type stepName struct {
	name string
	kind nameKind
}

// checkSteps reports the first step whose filters cannot be read, naming param, and returns the
// names the steps ask about, the stored keys of the properties their filters test
// (ingest.PropertyKey), and their regular
// expressions (each with the step it is in).
func checkSteps(param string, steps ...string) (names []stepName, props []string, regexps map[string]string, err error) {
	for _, s := range steps {
		name, kind, conds, err := parseStep(s)
		if err != nil {
			return nil, nil, nil, paramErrorf(param, "%.100s: %w", s, err)
		}
		names = append(names, stepName{name, kind})
		props, regexps = conditionNeeds(conds, s, props, regexps)
	}
	return names, props, regexps, nil
}

// conditionNeeds adds to props the stored keys of the properties conds test (ingest.PropertyKey)
// and to regexps their regular expressions, each with where, the text they were written in.
func conditionNeeds(conds []sessionize.Condition, where string, props []string, regexps map[string]string) ([]string, map[string]string) {
	for _, c := range conds {
		if name, ok := strings.CutPrefix(c.Field, "properties."); ok {
			props = append(props, ingest.PropertyKey(name))
		}
		if c.Regexp != nil {
			if regexps == nil {
				regexps = map[string]string{}
			}
			regexps[*c.Regexp] = where
		}
	}
	return props, regexps
}

// parseFilterParam reads a parameter that is filters alone (sessions' filter): what a step's
// brackets hold, with or without the brackets.
func parseFilterParam(s string) ([]sessionize.Condition, error) {
	t := lexStep(s).trim()
	if n := len(t.toks); n >= 2 && t.is(0, '[') && t.is(n-1, ']') {
		t = t.part(1, n-1)
	}
	return parseFilters(t)
}
