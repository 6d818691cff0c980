package ingest

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// CanonicalNumber returns the one text Waymark stores for a JSON number and true, or text and
// false when text is not a JSON number (RFC 8259 §6: -?int frac? exp?, no spaces, no leading
// zeros, no "+"). 100, 100.0, 1e2, 1.00E+2 and 100e0 all give "100", -0 gives "0", 0.50 gives "0.5":
// the value is kept exactly as a decimal (no rounding through float64, so an integer id of
// 20 digits keeps every digit) and written the way JavaScript's Number::toString writes a number
// (ECMA-262 §6.1.6.1.20): plain digits while the decimal point lies at most 21 digits after the
// first digit and fewer than 7 zeros before it, else d.ddde+N / d.ddde-N. That is the form
// analytics.js, Mixpanel, Amplitude and PostHog show numbers in, so "100" in a filter, a breakdown
// value and a JSON string sent by a client that writes numbers as text all read alike.
//
// A JSON string is stored as sent: the string "100" has the text of the number 100 and so equals
// it, as in Amplitude's and PostHog's property filters; the strings "100.0" and "1e2" stay text.
//
// An exponent of any size is read: 0e99999999999999999999 is "0", and 1e999999999999,
// 10e999999999998 and 0.1e1000000000000 are all "1e+999999999999", in the same form as 1e400's
// "1e+400".
func CanonicalNumber(text string) (string, bool) {
	neg, mant, exp, ok := splitNumber(text)
	if !ok {
		return text, false
	}
	// digits × 10^(point − len(digits)) is the value, with no leading or trailing zeros in digits;
	// point is exp plus shift.
	digits := strings.TrimLeft(mant.digits, "0")
	shift := int64(mant.point) - int64(len(mant.digits)-len(digits))
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return "0", true
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	if len(exp) > maxExponentDigits+1 { // the sign and more digits than int64 arithmetic takes
		e, _ := new(big.Int).SetString(exp, 10)
		e.Add(e, big.NewInt(shift-1))
		writeExponentForm(&b, digits, e.Sign() >= 0, e.String())
		return b.String(), true
	}
	e, _ := strconv.ParseInt(exp, 10, 64)
	k, n := int64(len(digits)), shift+e
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", int(n-k)))
	case 0 < n && n <= 21:
		b.WriteString(digits[:int(n)])
		b.WriteByte('.')
		b.WriteString(digits[int(n):])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", int(-n)))
		b.WriteString(digits)
	default:
		writeExponentForm(&b, digits, n-1 >= 0, strconv.FormatInt(n-1, 10))
	}
	return b.String(), true
}

// writeExponentForm writes d.ddde+N or d.ddde-N: digits with a point after the first, and the
// exponent's text, with "+" before it when it is not negative.
func writeExponentForm(b *strings.Builder, digits string, nonNegative bool, exp string) {
	b.WriteString(digits[:1])
	if len(digits) > 1 {
		b.WriteByte('.')
		b.WriteString(digits[1:])
	}
	b.WriteByte('e')
	if nonNegative {
		b.WriteByte('+')
	}
	b.WriteString(exp)
}

// mantissa is a JSON number's digits without its point, and where the point was (how many of
// the digits come before it).
type mantissa struct {
	digits string
	point  int
}

// maxExponentDigits is how many digits of an exponent CanonicalNumber adds in int64 arithmetic:
// a longer exponent (|e| ≥ 10^15) is added as a big.Int.
const maxExponentDigits = 15

// splitNumber reads text as a JSON number: its sign, mantissa and exponent, the exponent as
// "-" or "+" and its digits without leading zeros ("+" for none).
func splitNumber(text string) (neg bool, m mantissa, exp string, ok bool) {
	s := text
	if neg = strings.HasPrefix(s, "-"); neg {
		s = s[1:]
	}
	intEnd := digitsEnd(s)
	if intEnd == 0 || intEnd > 1 && s[0] == '0' {
		return false, m, "", false
	}
	whole, s := s[:intEnd], s[intEnd:]
	frac := ""
	if strings.HasPrefix(s, ".") {
		end := digitsEnd(s[1:])
		if end == 0 {
			return false, m, "", false
		}
		frac, s = s[1:1+end], s[1+end:]
	}
	exp = "+"
	if s != "" {
		if s[0] != 'e' && s[0] != 'E' {
			return false, m, "", false
		}
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			exp = s[:1]
			s = s[1:]
		}
		if s == "" || digitsEnd(s) != len(s) {
			return false, m, "", false
		}
		exp += strings.TrimLeft(s, "0")
	}
	return neg, mantissa{digits: whole + frac, point: len(whole)}, exp, true
}

// digitsEnd is the length of s's leading run of ASCII digits.
func digitsEnd(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// CanonicalArray returns the one text Waymark stores for a JSON array and true, or text and
// false when text is not one JSON array. The text is compact (no space outside strings);
// numbers in it are CanonicalNumber's; strings are written with encoding/json's escapes (", \
// and control characters, U+2028 and U+2029; no HTML escapes), whatever escapes the client used
// (`"\u0041"` is `"A"`); an object's members are sorted by name, bytewise (RFC 8785's JSON
// Canonicalization Scheme sorts them too, by UTF-16 code units, which differs only for names
// beyond U+FFFF), the last of repeated names kept. So ["a","b"] and ["a", "b"], [100] and [1e2]
// are one value in a breakdown and a filter, as two spellings of a number are.
func CanonicalArray(text string) (string, bool) {
	if !strings.HasPrefix(text, "[") {
		return text, false
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return text, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return text, false // more than one value
	}
	var b strings.Builder
	writeCanonicalJSON(&b, v)
	return b.String(), true
}

// writeCanonicalJSON writes v, as encoding/json decodes it with UseNumber, as CanonicalArray
// says.
func writeCanonicalJSON(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		n, _ := CanonicalNumber(v.String())
		b.WriteString(n)
	case string:
		writeJSONString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonicalJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			writeCanonicalJSON(b, v[k])
		}
		b.WriteByte('}')
	}
}

// writeJSONString writes s as a JSON string, with encoding/json's escapes but no HTML escapes.
func writeJSONString(b *strings.Builder, s string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
