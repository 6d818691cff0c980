package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of objects and arrays in a message or request body. It is
// Waymark's own limit, below encoding/json's 10,000: the scanner recurses once per level, and a
// 20 KB body nested 10,000 deep would cost megabytes of stack; no Segment message nests near 512.
const maxJSONDepth = 512

// jsonScanner reads one JSON text in a single pass, checking it as RFC 8259 requires, without
// building values: callers read the members they use and skip the rest, and keep the bytes of
// the values they pass on exactly as they were sent.
type jsonScanner struct {
	data  []byte
	pos   int
	depth int
	// memberStart is where the member being read by an object's member function starts (at its
	// name's opening quote).
	memberStart int
	// typeErrs are the members of a known name whose value has the wrong type, of the members a
	// message needs (not cosmetic), in the order read; a later copy of a member takes its
	// earlier copies' back (replaced), as the last copy is the member. The first left is the
	// error (typeErr). Reading goes on past them, so a syntax error later in the text is still
	// the error reported.
	typeErrs []*InvalidError
	// ignored are the cosmetic members (see cosmetic) whose value has the wrong type, in the
	// order read: read as absent, they do not refuse the message.
	ignored []*InvalidError
}

// mistyped records a member of the wrong type (see typeErrs).
func (s *jsonScanner) mistyped(e *InvalidError) { s.typeErrs = append(s.typeErrs, e) }

// typeErr returns the first member of the wrong type that a later copy did not replace, nil
// when there is none.
func (s *jsonScanner) typeErr() *InvalidError {
	if len(s.typeErrs) == 0 {
		return nil
	}
	return s.typeErrs[0]
}

// replaced is called as a member named field is read: an earlier copy of it, and the members
// inside that copy, no longer count, so their wrong types (typeErrs) and the cosmetic ones
// ignored are forgotten (tester 44's F6: "timestamp":5,"timestamp":"2026-…" was refused).
func (s *jsonScanner) replaced(field string) {
	within := func(e *InvalidError) bool { return e.Field == field || strings.HasPrefix(e.Field, field+".") }
	if len(s.typeErrs) > 0 {
		s.typeErrs = slices.DeleteFunc(s.typeErrs, within)
	}
	if len(s.ignored) > 0 {
		s.ignored = slices.DeleteFunc(s.ignored, within)
	}
}

// syntaxError is JSON that cannot be read.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.offset) }

func (s *jsonScanner) fail(msg string) error { return &syntaxError{msg, s.pos} }

// depthError is JSON nested deeper than maxJSONDepth: valid JSON (encoding/json reads it) that
// Waymark refuses.
type depthError struct{ offset int }

func (e *depthError) Error() string {
	return fmt.Sprintf("JSON nested deeper than %d levels at byte %d", maxJSONDepth, e.offset)
}

// skipDeep moves past a value that a read refused with a depthError: the value starts at start
// and the read began at nesting depth. It reads the value as value does, checking it as RFC 8259
// requires, but without recursing (a stack of the closing bytes it expects, on the heap), so any
// depth the body's size allows costs a few bytes a level; it leaves the scanner after the value
// at depth, for the reading to go on. Text that is no JSON inside the value is the error value
// would give at that depth (tester 31's F5).
func (s *jsonScanner) skipDeep(start, depth int) error {
	s.pos, s.depth = start, depth
	var closing []byte
	// What may come next: a value (or, just after '[', the array's end), a member name (or,
	// just after '{', the object's end), or, after a value, a ',' or its container's end.
	const (
		value = iota
		valueOrEnd
		name
		nameOrEnd
		afterValue
	)
	next := value
	for {
		c := s.peek()
		switch next {
		case value, valueOrEnd:
			switch {
			case c == ']' && next == valueOrEnd:
				closing, next = closing[:len(closing)-1], afterValue
				s.pos++
			case c == '{':
				closing, next = append(closing, '}'), nameOrEnd
				s.pos++
			case c == '[':
				closing, next = append(closing, ']'), valueOrEnd
				s.pos++
			default:
				if _, err := s.value(); err != nil { // a scalar: value does not recurse for it
					return err
				}
				next = afterValue
			}
		case name, nameOrEnd:
			switch {
			case c == '}' && next == nameOrEnd:
				closing, next = closing[:len(closing)-1], afterValue
				s.pos++
			case c == '"':
				if _, _, err := s.rawString(); err != nil {
					return err
				}
				if s.peek() != ':' {
					return s.fail("expected ':' after a member name")
				}
				s.pos++
				next = value
			default:
				return s.fail("expected a member name")
			}
		case afterValue:
			if len(closing) == 0 {
				return nil
			}
			switch end := closing[len(closing)-1]; c {
			case ',':
				s.pos++
				next = value
				if end == '}' {
					next = name
				}
			case end:
				closing = closing[:len(closing)-1]
				s.pos++
			default:
				return s.fail(fmt.Sprintf("expected ',' or '%c'", end))
			}
		}
	}
}

// valueReadPastDepth reads one value as value does, but one nested deeper than maxJSONDepth is
// read past (skipDeep) and returned as sent, without an error: for a reader that refuses it
// later, or only looks around it.
func (s *jsonScanner) valueReadPastDepth() ([]byte, error) {
	start, depth := s.valueStart(), s.depth
	raw, err := s.value()
	if errors.As(err, new(*depthError)) {
		err = s.skipDeep(start, depth)
		raw = s.data[start:s.pos]
	}
	return raw, err
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// valueStart is where the next value starts: the scanner moved past any white space before it.
func (s *jsonScanner) valueStart() int {
	s.skipSpace()
	return s.pos
}

// peek returns the next byte that is not white space, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end checks that nothing but white space follows.
func (s *jsonScanner) end() error {
	if s.skipSpace(); s.pos < len(s.data) {
		return s.fail("unexpected data after the JSON value")
	}
	return nil
}

// value reads one value of any type and returns its bytes as sent.
func (s *jsonScanner) value() ([]byte, error) {
	c := s.peek()
	start := s.pos
	var err error
	switch {
	case c == '{':
		err = s.object(nil)
	case c == '[':
		err = s.array(nil)
	case c == '"':
		_, _, err = s.rawString()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		err = s.number()
	case s.pos == len(s.data):
		err = s.fail("unexpected end of JSON")
	default:
		err = s.fail(fmt.Sprintf("invalid character %q looking for a value", c))
	}
	return s.data[start:s.pos], err
}

// object reads an object; s must be at its '{'. For each member, member (when not nil) is called
// with the member's name and must read its value; a nil member skips every value.
func (s *jsonScanner) object(member func(name []byte) error) error {
	more, err := s.open('}')
	for more && err == nil {
		if s.peek() != '"' {
			return s.fail("expected a member name")
		}
		start := s.pos
		var raw []byte
		var escaped bool
		if raw, escaped, err = s.rawString(); err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("expected ':' after a member name")
		}
		s.pos++
		if member == nil {
			_, err = s.value()
		} else {
			s.memberStart = start
			err = member(unquoteBytes(raw, escaped))
		}
		if err != nil {
			return err
		}
		more, err = s.next('}', "an object member")
	}
	return err
}

// array reads an array; s must be at its '['. For each element, element (when not nil) is called
// and must read it; a nil element skips them.
func (s *jsonScanner) array(element func() error) error {
	more, err := s.open(']')
	for more && err == nil {
		if element == nil {
			_, err = s.value()
		} else {
			err = element()
		}
		if err != nil {
			return err
		}
		more, err = s.next(']', "an array element")
	}
	return err
}

// open enters an object or array at its opening byte, and reports whether it has items (false
// when it is empty, and already closed).
func (s *jsonScanner) open(closing byte) (bool, error) {
	s.depth++
	if s.depth > maxJSONDepth {
		return false, &depthError{s.pos}
	}
	s.pos++
	if s.peek() == closing {
		s.pos++
		s.depth--
		return false, nil
	}
	return true, nil
}

// next moves past the ',' before another item (true) or the closing byte (false).
func (s *jsonScanner) next(closing byte, after string) (bool, error) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case closing:
		s.pos++
		s.depth--
		return false, nil
	}
	return false, s.fail(fmt.Sprintf("expected ',' or '%c' after %s", closing, after))
}

// rawString reads a string; s must be at its opening quote. It returns the text between the
// quotes as sent, and whether that has escapes.
func (s *jsonScanner) rawString() ([]byte, bool, error) {
	s.pos++
	start, escaped := s.pos, false
	for s.pos < len(s.data) {
		if plainStringByte[s.data[s.pos]] {
			s.pos++
			continue
		}
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return s.data[start : s.pos-1], escaped, nil
		case c == '\\':
			escaped = true
			if s.pos+1 >= len(s.data) {
				return nil, false, s.fail("unterminated string")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) || !isHex(s.data[s.pos+2:s.pos+6]) {
					return nil, false, s.fail(`invalid \u escape`)
				}
				s.pos += 6
			default:
				return nil, false, s.fail(fmt.Sprintf("invalid escape %q", s.data[s.pos:s.pos+2]))
			}
		default:
			return nil, false, s.fail("control character in string")
		}
	}
	return nil, false, s.fail("unterminated string")
}

// plainStringByte marks the bytes a string holds as they are: all but quotes, backslashes and
// control characters. It is never written after initialisation.
var plainStringByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unquote is a string's text: as sent when it has no escapes and is UTF-8, else read as
// encoding/json reads it (unpaired surrogates and bytes that are not UTF-8 become U+FFFD).
func unquote(raw []byte, escaped bool) string {
	if !escaped && utf8.Valid(raw) {
		return string(raw)
	}
	var text string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	if err := json.Unmarshal(quoted, &text); err != nil {
		return string(raw) // not reached: rawString checked every escape
	}
	return text
}

// loneSurrogate reports whether raw, a string's text as sent, has a \u escape of half a UTF-16
// surrogate pair (U+D800–U+DFFF) that is not a high half directly followed by a low half's escape:
// no character (RFC 8259 §8.2 leaves such a string's reading open; encoding/json reads U+FFFD).
// A JavaScript string cut in the middle of an emoji is sent so.
func loneSurrogate(raw []byte) bool {
	half := func(i int) rune { // the escape at raw[i:], if it is \u and half a pair, else 0
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0
		}
		r, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
		if err != nil || r < 0xD800 || r > 0xDFFF {
			return 0
		}
		return rune(r)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		h := half(i)
		switch {
		case h == 0:
			i++ // past the escaped character: an escaped backslash is text, "\\ud800" no escape
		case h >= 0xDC00:
			return true // a low half first
		default:
			if lo := half(i + 6); lo < 0xDC00 {
				return true // a high half with no low half after it
			}
			i += 11
		}
	}
	return false
}

// unquoteBytes is unquote without a copy for text that needs no decoding.
func unquoteBytes(raw []byte, escaped bool) []byte {
	if !escaped && utf8.Valid(raw) {
		return raw
	}
	return []byte(unquote(raw, escaped))
}

// stringOf returns the text of v when v is a JSON string value (quotes included), else false.
func stringOf(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	return unquote(inner, bytes.IndexByte(inner, '\\') >= 0), true
}

func (s *jsonScanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail("invalid literal, want " + word)
	}
	s.pos += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return s.fail("invalid number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.fail("invalid number: no digits after '.'")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.fail("invalid number: no digits in the exponent")
		}
	}
	return nil
}

// wrongType records that field has a value of the wrong type and skips the value: among the
// ignored fields when the field is cosmetic, else as the type error (the first such field is
// reported).
func (s *jsonScanner) wrongType(field, want string) error {
	raw, err := s.value()
	if err != nil {
		return err
	}
	bad := &InvalidError{Reason: ReasonInvalidField, Field: field, Err: fmt.Errorf("want %s, got %s", want, abbreviate(raw))}
	if cosmetic(field) {
		s.ignored = append(s.ignored, bad)
	} else {
		s.mistyped(bad)
	}
	return nil
}

// str reads a string or null member into *dst (null leaves it alone).
func (s *jsonScanner) str(field string, dst *string) error {
	switch s.peek() {
	case '"':
		raw, escaped, err := s.rawString()
		*dst = unquote(raw, escaped)
		return err
	case 'n':
		*dst = "" // null is as absent, also after an earlier copy of the member (tester 43's F2)
		return s.literal("null")
	}
	return s.wrongType(field, "a string")
}

// members reads an object or null member, calling member for each of its members.
func (s *jsonScanner) members(field string, member func(name []byte) error) error {
	switch s.peek() {
	case '{':
		return s.object(member)
	case 'n':
		return s.literal("null")
	}
	return s.wrongType(field, "an object")
}

// stringOrNumber reads a string, a number or null member into *dst (null leaves it ""): a number
// is its canonical text (numberText), so context.campaign.name 2024 is the campaign "2024", as a
// page's properties.url 5 is the URL "5". A boolean, an object or an array is the field's type
// error.
func (s *jsonScanner) stringOrNumber(field string, dst *string) error {
	switch c := s.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		var err error
		*dst, err = s.numberText()
		return err
	case c == '"' || c == 'n':
		return s.str(field, dst)
	}
	return s.wrongType(field, "a string or a number")
}

// numberText reads a JSON number as the text Waymark reads it as: its CanonicalNumber text, one
// value however it is written (4200, 4.2e3 and 4200.0 are "4200").
func (s *jsonScanner) numberText() (string, error) {
	raw, err := s.value()
	text, _ := CanonicalNumber(string(raw))
	return text, err
}

// stringField is a string member to read: its name, its path in the message (for errors) and
// where its text goes.
type stringField struct {
	name, path string
	dst        *string
}

// stringMembers reads an object or null member, taking the listed members with read (str, or
// stringOrNumber) and skipping the rest. It replaces what an earlier copy of the member gave,
// whole: the last copy wins.
func (s *jsonScanner) stringMembers(field string, read func(field string, dst *string) error, fields ...stringField) error {
	for _, f := range fields {
		*f.dst = ""
	}
	return s.members(field, func(name []byte) error {
		for _, f := range fields {
			if string(name) == f.name {
				s.replaced(f.path)
				return read(f.path, f.dst)
			}
		}
		_, err := s.value()
		return err
	})
}

// id reads an id sent as a string or a number; null is "" (whatever an earlier copy of the
// member said). A number is one id however it is
// written: its CanonicalNumber text, so userId 4200, 4.2e3 and 4200.0 are the person "4200", as
// the string "4200" is (messageId, userId, anonymousId, previousId and context.sessionId alike).
// A string escaping half a UTF-16 surrogate pair alone (loneSurrogate), or holding bytes that
// are not UTF-8, is refused, naming field: read as U+FFFD, "a\ud800", "a\udfff", "a\xff" and
// "a\ufffd" would be one id.
func (s *jsonScanner) id(field string, dst *string) error {
	switch c := s.peek(); {
	case c == '"':
		raw, escaped, err := s.rawString()
		if err == nil && (escaped && loneSurrogate(raw) || !utf8.Valid(raw)) {
			why := "escapes half of a UTF-16 surrogate pair without the other, which is no character"
			if !utf8.Valid(raw) {
				why = "holds bytes that are not UTF-8, which are no character"
			}
			s.mistyped(&InvalidError{Reason: ReasonInvalidField, Field: field, Err: fmt.Errorf(
				"%s %s; send the id as text a client's string holds", abbreviate(raw), why)})
			return nil
		}
		*dst = unquote(raw, escaped)
		return err
	case c == 'n':
		*dst = ""
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		var err error
		*dst, err = s.numberText() // 4200, 4.2e3 and 4200.0 are one id
		return err
	}
	return s.wrongType(field, "a string or a number")
}

// text reads any value as property text: a string's text, anything else as its JSON as sent.
func (s *jsonScanner) text() (string, error) {
	if s.peek() == '"' {
		raw, escaped, err := s.rawString()
		return unquote(raw, escaped), err
	}
	raw, err := s.value()
	return string(raw), err
}

// abbreviate is raw JSON shortened for an error message.
func abbreviate(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// member is one member of a JSON object: its name, and where it starts (at the name) and ends
// (after the value) in the object's bytes.
type member struct {
	name       []byte // decoded; a part of the object's bytes when it needs no decoding
	start, end int
	value      []byte
}

// objectMembers appends the members of the object in raw, which must be valid JSON, to dst.
func objectMembers(raw []byte, dst []member) ([]member, error) {
	s := &jsonScanner{data: raw}
	if s.peek() != '{' {
		return dst, s.fail("expected an object")
	}
	err := s.object(func(name []byte) error {
		start := s.memberStart
		v, err := s.value()
		dst = append(dst, member{name, start, s.pos, v})
		return err
	})
	return dst, err
}

// topMembers is objectMembers for a text whose members' values may nest deeper than
// maxJSONDepth: such a value is read past (skipDeep) and kept as sent, for a reader that only
// looks at the top level (isBatchBody: a batch body with one event too deep is still a batch
// body, whose other events are read: tester 31's F4).
func topMembers(raw []byte) ([]member, error) {
	s := &jsonScanner{data: raw}
	if s.peek() != '{' {
		return nil, s.fail("expected an object")
	}
	var dst []member
	err := s.object(func(name []byte) error {
		start := s.memberStart
		v, err := s.valueReadPastDepth()
		dst = append(dst, member{name, start, s.pos, v})
		return err
	})
	if err == nil {
		err = s.end()
	}
	return dst, err
}

// lookup returns the last member named name, or nil.
func lookup(members []member, name string) *member {
	for i := len(members) - 1; i >= 0; i-- {
		if string(members[i].name) == name {
			return &members[i]
		}
	}
	return nil
}

// field is a member to add to an object: its name and its value as JSON.
type field struct {
	name  string
	value []byte
}

// appendObject appends the object in raw with its members minus those named in skip, followed
// by the extra members. Every kept member is copied as sent.
func appendObject(dst, raw []byte, members []member, skip []string, extra []field) []byte {
	dst = append(dst, '{')
	n := 0
	for _, m := range members {
		if skipped(skip, m.name) {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, raw[m.start:m.end]...)
		n++
	}
	for _, f := range extra {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(append(append(dst, '"'), f.name...), '"', ':'), f.value...)
		n++
	}
	return append(dst, '}')
}

func skipped(skip []string, name []byte) bool {
	for _, s := range skip {
		if s == string(name) {
			return true
		}
	}
	return false
}

// quoteASCII is s as a JSON string; s must need no escapes (times, hex ids, call types).
func quoteASCII(s string) []byte {
	return append(append(append(make([]byte, 0, len(s)+2), '"'), s...), '"')
}
