package store

import (
	"strings"

	"github.com/waymark-dev/waymark/ingest"
)

// Markers name what an answer lists where there is no real value: no value (a breakdown value or
// location unset, nothing done after a step), the values beyond a breakdown's limit summed, a
// journey that ended (nothing after the anchor, or nothing before it).
//
// A marker is never a string among real values: the answers carry it in a field of its own,
// "marker", with "value" empty (Ranked, FunnelGroup, ChannelRepeat) or the touchpoints left
// without it (PathRow). Event names and property values are free text a shop chooses (Segment's
// spec puts no limit on them, and a client may well send an event called "(exit)" or a coupon
// "(none)"), so refusing them at ingest would lose real data; printing a marker as a plain
// string next to them would merge the two (a real "(none)" with Amplitude's "(none)" for unset
// values). PostHog keeps its breakdown markers apart from real values
// ($$_posthog_breakdown_null_$$, _other_) and shows them as words. The CLI shows markers as words
// in parentheses and quotes a real value that reads like one; the page shows them in words, in
// their own style (docs/values.md).
const (
	MarkerNone  = "none"  // no value
	MarkerOther = "other" // the values beyond the listed ones, summed
	MarkerExit  = "exit"  // nothing more after the anchor within the window
	MarkerStart = "start" // nothing before the anchor within the window
)

// markPrefix starts the internal text of a marker while answers are counted, where markers share
// maps and sorts with real values: the byte 0xff is never in valid UTF-8, and every stored text
// is valid UTF-8 (the ingest decoder refuses anything else), so no real value starts with it.
const markPrefix = "\xff"

// Marker texts as counted: markPrefix and the marker.
const (
	markNone  = markPrefix + MarkerNone
	markOther = markPrefix + MarkerOther
	markExit  = markPrefix + MarkerExit
	markStart = markPrefix + MarkerStart
)

// splitValue separates a counted value (a breakdown value, a location, a channel) into the real
// value it is, or the marker it stands for (value ""). A value is a client's text as stored,
// whatever bytes it starts with: a property value may start with ingest.Internal (a NUL), which
// no id or name may, and it is listed as it was sent (tester 59's F2: "\x00page" was listed as
// page, beside a real page).
func splitValue(text string) (value, marker string) {
	if m, ok := strings.CutPrefix(text, markPrefix); ok {
		return "", m
	}
	return text, ""
}

// splitLabel is splitValue for a counted touchpoint label (labelSQL), where the label of a page
// or screen without a name (unnamedLabel) is the value page or screen.
func splitLabel(text string) (value, marker string) {
	if typ, ok := unnamedLabel(text); ok {
		return typ, ""
	}
	return splitValue(text)
}

// unnamedLabel reports whether label is the touchpoint label of a page or screen call sent
// without a name (labelSQL: ingest.Internal and the type), and returns the type. No name starts
// with ingest.Internal (the ingest decoder refuses a name with a NUL).
func unnamedLabel(label string) (typ string, ok bool) {
	return strings.CutPrefix(label, ingest.Internal)
}

// labelSortKey is the text a counted touchpoint label sorts by among equal counts: its value, so
// that pages without a name sort as page; markers (markPrefix) last. Values sort by their text.
func labelSortKey(text string) string { return strings.TrimPrefix(text, ingest.Internal) }
