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
// MaxItemBytes.
func (e *Event) setItems(lists []prop) {
	bytes, dropped, first := 0, 0, ""
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
				if dropped == 0 {
					first = name
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
		e.Ignored = append(e.Ignored, &InvalidError{Reason: ReasonListItems, Field: "properties." + first,
			Err: fmt.Errorf("%d list items from properties.%s on are past the %d items or %d bytes an event stores by element; filters find them by the list's whole text only (docs/values.md)",
				dropped, first, MaxItems, MaxItemBytes)})
	}
}

// listItems gives add each scalar item of the list v (decoded with UseNumber) under name: a
// string as it is, a number as CanonicalNumber, true and false; an object's members under
// name.member, as properties are flattened; a list in it as its CanonicalArray text and then
// its own items, under the same name. null and an empty object are no value.
func listItems(name string, v any, add func(name, value string)) {
	var item func(name string, v any)
	item = func(name string, v any) {
		switch v := v.(type) {
		case string:
			add(name, v)
		case json.Number:
			n, _ := CanonicalNumber(v.String())
			add(name, n)
		case bool:
			add(name, fmt.Sprint(v))
		case []any:
			var b strings.Builder
			writeCanonicalJSON(&b, v)
			add(name, b.String())
			for _, x := range v {
				item(name, x)
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				item(name+"."+k, v[k])
			}
		}
	}
	list, _ := v.([]any)
	for _, x := range list {
		item(name, x)
	}
}
