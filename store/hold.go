package store

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
)

// holdFinder is the scratch space pathFinder.reachHeld reuses from unit to unit.
type holdFinder struct {
	byValue  []heldEvent // the unit's events that can take a step, once per value they have, by (value, index)
	values   []string    // heldValues' scratch
	blockers []int       // indexes of the unit's events that block a gap (exclusions, strict)
	sub      []unitEvent // one value's events and the blockers (the others' steps cleared)
	subAt    []int       // per event of sub: its index in the unit
	best     []int       // the best path so far, indexes into the unit
	held     []unitEvent // the unit with the steps of every other value's events cleared
}

// heldEvent is an event of a unit, by its index, with one value of the held property it has.
type heldEvent struct {
	i     int
	value string
}

// heldValueSQL is the SQL of the held property name's values of an event, as heldValues reads
// them: "=" and the property's text when the event has a value of it (not empty); else, when it lists
// products (Segment's e-commerce spec: a multi-product event such as Order Completed, Cart
// Viewed or Checkout Started lists its products in products, each item with the product
// properties a single-product event such as Product Viewed has at its top), "[" and the non-empty
// values of name among the items of products, each as its length in bytes, ":" and its text;
// else "". So hold=property:product_id holds the product viewed, added and ordered alike (tester
// 43's F1: an order never took a step, as its product_id is in its products).
func heldValueSQL(name string) predicate {
	key, item := ingest.PropertyKey(name), ingest.PropertyKey(heldItems+"."+name)
	return predicate{
		sql: `if(prop_values[indexOf(prop_keys, ?)] != '', concat('=', prop_values[indexOf(prop_keys, ?)]),
			if(has(item_keys, ?), concat('[', arrayStringConcat(arrayMap(v -> concat(toString(length(v)), ':', v),
				arrayFilter((v, k) -> k = ? AND v != '', item_values, item_keys)))), ''))`,
		args: []any{key, key, item, item},
	}
}

// heldItems is the list whose items' members a held property is read from on an event that
// does not have it (heldValueSQL).
const heldItems = "products"

// heldValues appends to dst the values of the held property in text (heldValueSQL's), each
// once, and returns it; none when the event has no value ("" or an empty text: it takes no step).
// A text it cannot read has none.
func heldValues(dst []string, text string) []string {
	switch {
	case strings.HasPrefix(text, "="):
		if text != "=" {
			dst = append(dst, text[1:])
		}
		return dst
	case !strings.HasPrefix(text, "["):
		return dst
	}
	n := len(dst)
	for rest := text[1:]; rest != ""; {
		size, after, ok := strings.Cut(rest, ":")
		k, err := strconv.Atoi(size)
		if !ok || err != nil || k < 0 || k > len(after) {
			return dst[:n]
		}
		dst, rest = append(dst, after[:k]), after[k:]
	}
	slices.Sort(dst[n:])
	return append(dst[:n], slices.Compact(dst[n:])...)
}

// reachHeld is reach holding a property constant (FunnelQuery.Hold): hold is 1 + the attribute
// column of the held property in values.attrs (heldValueSQL's text), 0 for none (then it is
// reach, and unit is returned as it is). A unit reaches the furthest step that the events of any
// one value of the property reach (an event with no value takes no step; one whose products list
// several values takes a step for each of them), matched as reach matches: for each
// value, reach runs on that value's events that can take a step and every event of the unit
// that blocks a gap (an excluded event, a tracked one in strict order), whatever its value,
// since exclusions and strict order are not held. Of the values that get furthest, the path is
// the one whose step times are smallest in order, then whose first event has the smallest
// breakdown value, then of the smallest value (by bytes): the canonical path of the unit.
//
// It returns the steps reached, the path (indexes into matched, valid until the next call) and
// matched: unit with the steps of the events of every value but the path's cleared (valid
// until the next call), in which a drop-off finds the step's event (stepEvent) among the
// path's value's events only. The values' matchings together take time linear in the unit's
// events, plus its blockers once per value: in strict order, where every tracked event blocks,
// events × values.
func (f *pathFinder) reachHeld(ctx context.Context, unit []unitEvent, values breakdownValues, hold int) (int, []int, []unitEvent, error) {
	if hold == 0 {
		level, path, err := f.reach(ctx, unit, values)
		return level, path, unit, err
	}
	h := &f.hold
	col := hold - 1
	h.byValue, h.blockers = h.byValue[:0], h.blockers[:0]
	for i, e := range unit {
		if e.steps != 0 {
			h.values = heldValues(h.values[:0], values.attrs.value(e.at, col))
			for _, v := range h.values {
				h.byValue = append(h.byValue, heldEvent{i, v})
			}
		}
		if e.blocks != 0 {
			h.blockers = append(h.blockers, i)
		}
	}
	slices.SortFunc(h.byValue, func(a, b heldEvent) int { return cmp.Or(cmp.Compare(a.value, b.value), cmp.Compare(a.i, b.i)) })
	bestLevel, bestValue := 0, ""
	h.best = h.best[:0]
	for lo := 0; lo < len(h.byValue); {
		v := h.byValue[lo].value
		hi := lo + 1
		for hi < len(h.byValue) && h.byValue[hi].value == v {
			hi++
		}
		h.merge(unit, h.byValue[lo:hi])
		lo = hi
		level, path, err := f.reach(ctx, h.sub, values)
		if err != nil {
			return 0, nil, unit, err
		}
		if level == 0 || level < bestLevel {
			continue
		}
		if level == bestLevel && !h.earlier(unit, path, values) {
			continue // an equal path of a smaller value came first
		}
		bestLevel, bestValue = level, v
		h.best = h.best[:0]
		for _, i := range path {
			h.best = append(h.best, h.subAt[i])
		}
	}
	if bestLevel == 0 {
		return 0, nil, unit, nil
	}
	h.held = append(h.held[:0], unit...)
	for i := range h.held {
		if h.held[i].steps != 0 && !slices.Contains(heldValues(h.values[:0], values.attrs.value(unit[i].at, col)), bestValue) {
			h.held[i].steps = 0
		}
	}
	return bestLevel, h.best, h.held, nil
}

// merge makes h.sub the events of the unit in run (one value's, ascending by index) and the
// blockers, in the unit's order, a blocker not in run with its steps cleared; h.subAt their
// indexes in the unit.
func (h *holdFinder) merge(unit []unitEvent, run []heldEvent) {
	h.sub, h.subAt = h.sub[:0], h.subAt[:0]
	r, b := 0, 0
	for r < len(run) || b < len(h.blockers) {
		switch {
		case b == len(h.blockers) || r < len(run) && run[r].i < h.blockers[b]:
			h.sub, h.subAt = append(h.sub, unit[run[r].i]), append(h.subAt, run[r].i)
			r++
		case r < len(run) && run[r].i == h.blockers[b]:
			h.sub, h.subAt = append(h.sub, unit[run[r].i]), append(h.subAt, run[r].i)
			r, b = r+1, b+1
		default:
			e := unit[h.blockers[b]]
			e.steps = 0
			h.sub, h.subAt = append(h.sub, e), append(h.subAt, h.blockers[b])
			b++
		}
	}
}

// earlier reports whether path (indexes into h.sub) of the same length as h.best comes before
// it: smaller step times in order, then a smaller breakdown value of its first event.
func (h *holdFinder) earlier(unit []unitEvent, path []int, values breakdownValues) bool {
	for k, i := range path {
		if t, best := h.sub[i].t, unit[h.best[k]].t; t != best {
			return t < best
		}
	}
	return values.of(h.sub[path[0]]) < values.of(unit[h.best[0]])
}
