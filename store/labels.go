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

// splitLabel separates a counted text into the real value it is, or the marker it stands for
// (value ""). The label of a page or screen without a name (unnamedLabel) is the value page or
// screen.
func splitLabel(text string) (value, marker string) {
	if m, ok := strings.CutPrefix(text, markPrefix); ok {
		return "", m
	}
	if typ, ok := unnamedLabel(text); ok {
		return typ, ""
	}
	return text, ""
}

// unnamedLabel reports whether label is the touchpoint label of a page or screen call sent
// without a name (labelSQL: ingest.Internal and the type), and returns the type.
func unnamedLabel(label string) (typ string, ok bool) {
	return strings.CutPrefix(label, ingest.Internal)
}

// sortKey is the text a counted text sorts by among equal counts: its value, so that pages
// without a name sort as page; markers (markPrefix) last.
func sortKey(text string) string { return strings.TrimPrefix(text, ingest.Internal) }
