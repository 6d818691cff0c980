package ingest

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// placeholderIDs are the ids, lower case, that broken client code sends for an id it does not
// have: JavaScript's identify(user.id) with user.id unset ("undefined", "[object Object]", NaN),
// other languages' empty values ("null", "None", 0), booleans, and the names of the id itself
// ("id", "distinct_id", "email", "anonymous", "guest", "not_authenticated"). It is PostHog's list
// of illegal distinct ids (plugin-server/src/worker/ingestion/persons/person-merge-service.ts in
// PostHog/posthog, commit 63b37ae, isDistinctIdIllegal: its case-insensitive and case-sensitive
// lists), every entry read case-insensitively: PostHog takes "nan" and "Null" for ids, but no
// shop names a customer so, and broken code writes them in any case ("NULL", "None").
//
// To PostHog's list it adds what other languages and templates print for nothing, seen from
// clients as often: C's printf of a null pointer ("(null)"), .NET's and Objective-C's ("<null>"),
// Go's, Ruby's and Lua's "nil", JavaScript's "[object Undefined]" and a template's "undefined
// undefined" (first and last name both unset), the sentinels "-1" (Amplitude's session_id for
// "no session" too), "unknown" and "n/a", and the nil UUID, all zeros, which RFC 9562 (section
// 5.9) reserves as never naming anything.
var placeholderIDs = map[string]bool{
	"anonymous": true, "guest": true, "distinctid": true, "distinct_id": true, "id": true,
	"not_authenticated": true, "email": true, "undefined": true, "true": true, "false": true,
	"[object object]": true, "nan": true, "none": true, "null": true, "0": true,
	"(null)": true, "<null>": true, "nil": true, "[object undefined]": true, "undefined undefined": true,
	"-1": true, "unknown": true, "n/a": true, "00000000-0000-0000-0000-000000000000": true,
}

// invisible reports the characters Placeholder trims besides white space: the zero-width ones and
// the byte order mark, which a copy and paste or a file's start leaves, and which show as nothing.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || r == '\u200b' || r == '\u200c' || r == '\u200d' || r == '\u2060' || r == '\ufeff'
}

// blankID is the Placeholder name of an id of nothing but white space.
const blankID = "blank"

// Placeholder reports whether id, as Decode reads it (a JSON number as its CanonicalNumber text,
// so 0, 0.0 and "0" alike), is a placeholder a client sent for an id it does not have rather than
// an id: empty or white space only (name "blank"), or, case-insensitively and with white space
// and invisible characters (zero-width, byte order mark) around it ignored, one of the placeholder ids (placeholderIDs: "undefined", "null", "0",
// "[object Object]", "true", "id", …), also when wrapped in single or double quotes ("'null'",
// `"undefined"`), as PostHog has seen them sent. name is the list entry id matched, lower case,
// unquoted ("undefined", "[object object]", "blank"): a small fixed set, fit for a metric label.
//
// Decode treats such an id as absent (see Event.Placeholders), so that the many visitors whose
// client sent "undefined" are not merged into one person: PostHog refuses to identify or merge on
// these ids (isDistinctIdIllegal, above), Amplitude refuses such user ids, and Segment's spec asks
// for a userId that is "a unique identifier" of the user, which a placeholder is not.
func Placeholder(id string) (name string, ok bool) {
	s := strings.ToLower(strings.TrimFunc(id, invisible))
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		s = strings.TrimFunc(s[1:len(s)-1], invisible)
	}
	switch {
	case s == "":
		return blankID, true
	case placeholderIDs[s]:
		return s, true
	}
	return "", false
}

// PlaceholderID is an id a message sent that Decode read as no id: Field is the member it was
// sent in (userId, anonymousId or previousId), Name what Placeholder named it.
type PlaceholderID struct {
	Field, Name string
}

// dropPlaceholders clears the event's userId, anonymousId and previousId where they are
// placeholders (Placeholder), and lists them in e.Placeholders. An absent id ("") is not one.
func (e *Event) dropPlaceholders() {
	// One call per id rather than a loop over pointers to them: pointers into e would move the
	// Event, some 450 bytes, to the heap on every decode.
	e.UserID = e.dropPlaceholder("userId", e.UserID)
	e.AnonymousID = e.dropPlaceholder("anonymousId", e.AnonymousID)
	e.PreviousID = e.dropPlaceholder("previousId", e.PreviousID)
}

// dropPlaceholder returns id, or "" when it is a placeholder, which it lists in e.Placeholders
// as sent in field.
func (e *Event) dropPlaceholder(field, id string) string {
	if id == "" {
		return ""
	}
	if name, ok := Placeholder(id); ok {
		e.Placeholders = append(e.Placeholders, PlaceholderID{Field: field, Name: name})
		return ""
	}
	return id
}

// placeholderJSON reports whether a member's JSON value is a placeholder id (Placeholder): a
// string, or a number read as its CanonicalNumber text.
func placeholderJSON(v []byte) bool {
	text, ok := stringOf(v)
	if !ok {
		if text, ok = CanonicalNumber(string(v)); !ok {
			return false
		}
	}
	_, ok = Placeholder(text)
	return ok
}

// missingIdentity is the error of an event with neither userId nor anonymousId once
// placeholders are dropped: it names the placeholder the client sent, when it sent one.
func (e *Event) missingIdentity() error {
	const need = "one of userId or anonymousId is required"
	for _, p := range e.Placeholders {
		if p.Field == "userId" || p.Field == "anonymousId" {
			return &InvalidError{Reason: ReasonMissingIdentity, Field: p.Field,
				Err: fmt.Errorf("%s is a placeholder (%s), not an id: %s", p.Field, p.Name, need)}
		}
	}
	return &InvalidError{Reason: ReasonMissingIdentity, Field: "userId", Err: errors.New(need)}
}
