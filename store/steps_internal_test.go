package store

import (
	"fmt"
	"net/url"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

func TestStepFilters(t *testing.T) {
	t.Parallel()
	ev := func(kv ...string) *ingest.Event {
		e := &ingest.Event{Type: "track", Event: "Order Completed", PagePath: "/checkout/pay"}
		for i := 0; i < len(kv); i += 2 {
			e.PropertyKeys, e.PropertyValues = append(e.PropertyKeys, kv[i]), append(e.PropertyValues, kv[i+1])
		}
		return e
	}
	tests := []struct {
		filters string
		event   *ingest.Event
		match   bool
		err     string
	}{
		{"revenue>=100", ev("revenue", "150"), true, ""},
		{"revenue>=100", ev("revenue", "99.5"), false, ""},
		{"revenue>100;currency=EUR|USD", ev("currency", "USD", "revenue", "101"), true, ""},
		{"revenue>100;currency=EUR|USD", ev("currency", "GBP", "revenue", "101"), false, ""},
		{"currency=EUR", ev(), false, ""}, // a missing property fails every operator
		{"page.path^=/checkout", ev(), true, ""},
		{"coupon~=^SUMMER[0-9]+$", ev("coupon", "SUMMER24"), true, ""},
		// a bound is kept exactly as written: above 2^53 a float64 would round it
		{"id>=9007199254740993", ev("id", "9007199254740992"), false, ""},
		{"id<9007199254740993", ev("id", "9007199254740992"), true, ""},
		{"id<=12345678901234567890", ev("id", "12345678901234567890"), true, ""},
		{"id>12345678901234567890", ev("id", "12345678901234567890"), false, ""},
		{"revenue>0.1", ev("revenue", "0.1000000000000000055511151231257827"), true, ""},
		{"revenue<=abc", nil, false, "is not a finite number"},
		{"revenue>NaN", nil, false, "is not a finite number"},
		{"revenue<-Inf", nil, false, "is not a finite number"},
		{"revenue>1e400", nil, false, "is not a finite number"},
		{"revenue>=1_000", nil, false, "is not a finite number"},
		{"revenue>=0x1p4", nil, false, "is not a finite number"},
		{"revenue<0x1_0p0", nil, false, "is not a finite number"},
		{strings.Repeat("a=1;", MaxStepFilters+1), nil, false, "more than 10 filters"},
		{"sku=" + strings.Repeat("x|", MaxFilterChoices-1) + "y", ev("sku", "y"), true, ""},
		{"sku=" + strings.Repeat("x|", MaxFilterChoices) + "y", nil, false, "101 values, at most 100"},
		{"revenue", nil, false, "want FIELD OP VALUE"},
		{"code~=(", nil, false, "regexp"},
	}
	for _, tt := range tests {
		conds, err := parseFilters(lexStep(tt.filters))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one about %q", tt.filters, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.filters, err)
		}
		match := true
		for i := range conds {
			match = match && conds[i].Matches(tt.event)
		}
		if match != tt.match {
			t.Errorf("%s on %+v: match %v, want %v", tt.filters, tt.event, match, tt.match)
		}
	}
}

// TestEveryContextFieldHasAColumn: a context field the journey map's conditions can test
// (sessionize.ContextFields) must be readable in SQL too, or a step filter on it would test a
// property of that name instead.
func TestEveryContextFieldHasAColumn(t *testing.T) {
	t.Parallel()
	for _, f := range sessionize.ContextFields() {
		if contextColumn(f) == "" {
			t.Errorf("context field %s has no column", f)
		}
	}
	if got := contextColumn("properties.page.path"); got != "" {
		t.Errorf("properties.page.path reads column %q, want a property", got)
	}
}

// condText describes a condition as "field op values" for the tables below.
func condText(c sessionize.Condition) string {
	switch {
	case c.Equals != nil:
		return fmt.Sprintf("%s equals %q", c.Field, *c.Equals)
	case c.OneOf != nil:
		return fmt.Sprintf("%s one_of %q", c.Field, c.OneOf)
	case c.NotEquals != nil:
		return fmt.Sprintf("%s not_equals %q", c.Field, *c.NotEquals)
	case c.NotOneOf != nil:
		return fmt.Sprintf("%s not_one_of %q", c.Field, c.NotOneOf)
	case c.Prefix != nil:
		return fmt.Sprintf("%s prefix %q", c.Field, *c.Prefix)
	case c.Regexp != nil:
		return fmt.Sprintf("%s regexp %q", c.Field, *c.Regexp)
	case c.GTE != nil:
		return fmt.Sprintf("%s gte %v", c.Field, *c.GTE)
	case c.GT != nil:
		return fmt.Sprintf("%s gt %v", c.Field, *c.GT)
	}
	return c.Field + " ?"
}

// TestParseStep: the escapes of steps.go reach every name and value, and steps without them
// read as they always did.
func TestParseStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		step    string
		name    string
		kind    nameKind
		filters []string
		err     string
	}{
		{step: "Order Completed", name: "Order Completed"},
		{step: "  Order Completed\t", name: "Order Completed"},
		{step: `Checkout\, Step 2`, name: "Checkout, Step 2"},
		{step: "Checkout, Step 2", name: "Checkout, Step 2"}, // one step: only a list splits at commas
		{step: `A\[b\]`, name: "A[b]"},
		{step: `A[b\]`, name: "A[b]"}, // no unescaped "]" at the end: all name
		{step: "a[b", name: "a[b"},
		{step: "[x]", name: "[x]"},
		{step: "X[]", err: "no filter between [ and ]"}, // a filter left out (the tenth tester's L3)
		{step: "X[ ; ]", err: "no filter between [ and ]"},
		{step: `C:\temp`, name: `C:\temp`},     // a backslash before an ordinary character is itself
		{step: `a\\b`, name: `a\b`},            // an escaped backslash
		{step: `x\`, name: `x\`},               // a backslash at the end is itself
		{step: `\ padded\ `, name: " padded "}, // escaped spaces stay
		{step: "Order Completed[revenue>=100;currency=EUR|USD]", name: "Order Completed",
			filters: []string{`properties.revenue gte 100`, `properties.currency one_of ["EUR" "USD"]`}},
		{step: `X[city=Washington\, D.C.]`, name: "X", filters: []string{`properties.city equals "Washington, D.C."`}},
		{step: "X[city=Washington, D.C.]", name: "X", filters: []string{`properties.city equals "Washington, D.C."`}},
		{step: `X[coupon=A\|B]`, name: "X", filters: []string{`properties.coupon equals "A|B"`}},
		{step: `X[coupon=A|B\|C]`, name: "X", filters: []string{`properties.coupon one_of ["A" "B|C"]`}},
		{step: `X[expr=x\;y]`, name: "X", filters: []string{`properties.expr equals "x;y"`}},
		{step: "X[expr=x;y]", err: "want FIELD OP VALUE"},
		{step: "X[sp= padded ]", name: "X", filters: []string{`properties.sp equals "padded"`}},
		{step: `X[sp=\ padded\ ]`, name: "X", filters: []string{`properties.sp equals " padded "`}},
		{step: `X[v=a\]]`, name: "X", filters: []string{`properties.v equals "a]"`}},
		{step: `X[v=a\\]`, name: "X", filters: []string{`properties.v equals "a\\"`}},
		{step: `X[a\=b=c]`, name: "X", filters: []string{`properties.a=b equals "c"`}},
		{step: `X[a\>b>1]`, name: "X", filters: []string{`properties.a>b gt 1`}},
		// operators that look like typos are refused, not read into the field or the value
		{step: "X[a=>1]", err: `"=>" is not an operator; the operators are =, !=`},
		{step: `X[a=\>1]`, name: "X", filters: []string{`properties.a equals ">1"`}},
		{step: "X[qty==3]", err: `"==" is not an operator`},
		{step: "X[qty = =3]", err: `"==" is not an operator`},
		{step: "X[qty=!=3]", err: `"=!=" is not an operator`},
		{step: "X[qty!~=3]", err: `"!~=" is not an operator`},
		{step: "X[qty!^=3]", err: `"!^=" is not an operator`},
		{step: "X[qty<>3]", err: `"<>" is not an operator`},
		{step: "X[qty>==3]", err: `">==" is not an operator`},
		{step: "X[qty^=^3]", err: `"^=^" is not an operator`},
		{step: "X[a~b=1]", err: `"~" is not an operator`},
		{step: "X[plan=A|!B]", err: `value "!B" starts with "!"`},
		{step: `X[qty=\=3]`, name: "X", filters: []string{`properties.qty equals "=3"`}},
		{step: `X[qty\!\~=3]`, name: "X", filters: []string{`properties.qty!~ equals "3"`}},
		{step: `X[qty!\~=3]`, err: `"!" is not an operator`},
		{step: "X[sku~==x]", name: "X", filters: []string{`properties.sku regexp "=x"`}}, // a regular expression's own
		{step: "X[=x]", err: "no field before the operator ="},
		{step: "X[ != x]", err: "no field before the operator !="},
		{step: "X[>=5]", err: "no field before the operator >="},
		// properties. with no name after it is quoted as written, not as the property "" (tester
		// 50's F10); a property named property: is a name
		{step: "X[properties.=x]", err: `filter "properties.=x": properties. takes a property's name after it`},
		{step: "X[ properties. >1]", err: `filter "properties. >1": properties. takes a property's name after it`},
		{step: "X[properties.plan=x]", name: "X", filters: []string{`properties.plan equals "x"`}},
		{step: "X[property:=x]", name: "X", filters: []string{`properties.property: equals "x"`}},
		// an empty value among others is refused; the empty value alone is asked for so
		{step: "X[plan=A|]", err: `value 2 of 2 is empty`},
		{step: "X[plan=|A]", err: `value 1 of 2 is empty`},
		{step: "X[plan=A||B]", err: `value 2 of 3 is empty`},
		{step: "X[plan!=A| ]", err: `value 2 of 2 is empty`},
		{step: "X[plan=]", name: "X", filters: []string{`properties.plan equals ""`}},
		{step: "X[plan!=]", name: "X", filters: []string{`properties.plan not_equals ""`}},
		{step: `X[plan=A|\ ]`, name: "X", filters: []string{`properties.plan one_of ["A" " "]`}},
		{step: "X[plan = A | B ]", name: "X", filters: []string{`properties.plan one_of ["A" "B"]`}},
		{step: "X[coupon!=A]", name: "X", filters: []string{`properties.coupon not_equals "A"`}},
		{step: "X[coupon != A|B]", name: "X", filters: []string{`properties.coupon not_one_of ["A" "B"]`}},
		{step: `X[coupon!=A\|B]`, name: "X", filters: []string{`properties.coupon not_equals "A|B"`}},
		{step: `X[wow\!=x]`, name: "X", filters: []string{`properties.wow! equals "x"`}}, // a field ending in "!"
		{step: "X[a=b!=c]", name: "X", filters: []string{`properties.a equals "b!=c"`}},  // the first operator
		{step: "Wow!", name: "Wow!"},
		{step: `Wow\!`, name: "Wow!"},
		{step: `X[path=C:\temp]`, name: "X", filters: []string{`properties.path equals "C:\\temp"`}},
		{step: `X[page.path^=/a\;b]`, name: "X", filters: []string{`page.path prefix "/a;b"`}},
		{step: `X[p~=^\d+\,\;\]$]`, name: "X", filters: []string{`properties.p regexp "^\\d+\\,\\;\\]$"`}},
		{step: `X[p~=a\|b]`, name: "X", filters: []string{`properties.p regexp "a\\|b"`}},
		{step: "X[a=1; b=2;]", name: "X", filters: []string{`properties.a equals "1"`, `properties.b equals "2"`}},
		{step: "X[revenue]", err: "backslash"},
		// an unescaped "]" closes an unescaped "[" of its filter, or the step meant something else
		{step: "Product Viewed[category=4756105][product_id=1]", err: `unescaped ']' that closes no '['; one pair of brackets holds all`},
		{step: "Product Viewed[category=4756105]]", err: `unescaped ']' that closes no '['`},
		{step: "X[a=1] [b=2]", err: `unescaped ']' that closes no '['`},
		{step: "X[a=1;b=2]]", err: `write \[ or \]`},
		{step: "X[sku~=a][b=1]", err: `unescaped ']' that closes no '['`},
		{step: "X[v=[a]", err: `unescaped '[' that no ']' closes`},
		{step: "X[v=a[;w=]b]", err: `unescaped '[' that no ']' closes`},
		{step: "X[tag=[new]]", name: "X", filters: []string{`properties.tag equals "[new]"`}},
		{step: "X[a[0]=1]", name: "X", filters: []string{`properties.a[0] equals "1"`}},
		{step: `X[v=\[a\]]`, name: "X", filters: []string{`properties.v equals "[a]"`}},
		{step: `X[v=a\]]`, name: "X", filters: []string{`properties.v equals "a]"`}},
		{step: "X[sku~=^[a-z]+$]", name: "X", filters: []string{`properties.sku regexp "^[a-z]+$"`}}, // a regexp's classes
		{step: "event:conversion", name: "conversion", kind: eventOnly},
		{step: " stage: awareness [a=1]", name: "awareness", kind: stageOnly, filters: []string{`properties.a equals "1"`}},
		{step: `event\:conversion`, name: "event:conversion"},
		{step: "events:x", name: "events:x"},
		{step: "Event:x", name: "Event:x"},
		{step: "event:", name: "event:"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			name, kind, conds, err := parseStep(tt.step)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one about %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range conds {
				got = append(got, condText(c))
			}
			if name != tt.name || kind != tt.kind || !slices.Equal(got, tt.filters) {
				t.Errorf("name %q (kind %d) filters %q, want %q (kind %d) %q", name, kind, got, tt.name, tt.kind, tt.filters)
			}
		})
	}
}

// TestStepRegexpEscapes: in a regular expression an escaped separator means the character, as
// everywhere else.
func TestStepRegexpEscapes(t *testing.T) {
	t.Parallel()
	_, _, conds, err := parseStep(`X[p~=^a\,b\;c\|d\]e\ $]`)
	if err != nil {
		t.Fatal(err)
	}
	e := &ingest.Event{Event: "X", PropertyKeys: []string{"p"}, PropertyValues: []string{"a,b;c|d]e "}}
	if !conds[0].Matches(e) {
		t.Errorf("%s does not match %q", *conds[0].Regexp, e.PropertyValues[0])
	}
}

func TestSplitList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		list string
		want []string
	}{
		{"Product Viewed,Order Completed", []string{"Product Viewed", "Order Completed"}},
		{" a , b ", []string{"a", "b"}},
		{`Checkout\, Step 2,Order Completed`, []string{`Checkout\, Step 2`, "Order Completed"}},
		{`X[city=Washington\, D.C.],Y`, []string{`X[city=Washington\, D.C.]`, "Y"}},
		{`a\\,b`, []string{`a\\`, "b"}},
		{`a\ ,b`, []string{`a\ `, "b"}},
		{`C:\temp,x`, []string{`C:\temp`, "x"}},
		{"a,,b", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		if got := splitList(tt.list); !slices.Equal(got, tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.list, got, tt.want)
		}
	}
}

func TestCutExclusionRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		x             string
		step          string
		after, before int
		ok, misspelt  bool
	}{
		{"Coupon Removed", "Coupon Removed", 0, 0, false, false},
		{"Coupon Removed:1-2", "Coupon Removed", 1, 2, true, false},
		{"Coupon Removed : 1 - 3", "Coupon Removed", 1, 3, true, false},
		{"V[a>1]:1-2", "V[a>1]", 1, 2, true, false},
		{`Ratio\:1-2`, `Ratio\:1-2`, 0, 0, false, false},
		{`Ratio\:1-2:2-3`, `Ratio\:1-2`, 2, 3, true, false},
		{`a\\:1-2`, `a\\`, 1, 2, true, false},
		{"a:b", "a:b", 0, 0, false, false},
		{"Checkout:2", "Checkout:2", 0, 0, false, false}, // a name of its own
		{"Coupon Removed:1–3", "Coupon Removed:1–3", 0, 0, false, true},
		{"Coupon Removed:1..3", "Coupon Removed:1..3", 0, 0, false, true},
		{"Coupon Removed:1 to 3", "Coupon Removed:1 to 3", 0, 0, false, true},
		{"Coupon Removed:2-", "Coupon Removed:2-", 0, 0, false, true},
		{"Coupon Removed:-3", "Coupon Removed:-3", 0, 0, false, true},
		{"Coupon Removed:-1-2", "Coupon Removed:-1-2", 0, 0, false, true}, // tester 40's F2
		{"Coupon Removed:1-+2", "Coupon Removed:1-+2", 0, 0, false, true},
		{"Coupon Removed:1--2", "Coupon Removed:1--2", 0, 0, false, true},
		{"Coupon Removed:+1-2", "Coupon Removed:+1-2", 0, 0, false, true},
		{`Coupon Removed\:1–3`, `Coupon Removed\:1–3`, 0, 0, false, false}, // escaped: a name
	}
	for _, tt := range tests {
		step, after, before, ok, misspelt := cutExclusionRange(tt.x)
		if step != tt.step || after != tt.after || before != tt.before || ok != tt.ok || misspelt != tt.misspelt {
			t.Errorf("cutExclusionRange(%q) = %q %d %d %v %v, want %q %d %d %v %v", tt.x, step, after, before, ok, misspelt, tt.step, tt.after, tt.before, tt.ok, tt.misspelt)
		}
	}
}

// FuzzEscapeStep: any name, escaped, is read back as itself, alone, in a list and as an
// exclusion with a range.
func FuzzEscapeStep(f *testing.F) {
	for _, s := range []string{"Checkout, Step 2", " padded ", "A|B[x]", `C:\temp`, `a\,b`, "\xff,", "x;y=z:1-2", "\u00a0", `\`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		esc := EscapeStep(name)
		if got, _, conds, err := parseStep(esc); got != name || conds != nil || err != nil {
			t.Fatalf("parseStep(EscapeStep(%q) = %q) = %q %v %v", name, esc, got, conds, err)
		}
		if name == "" {
			return
		}
		list := splitList(esc + "," + esc)
		if len(list) != 2 || list[0] != esc || list[1] != esc {
			t.Fatalf("splitList of %q twice: %q", esc, list)
		}
		if step, after, before, ok, _ := cutExclusionRange(esc + ":1-2"); step != esc || after != 1 || before != 2 || !ok {
			t.Fatalf("cutExclusionRange(%q) = %q %d %d %v", esc+":1-2", step, after, before, ok)
		}
	})
}

// FuzzJoinSteps: steps joined into one list (a batch's JSON array) are read back as the same
// steps, meaning the same names and filters.
func FuzzJoinSteps(f *testing.F) {
	f.Add("Checkout, Step 2", `a\`)
	f.Add("X[city=Washington, D.C.]", `Gift\[wrap\]`)
	f.Add(`X[p~=\d+,x]`, ` y\ `)
	f.Fuzz(func(t *testing.T, a, b string) {
		if trimStep(a) == "" || trimStep(b) == "" {
			return
		}
		list := splitList(JoinSteps([]string{a, b}))
		if len(list) != 2 {
			t.Fatalf("JoinSteps(%q, %q) = %q: %d entries", a, b, JoinSteps([]string{a, b}), len(list))
		}
		for i, step := range []string{a, b} {
			if got, want := stepMeaning(list[i]), stepMeaning(step); got != want {
				t.Fatalf("%q joined reads %q: %s, want %s", step, list[i], got, want)
			}
		}
	})
}

// stepMeaning describes what a step asks about, for comparing two ways of writing one; a
// regular expression by what it matches (JoinSteps escapes its commas, \, meaning a comma).
func stepMeaning(step string) string {
	name, _, conds, err := parseStep(step)
	out := fmt.Sprintf("%q", name)
	for _, c := range conds {
		if c.Regexp != nil {
			re, err := syntax.Parse(*c.Regexp, syntax.Perl)
			if err != nil {
				out += " bad regexp"
				continue
			}
			out += " " + c.Field + " regexp " + re.Simplify().String()
			continue
		}
		out += " " + condText(c)
	}
	if err != nil {
		out += " error"
	}
	return out
}

// TestTouchpointStep: a touchpoint's step asks about what the answers counted under its name:
// its own name only where that is already so, else escaped, or after event: when a stage of the
// map has the name.
func TestTouchpointStep(t *testing.T) {
	t.Parallel()
	jm, err := sessionize.ParseMap(sessionize.DefaultMapYAML())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, want string }{
		{"Product Viewed", "Product Viewed"},
		{ingest.Internal + "page", "page"},     // a page sent without a name
		{ingest.Internal + "screen", "screen"}, // a screen sent without a name
		{"page", "event:page"},                 // a track event named page
		{"screen", "event:screen"},
		{"event:x", `event\:x`},
		{"stage:awareness", `stage\:awareness`},
		{"conversion", "event:conversion"},
		{"Checkout, Step 2", `Checkout\, Step 2`},
		{"Shoes[size=42]", `Shoes\[size\=42\]`},
		{" padded ", `\ padded\ `},
	} {
		got := TouchpointStep(jm, tt.name)
		if got != tt.want {
			t.Errorf("TouchpointStep(%q) = %q, want %q", tt.name, got, tt.want)
		}
		// Read back, it is the event of that name, or the calls of that type without a name.
		rules := stepRules(jm, got)
		want := sessionize.Rule{Events: []string{tt.name}}
		if typ, unnamed := unnamedLabel(tt.name); unnamed {
			want = sessionize.Rule{Types: []string{typ}, Events: []string{""}}
		}
		if len(rules) != 1 || !slices.Equal(rules[0].Events, want.Events) || !slices.Equal(rules[0].Types, want.Types) {
			t.Errorf("step %q asks about %+v, want %+v", got, rules, want)
		}
	}
}

// TestBreakdownNamesAreReadAsFilterFields is tester 35's F10: breakdown=property:NAME trimmed a
// trailing space but kept a leading one and had no escape, so property:coupon%20 silently meant
// the property "coupon" and the property "coupon " could not be broken down. A breakdown's name
// is read as a filter's field is (fieldName), and the answer writes it so that it reads back.
func TestBreakdownNamesAreReadAsFilterFields(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ breakdown, by, name string }{
		{"property:coupon", "property", "coupon"},
		{"property:coupon ", "property", "coupon"},
		{"property: coupon", "property", "coupon"},
		{` property:coupon\ `, "property", "coupon "},
		{`property:\ coupon`, "property", " coupon"},
		{`property:a\,b`, "property", "a,b"},
		{`property:a:b`, "property", "a:b"},
		{`property:C:\temp`, "property", `C:\temp`},
		{`trait: plan\ `, "trait", "plan "},
		{"device", "device", ""},
	} {
		q, err := ParseFunnelQuery(url.Values{"steps": {"V"}, "breakdown": {tt.breakdown}})
		if err != nil {
			t.Fatalf("%q: %v", tt.breakdown, err)
		}
		if q.Breakdown.By != tt.by || q.Breakdown.Name != tt.name {
			t.Errorf("%q: %q %q, want %q %q", tt.breakdown, q.Breakdown.By, q.Breakdown.Name, tt.by, tt.name)
		}
		// The filter reads the same name.
		if tt.name != "" {
			_, _, conds, err := parseStep("V[" + strings.SplitN(tt.breakdown, ":", 2)[1] + "=x]")
			if err != nil || conds[0].Field != "properties."+tt.name {
				t.Errorf("%q as a filter's field: %v, %v", tt.breakdown, conds, err)
			}
		}
		again, err := ParseFunnelQuery(url.Values{"steps": {"V"}, "breakdown": {q.Breakdown.String()}})
		if err != nil || again.Breakdown != q.Breakdown {
			t.Errorf("%q written back as %q reads %+v, %v", tt.breakdown, q.Breakdown.String(), again.Breakdown, err)
		}
	}
}
