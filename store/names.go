package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"golang.org/x/text/unicode/norm"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// unnamedLabels are the touchpoint labels of calls without an event name (see labelSQL): a step
// named so matches those calls.
var unnamedLabels = []string{"page", "screen"}

// stageNames lists the names of jm's stages, in journey order, for messages.
func stageNames(jm *sessionize.Map) []string {
	names := make([]string, len(jm.Stages))
	for i, st := range jm.Stages {
		names[i] = st.Name
	}
	return names
}

// usableRegexp reports whether ClickHouse's re2 compiles re. Go's regexp and re2 differ at the
// edges (nested repeats re2 finds too large, say), so the engine that will run a regular
// expression is asked.
func (s *Store) usableRegexp(ctx context.Context, re string) (bool, error) {
	var matched uint8
	if err := s.conn.QueryRow(ctx, "SELECT match('', ?)", engineRegexp(re)).Scan(&matched); err != nil {
		var ex *clickhouse.Exception
		if errors.As(err, &ex) && ex.Code == 427 { // CANNOT_COMPILE_REGEXP
			return false, nil
		}
		return false, fmt.Errorf("check regular expression %q: %w", re, err)
	}
	return true, nil
}

// CheckJourneyMap returns an error naming the stage and the regular expression when ClickHouse
// cannot compile a regular expression of jm's conditions, which every stage query would
// otherwise fail on; serve calls it before it serves.
func (s *Store) CheckJourneyMap(ctx context.Context, jm *sessionize.Map) error {
	for _, st := range jm.Stages {
		for _, r := range st.Rules {
			for _, c := range r.Where {
				if c.Regexp == nil {
					continue
				}
				usable, err := s.usableRegexp(ctx, *c.Regexp)
				if err != nil {
					return err
				}
				if !usable {
					return fmt.Errorf("journey map %s: stage %q: ClickHouse cannot use the regular expression %q of the condition on %s", jm.Version, st.Name, *c.Regexp, c.Field)
				}
			}
		}
	}
	return nil
}

// checkNames returns a parameter error naming param when one of names is neither a stage of the
// journey map, nor the label of unnamed pages or screens, nor an event name that has been stored:
// most likely a typo, which would otherwise answer a silent zero.
func (s *Store) checkNames(ctx context.Context, jm *sessionize.Map, param string, steps ...string) error {
	names, props, regexps, err := checkSteps(param, steps...)
	if err != nil {
		return err
	}
	if err := s.checkConditions(ctx, param, props, regexps); err != nil {
		return err
	}
	stages := stageNames(jm)
	var ask, unnamed []string
	asEvent := map[string]bool{} // the names of ask written event:NAME, which may be nothing but an event
	s.namesMu.Lock()
	for _, sn := range names {
		n := sn.name
		_, stage := jm.Stage(n)
		switch {
		case sn.kind == stageOnly && !stage:
			s.namesMu.Unlock()
			return paramErrorf(param, "stage:%s: the journey map has no stage %q (its stages: %s)", n, n, strings.Join(stages, ", "))
		case stage && sn.kind != eventOnly:
		case slices.Contains(unnamedLabels, n) && sn.kind == stageOrEvent:
			if !s.names[ingest.Internal+n] && !slices.Contains(unnamed, n) {
				unnamed = append(unnamed, n)
			}
		case !s.names[n] && !slices.Contains(ask, n):
			ask = append(ask, n)
			asEvent[n] = sn.kind == eventOnly
		}
	}
	s.namesMu.Unlock()
	if err := s.checkUnnamed(ctx, param, unnamed); err != nil {
		return err
	}
	if len(ask) == 0 {
		return nil
	}
	// The same read finds the stored names a missing one may have been meant as (lookalike).
	alike, lower := lookalikeForms(ask)
	where := "event IN (" + placeholders(len(alike)) + ") OR lowerUTF8(" + squeezedSQL("event") + ") IN (" + placeholders(len(lower)) + ")"
	args := append(appendStrings(nil, alike), appendStrings(nil, lower)...)
	// A name with a space may be a stored one with a + there, read as a space by a URL's query
	// string (plusLookalike, tester 50's F6).
	if spaced := slices.DeleteFunc(slices.Clone(ask), func(n string) bool { return !strings.Contains(n, " ") }); len(spaced) > 0 {
		where += " OR replaceAll(event, '+', ' ') IN (" + placeholders(len(spaced)) + ")"
		args = appendStrings(args, spaced)
	}
	rows, err := s.conn.Query(ctx, "SELECT event FROM "+s.table("events")+" WHERE "+where+" GROUP BY event ORDER BY event", args...)
	if err != nil {
		return fmt.Errorf("look up event names: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	var stored []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("look up event names: %w", err)
		}
		found[n] = true
		stored = append(stored, n)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up event names: %w", err)
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	for n := range found {
		s.names[n] = true // names once stored stay known; unknown ones are asked again
	}
	for _, n := range ask {
		if !found[n] {
			unclosed := ""
			if strings.Contains(n, "[") {
				// parseStep reads brackets as filters only when the step ends in an unescaped "]".
				unclosed = ` (its "[" opens no filter: a filter ends in an unescaped "]")`
			}
			alike, plus := lookalike("event", n, stored), plusLookalike(n, stored)
			if plus != "" {
				alike = fmt.Sprintf(" (the stored event %q has a + where it has a space: was the space a + ?)", plus)
			}
			// nameError is the error about n, with the stored name with a + when there is one.
			nameError := func(format string, args ...any) error {
				err := fmt.Errorf(format, args...)
				if plus != "" {
					// the step that asks for it: escaped, after event: when n was (tester 53's F3)
					step := TouchpointStep(jm, plus)
					if asEvent[n] && !strings.HasPrefix(step, "event:") {
						step = "event:" + step
					}
					err = &PlusError{Err: err, Plus: plus, Step: step}
				}
				return &ParamError{Param: param, Err: err}
			}
			if !asEvent[n] {
				return nameError("%q is neither a stage (%s) nor an event that has been stored%s%s; %s", n, strings.Join(stages, ", "), unclosed, alike, escapeHint)
			}
			// event:NAME asks for an event alone: the error says so, and how the stage of that
			// name is written when the map has one ("is neither a stage" contradicted itself
			// there: event:awareness asked for no stage).
			if _, stage := jm.Stage(n); stage {
				return nameError("event:%s: no stored event is named %q%s (event: names an event; the stage is written %s)", EscapeStep(n), n, alike, EscapeStep(n))
			}
			return nameError("event:%s: no stored event is named %q%s%s; %s", EscapeStep(n), n, unclosed, alike, escapeHint)
		}
	}
	return nil
}

// PlusError is the error of a name never stored that is stored with a + in place of one or
// more of its spaces ("Add On Purchased" for the stored "Add+On Purchased"): most likely a +
// that a URL's query string read as a space (application/x-www-form-urlencoded, Go's
// url.ParseQuery), as TimeError.Plus is for a time. How to give the + depends on where the name
// was written, which the store does not know: the query API's GET tells its client to write
// %2B (tester 50's F6).
type PlusError struct {
	Err  error
	Plus string // the stored name, with its +
	// Step is the step that asks for the stored name, as a step list is written: Plus escaped
	// (EscapeStep: "Gift+Card\\, Bought"), after "event:" when the name was written so or a bare
	// one would mean something else (TouchpointStep). A hint to paste gives this, not Plus.
	Step string
}

func (e *PlusError) Error() string { return e.Err.Error() }
func (e *PlusError) Unwrap() error { return e.Err }

// plusLookalike is the first of stored that is n with a + in place of one or more of its spaces
// (each + read as a space gives n), "" when none is.
func plusLookalike(n string, stored []string) string {
	for _, e := range stored {
		if e != n && strings.Contains(e, "+") && strings.ReplaceAll(e, "+", " ") == n {
			return e
		}
	}
	return ""
}

// checkConditions returns a parameter error naming param when ClickHouse cannot use one of the
// regular expressions of a parameter's conditions (each with the text it was written in) or a
// property they test was never stored (see checkProperties); props and regexps as conditionNeeds
// gives them.
func (s *Store) checkConditions(ctx context.Context, param string, props []string, regexps map[string]string) error {
	// Go's regexp and ClickHouse's re2 differ at the edges ((?<name>…), nested repeats): ask the
	// engine that will run them.
	for re, where := range regexps {
		usable, err := s.usableRegexp(ctx, re)
		if err != nil {
			return err
		}
		if !usable {
			return paramErrorf(param, "%.100s: ClickHouse cannot use the regular expression %q", where, re)
		}
	}
	return s.checkProperties(ctx, param, props...)
}

// checkUnnamed returns a parameter error naming param when one of labels (unnamedLabels: "page",
// "screen"), a step meaning the calls of that type sent without a name, has no such call stored:
// a shop whose screens all have names would otherwise count a silent zero.
func (s *Store) checkUnnamed(ctx context.Context, param string, labels []string) error {
	if len(labels) == 0 {
		return nil
	}
	rows, err := s.conn.Query(ctx, "SELECT type FROM "+s.table("events")+" WHERE event = '' AND type IN ("+placeholders(len(labels))+") GROUP BY type",
		appendStrings(nil, labels)...)
	if err != nil {
		return fmt.Errorf("look up calls without a name: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			return fmt.Errorf("look up calls without a name: %w", err)
		}
		found[typ] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up calls without a name: %w", err)
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	for typ := range found {
		s.names[ingest.Internal+typ] = true // stored once, known for good
	}
	for _, n := range labels {
		if !found[n] {
			return paramErrorf(param, "%q means %s calls sent without a name, and none has been stored: name the step after the %s calls' names, write event:%s for an event named so, or use a stage", n, n, n, n)
		}
	}
	return nil
}

// lookalikeForms returns names with their NFC and NFD forms (Unicode's normalization forms:
// "é" as one code point or as "e" and a combining accent), and their lower-case forms with white
// space squeezed (squeezed), to find the stored names that differ from one of names only in
// those.
func lookalikeForms(names []string) (forms, lower []string) {
	for _, n := range names {
		for _, f := range []string{n, norm.NFC.String(n), norm.NFD.String(n)} {
			if !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
			if l := squeezed(strings.ToLower(f)); !slices.Contains(lower, l) {
				lower = append(lower, l)
			}
		}
	}
	return forms, lower
}

// spaceRun is a run of white space (re2 syntax, which Go's regexp and ClickHouse's read alike):
// ASCII's and Unicode's separators (U+00A0, U+3000, …).
const spaceRun = `[\s\pZ]+`

var spaceRunRE = regexp.MustCompile(spaceRun)

// squeezed is s with each run of white space one space, and none at either end: a stored name
// that differs from an asked one only so ("Checkout Begun " for "Checkout Begun", whose spaces
// around the step are dropped) is named in the error (lookalike). squeezedSQL is the same in SQL.
func squeezed(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(spaceRunRE.ReplaceAllString(s, " "), " "), " ")
}

// squeezedSQL is squeezed of the String expr, in SQL.
func squeezedSQL(expr string) string {
	return "replaceRegexpOne(replaceRegexpOne(replaceRegexpAll(" + expr + ", " + sqlString(spaceRun) + ", ' '), '^ ', ''), ' $', '')"
}

// lookalike says which of stored (names of what, "event", "property" or "trait", that have been
// stored) the missing name n was likely meant as: one equal to it in Unicode's NFC form, shown
// with its code points escaped (the two print alike), else those equal to it but for case
// (Coupon and coupon for COUPON), else one equal to it but for white space, with how to write it.
// Names are matched byte for byte, as PostHog and Mixpanel match event and property names, so
// none is taken in its place. "" when there is none.
func lookalike(what, n string, stored []string) string {
	for _, e := range stored {
		if e != n && norm.NFC.String(e) == norm.NFC.String(n) {
			return fmt.Sprintf(" (the stored %s %+q differs from %+q only in Unicode normalization: names are matched byte for byte)", what, e, n)
		}
	}
	var cased []string
	for _, e := range stored {
		if e != n && strings.EqualFold(norm.NFC.String(e), norm.NFC.String(n)) {
			cased = append(cased, strconv.Quote(e))
		}
	}
	if len(cased) > 0 {
		return fmt.Sprintf(" (did you mean %s? names are matched with their case)", strings.Join(cased, " or "))
	}
	around := "a name"
	if what == "event" {
		around = "a step"
	}
	for _, e := range stored {
		if e != n && strings.EqualFold(squeezed(norm.NFC.String(e)), squeezed(norm.NFC.String(n))) {
			return fmt.Sprintf(" (did you mean %q? names are matched with their white space, and spaces around %s are dropped: write it %s)", e, around, EscapeStep(e))
		}
	}
	return ""
}

// checkProperties returns a parameter error naming param when one of keys (stored keys: a
// property's ingest.PropertyKey, or traits.NAME, a trait) is one that no stored event has, as a
// property nor as a list's items (products.category of products: [{"category": …}]): a filter on
// it would answer a silent zero. Keys once found stay known.
func (s *Store) checkProperties(ctx context.Context, param string, keys ...string) error {
	missing, err := s.unknownKeys(ctx, "prop_keys", s.properties, keys)
	if err != nil || len(missing) == 0 {
		return err
	}
	if missing, err = s.unknownKeys(ctx, "item_keys", s.items, missing); err != nil || len(missing) == 0 {
		return err
	}
	return s.unknownKeyError(ctx, param, missing[0])
}

// checkBreakdownKey is checkProperties for a breakdown (param "breakdown"), which groups by a
// property's or trait's whole value, or a held property (param "hold", FunnelQuery.Hold), which
// holds its whole value constant: a key stored only as a list's items (products.category) is
// refused saying so.
//
// A key that is a list's items on some events and a property on others (products.price of
// {"products": {"price": 3}} on one event, of a list of products on the others) is refused too:
// grouped by the property, every event with the list would be counted under none (tester 34's
// F2). A list's own name (tags of ["sale", "new"]) is a property of the same events, its whole
// text, and is grouped by it.
func (s *Store) checkBreakdownKey(ctx context.Context, param, key string) error {
	name, _ := ingest.PropertyName(key)
	refuse := paramErrorf(param, "%q names members of a list's items, and a breakdown groups by a property's whole value: filter by it (Order Completed[%s=…]), or break down by the whole list", name, name)
	if item, ok := strings.CutPrefix(name, heldItems+"."); param == "hold" && ok {
		refuse = paramErrorf(param, "%q names members of a list's items: hold property:%s, which an event without %s takes from the items of its %s, or filter by it (Order Completed[%s=…])", name, item, item, heldItems, name)
	} else if param == "hold" {
		refuse = paramErrorf(param, "%q names members of a list's items, and a funnel holds a property's whole value constant: filter by it (Order Completed[%s=…]), or hold the whole list", name, name)
	}
	missing, err := s.unknownKeys(ctx, "prop_keys", s.properties, []string{key})
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		members, err := s.listMembersOnly(ctx, key)
		if err != nil || !members {
			return err
		}
		return refuse
	}
	if missing, err = s.unknownKeys(ctx, "item_keys", s.items, missing); err != nil {
		return err
	}
	if len(missing) == 0 {
		return refuse
	}
	return s.unknownKeyError(ctx, param, key)
}

// checkHoldKey is checkBreakdownKey for a held property (FunnelQuery.Hold): the property's name,
// or the members of that name of the items of products, which an event without the property
// takes its values from (heldValueSQL), is stored.
func (s *Store) checkHoldKey(ctx context.Context, name string) error {
	missing, err := s.unknownKeys(ctx, "item_keys", s.items, []string{ingest.PropertyKey(heldItems + "." + name)})
	if err != nil || len(missing) == 0 {
		return err
	}
	return s.checkBreakdownKey(ctx, "hold", ingest.PropertyKey(name))
}

// listMembersOnly reports whether some stored event has key among its list items
// (ingest.Event.ItemKeys) and not among its properties: key names members of a list's objects
// there (products.price), not the list itself.
func (s *Store) listMembersOnly(ctx context.Context, key string) (bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT 1 FROM "+s.table("events")+" WHERE has(item_keys, ?) AND NOT has(prop_keys, ?) LIMIT 1", key, key)
	if err != nil {
		return false, fmt.Errorf("look up list items: %w", err)
	}
	defer rows.Close()
	found := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("look up list items: %w", err)
	}
	return found, nil
}

// unknownKeyError says that no stored event has the property or trait stored under key, and
// which stored ones it was likely meant as: those that differ from it only in case, Unicode
// normalization or white space (lookalike, as for an event's name; tester 35's F4). A name
// without a dot is told how nested ones are named; one with dots was written so. A name with
// "device" in it (device, context.device_type) is told the device type's field, device.type,
// which is no property (tester 35's F3), or in a breakdown, breakdown=device.
func (s *Store) unknownKeyError(ctx context.Context, param, key string) error {
	trait, isTrait := strings.CutPrefix(key, ingest.TraitPrefix)
	name, _ := ingest.PropertyName(key)
	what := "property"
	if isTrait {
		what, name = "trait", trait
	}
	stored, err := s.lookalikeKeys(ctx, key)
	if err != nil {
		return err
	}
	alike := lookalike(what, name, stored)
	if alike == "" {
		if alike, err = s.otherKindHint(ctx, param, key); err != nil {
			return err
		}
	}
	switch {
	case isTrait:
		return paramErrorf(param, "no stored event has the trait %q%s", trait, alike)
	case alike != "":
		return paramErrorf(param, "no stored event has the property %q%s", name, alike)
	}
	device := ""
	switch {
	case !strings.Contains(strings.ToLower(name), "device"):
	case param == "breakdown":
		// In a breakdown, property:device.type is a shop's own property (tester 36's F7).
		device = "; breakdown=device breaks down by the device type Waymark reads"
	default:
		device = "; the device type Waymark reads is the field device.type: [device.type!=bot] leaves bots out"
	}
	if strings.Contains(name, ".") {
		return paramErrorf(param, "no stored event has the property %q, as a nested member or in a list's items%s", name, device)
	}
	return paramErrorf(param, "no stored event has the property %q (nested properties, and members of a list's items, are named with dots: product.category)%s", name, device)
}

// otherKindHint says, for a property's key that no stored event has, that a trait of its name is
// stored, and for a trait's key that a property of its name is: "" when not. A breakdown is told
// the other's spelling (property:plan where trait:plan is stored); a filter, which tests an
// event's properties, that traits are broken down by, not filtered on.
func (s *Store) otherKindHint(ctx context.Context, param, key string) (string, error) {
	var other, hint string
	// The name as a breakdown reads it back (fieldName): escaped (tester 38's F3).
	if trait, ok := strings.CutPrefix(key, ingest.TraitPrefix); ok {
		other, hint = ingest.PropertyKey(trait), "; a property of that name is stored: breakdown=property:"+EscapeStep(trait)
	} else {
		name, _ := ingest.PropertyName(key)
		other = ingest.TraitPrefix + name
		hint = "; a trait of that name is stored: breakdown=trait:" + EscapeStep(name)
		switch param {
		case "breakdown":
		case "hold":
			// A trait is the person's latest value, the same on all their events (parseHold).
			hint = "; a trait of that name is stored, which is the person's, the same on all their events: a funnel breaks down by it, breakdown=trait:" + EscapeStep(name)
		default:
			// Only a funnel breaks down: a filter, of whatever query, cannot test a trait.
			hint = "; a trait of that name is stored, and a filter tests an event's properties: a funnel breaks down by it, breakdown=trait:" + EscapeStep(name)
		}
	}
	missing, err := s.unknownKeys(ctx, "prop_keys", s.properties, []string{other})
	if err != nil || len(missing) > 0 {
		return "", err
	}
	return hint, nil
}

// lookalikeKeys returns the names of the stored properties (or, for a trait's key, traits),
// events' and lists' items', that differ from key's only in case, Unicode normalization or white
// space (lookalikeForms): the names lookalike chooses from.
func (s *Store) lookalikeKeys(ctx context.Context, key string) ([]string, error) {
	alike, lower := lookalikeForms([]string{key})
	rows, err := s.conn.Query(ctx, "SELECT k FROM (SELECT arrayJoin(arrayConcat(prop_keys, item_keys)) AS k FROM "+s.table("events")+
		") WHERE k IN ("+placeholders(len(alike))+") OR lowerUTF8("+squeezedSQL("k")+") IN ("+placeholders(len(lower))+") GROUP BY k ORDER BY k LIMIT 10",
		append(appendStrings(nil, alike), appendStrings(nil, lower)...)...)
	if err != nil {
		return nil, fmt.Errorf("look up property keys: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("look up property keys: %w", err)
		}
		if trait, ok := strings.CutPrefix(k, ingest.TraitPrefix); ok && strings.HasPrefix(key, ingest.TraitPrefix) {
			names = append(names, trait)
		} else if name, ok := ingest.PropertyName(k); ok && !strings.HasPrefix(key, ingest.TraitPrefix) {
			names = append(names, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up property keys: %w", err)
	}
	return names, nil
}

// unknownKeys returns those of keys that no stored event has in column (prop_keys or
// item_keys), known holding the keys found before; it adds the keys it finds to known.
func (s *Store) unknownKeys(ctx context.Context, column string, known map[string]bool, keys []string) ([]string, error) {
	var ask []string
	s.namesMu.Lock()
	for _, k := range keys {
		if !known[k] && !slices.Contains(ask, k) {
			ask = append(ask, k)
		}
	}
	s.namesMu.Unlock()
	if len(ask) == 0 {
		return nil, nil
	}
	args := appendStrings(nil, ask)
	rows, err := s.conn.Query(ctx, "SELECT k FROM (SELECT arrayJoin("+column+") AS k FROM "+s.table("events")+
		" WHERE hasAny("+column+", ["+placeholders(len(ask))+"])) WHERE k IN ("+placeholders(len(ask))+") GROUP BY k", append(args, args...)...)
	if err != nil {
		return nil, fmt.Errorf("look up property keys: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("look up property keys: %w", err)
		}
		found[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up property keys: %w", err)
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	for k := range found {
		known[k] = true
	}
	return slices.DeleteFunc(ask, func(k string) bool { return found[k] }), nil
}
