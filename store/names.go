package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// unnamedLabels are the touchpoint labels of calls without an event name (see labelSQL): a step
// named so matches those calls.
var unnamedLabels = []string{"page", "screen"}

// checkNames returns a parameter error naming param when one of names is neither a stage of the
// journey map, nor the label of unnamed pages or screens, nor an event name that has been stored:
// most likely a typo, which would otherwise answer a silent zero.
func (s *Store) checkNames(ctx context.Context, jm *sessionize.Map, param string, steps ...string) error {
	names, props, regexps, err := checkSteps(param, steps...)
	if err != nil {
		return err
	}
	// Go's regexp and ClickHouse's re2 differ at the edges ((?<name>…), nested repeats): ask the
	// engine that will run them.
	for re, step := range regexps {
		var matched uint8
		if err := s.conn.QueryRow(ctx, "SELECT match('', ?)", re).Scan(&matched); err != nil {
			var ex *clickhouse.Exception
			if errors.As(err, &ex) && ex.Code == 427 { // CANNOT_COMPILE_REGEXP
				return paramErrorf(param, "%.100s: ClickHouse cannot use the regular expression %q", step, re)
			}
			return fmt.Errorf("check regular expression: %w", err)
		}
	}
	if err := s.checkProperties(ctx, param, props...); err != nil {
		return err
	}
	stages := make([]string, len(jm.Stages))
	for i, st := range jm.Stages {
		stages[i] = st.Name
	}
	var ask []string
	s.namesMu.Lock()
	for _, sn := range names {
		n := sn.name
		_, stage := jm.Stage(n)
		switch {
		case sn.kind == stageOnly && !stage:
			s.namesMu.Unlock()
			return paramErrorf(param, "stage:%s: the journey map has no stage %q (its stages: %s)", n, n, strings.Join(stages, ", "))
		case stage && sn.kind != eventOnly, slices.Contains(unnamedLabels, n) && sn.kind == stageOrEvent:
		case !s.names[n] && !slices.Contains(ask, n):
			ask = append(ask, n)
		}
	}
	s.namesMu.Unlock()
	if len(ask) == 0 {
		return nil
	}
	rows, err := s.conn.Query(ctx, "SELECT event FROM "+s.table("events")+" WHERE event IN ("+placeholders(len(ask))+") GROUP BY event", appendStrings(nil, ask)...)
	if err != nil {
		return fmt.Errorf("look up event names: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("look up event names: %w", err)
		}
		found[n] = true
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
			return paramErrorf(param, "%q is neither a stage (%s) nor an event that has been stored%s; %s", n, strings.Join(stages, ", "), unclosed, escapeHint)
		}
	}
	return nil
}

// checkProperties returns a parameter error naming param when one of keys (stored keys: a
// property's ingest.PropertyKey, or traits.NAME, a trait) is one that no stored event has: a filter or breakdown on it would answer a
// silent zero or a lone "(none)". Keys once found stay known.
func (s *Store) checkProperties(ctx context.Context, param string, keys ...string) error {
	var ask []string
	s.namesMu.Lock()
	for _, k := range keys {
		if !s.properties[k] && !slices.Contains(ask, k) {
			ask = append(ask, k)
		}
	}
	s.namesMu.Unlock()
	if len(ask) == 0 {
		return nil
	}
	args := appendStrings(nil, ask)
	rows, err := s.conn.Query(ctx, "SELECT k FROM (SELECT arrayJoin(prop_keys) AS k FROM "+s.table("events")+
		" WHERE hasAny(prop_keys, ["+placeholders(len(ask))+"])) WHERE k IN ("+placeholders(len(ask))+") GROUP BY k", append(args, args...)...)
	if err != nil {
		return fmt.Errorf("look up property keys: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return fmt.Errorf("look up property keys: %w", err)
		}
		found[k] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up property keys: %w", err)
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	for k := range found {
		s.properties[k] = true
	}
	for _, k := range ask {
		if !found[k] {
			if trait, ok := strings.CutPrefix(k, ingest.TraitPrefix); ok {
				return paramErrorf(param, "no stored event has the trait %q", trait)
			}
			name, _ := ingest.PropertyName(k)
			return paramErrorf(param, "no stored event has the property %q (nested properties are named with dots: product.category)", name)
		}
	}
	return nil
}
