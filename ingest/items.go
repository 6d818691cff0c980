package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// MaxItems is the most list items an event stores by element (Event.ItemKeys), and
// MaxItemBytes the most bytes their keys and values take together. An event is at most 32 KiB,
// but a list's key is repeated for each of its items: {"p…p": [1,1,…]} with a long name would
// otherwise store megabytes. Segment's e-commerce events hold tens of products, each of a few
// members; the items past either limit are dropped and said so (ReasonListItems).
const (
	MaxItems     = 1000
	MaxItemBytes = 64 << 10
)

// setItems stores the items of lists, the event's list properties (their values
// CanonicalArray's text), by element in ItemKeys and ItemValues, up to MaxItems and
// MaxItemBytes. The shorter lists go first, so that one long list does not leave a short one
// without its items (tester 34's F4); the lists whose items were cut are all named.
func (e *Event) setItems(lists []prop) {
	lists = slices.Clone(lists)
	slices.SortStableFunc(lists, func(a, b prop) int { return len(a.value) - len(b.value) })
	bytes, dropped := 0, 0
	var cut []string
	for _, p := range lists {
		var v any
		dec := json.NewDecoder(strings.NewReader(p.value))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			continue // not an array: CanonicalArray gave it back unchanged
		}
		name, _ := PropertyName(p.key)
		listItems(name, v, func(name, value string) {
			key := PropertyKey(name)
			if len(e.ItemKeys) >= MaxItems || bytes+len(key)+len(value) > MaxItemBytes {
				if field := "properties." + name; !slices.Contains(cut, field) {
					cut = append(cut, field)
				}
				dropped++
				return
			}
			bytes += len(key) + len(value)
			e.ItemKeys = append(e.ItemKeys, key)
			e.ItemValues = append(e.ItemValues, value)
		})
	}
	if dropped > 0 {
		e.Ignored = append(e.Ignored, &InvalidError{Reason: ReasonListItems, Field: cut[0],
			Err: fmt.Errorf("%d list items (values and inner lists' texts) of %s are past the %d items or %d bytes an event stores by element; filters find them by the list's whole text only (docs/values.md)",
				dropped, strings.Join(cut, ", "), MaxItems, MaxItemBytes)})
	}
}

// listItems gives add each scalar item of the list v (decoded with UseNumber) under name: a
// string as it is, a number as CanonicalNumber, true and false; an object's members under
// name.member, as properties are flattened; a list in it as its CanonicalArray text (a list
// directly in v only: each deeper one's text is inside that one's, and a list nested hundreds
// deep would spend the event's MaxItemBytes on texts of itself, tester 34's F4) and then its own
// items, under the same name. null and an empty object are no value.
func listItems(name string, v any, add func(name, value string)) {
	var item func(name string, v any, depth int)
	item = func(name string, v any, depth int) {
		switch v := v.(type) {
		case string:
			add(name, v)
		case json.Number:
			n, _ := CanonicalNumber(v.String())
			add(name, n)
		case bool:
			add(name, fmt.Sprint(v))
		case []any:
			if depth == 0 {
				var b strings.Builder
				writeCanonicalJSON(&b, v)
				add(name, b.String())
			}
			for _, x := range v {
				item(name, x, depth+1)
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				item(name+"."+k, v[k], depth)
			}
		}
	}
	list, _ := v.([]any)
	for _, x := range list {
		item(name, x, 0)
	}
}
