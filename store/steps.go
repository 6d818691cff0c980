package store

import (
	"fmt"
	"slices"
	"strings"

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
// = (equals; a|b|c: one of), ^= (prefix), ~= (regular expression), >, >=, <, <=. The filters mean
// what the same conditions mean in the journey map, and are added to every rule of a stage.

// stepFilterOps are the filter operators, longest first so ">=" is not read as ">".
var stepFilterOps = []struct{ op, key string }{
	{">=", "gte"}, {"<=", "lte"}, {"^=", "prefix"}, {"~=", "regexp"}, {"=", "equals"}, {">", "gt"}, {"<", "lt"},
}

// splitStep separates a step's name from its bracketed filters ("" when none).
func splitStep(step string) (name, filters string) {
	step = strings.TrimSpace(step)
	if i := strings.IndexByte(step, '['); i > 0 && strings.HasSuffix(step, "]") {
		return strings.TrimSpace(step[:i]), step[i+1 : len(step)-1]
	}
	return step, ""
}

// MaxStepFilters is the most filters one step may carry: each becomes a condition in the SQL of
// every rule of the step, and ClickHouse limits the size of a query.
const MaxStepFilters = 10

// parseFilters reads a step's filters as journey-map conditions (sessionize.NewCondition), so
// they are checked and mean exactly what the map's conditions mean. At most MaxStepFilters.
func parseFilters(filters string) ([]sessionize.Condition, error) {
	var out []sessionize.Condition
	for _, f := range strings.Split(filters, ";") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if len(out) == MaxStepFilters {
			return nil, fmt.Errorf("more than %d filters", MaxStepFilters)
		}
		i, op, key := -1, "", ""
		for _, o := range stepFilterOps {
			if j := strings.Index(f, o.op); j > 0 && (i < 0 || j < i) {
				i, op, key = j, o.op, o.key
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("filter %q: want FIELD OP VALUE with OP one of =, ^=, ~=, >, >=, <, <=", f)
		}
		field, value := strings.TrimSpace(f[:i]), strings.TrimSpace(f[i+len(op):])
		if key == "equals" && strings.Contains(value, "|") {
			key = "one_of"
		}
		c, err := sessionize.NewCondition(field, key, value)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// stepRules resolves a step: a stage of the journey map means its rules, "page" and "screen"
// the calls without a name, anything else an event name; filters are added to every rule.
// Unparsable filters are reported by checkSteps, which runs first.
func stepRules(jm *sessionize.Map, step string) []sessionize.Rule {
	name, filters := splitStep(step)
	var rules []sessionize.Rule
	switch st, ok := jm.Stage(name); {
	case ok:
		rules = slices.Clone(st.Rules)
	case slices.Contains(unnamedLabels, name):
		rules = []sessionize.Rule{{Events: []string{name}}, {Types: []string{name}, Events: []string{""}}}
	default:
		rules = []sessionize.Rule{{Events: []string{name}}}
	}
	if filters == "" {
		return rules
	}
	conds, _ := parseFilters(filters)
	for i := range rules {
		rules[i].Where = append(slices.Clone(rules[i].Where), conds...)
	}
	return rules
}

// checkSteps reports the first step whose filters cannot be read, naming param, and returns the
// regular expressions of the filters.
func checkSteps(param string, steps ...string) (regexps map[string]string, err error) {
	for _, s := range steps {
		if _, filters := splitStep(s); filters != "" {
			conds, err := parseFilters(filters)
			if err != nil {
				return nil, paramErrorf(param, "%.100s: %w", s, err)
			}
			for _, c := range conds {
				if c.Regexp != nil {
					if regexps == nil {
						regexps = map[string]string{}
					}
					regexps[*c.Regexp] = s
				}
			}
		}
	}
	return regexps, nil
}
