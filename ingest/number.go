package ingest

import (
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
func CanonicalNumber(text string) (string, bool) {
	neg, mant, exp, ok := splitNumber(text)
	if !ok {
		return text, false
	}
	// digits × 10^(point − len(digits)) is the value, with no leading or trailing zeros in digits.
	digits := strings.TrimLeft(mant.digits, "0")
	point := int64(mant.point) - int64(len(mant.digits)-len(digits)) + exp
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return "0", true
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	k, n := int64(len(digits)), point
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
		b.WriteString(digits[:1])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.FormatInt(n-1, 10))
	}
	return b.String(), true
}

// mantissa is a JSON number's digits without its point, and where the point was (how many of
// the digits come before it).
type mantissa struct {
	digits string
	point  int
}

// maxExponent bounds the exponent CanonicalNumber reads (|e| ≤ 1e9); a JSON number with a larger
// one is kept as sent rather than overflow the arithmetic. No real property comes near it.
const maxExponent = 1_000_000_000

// splitNumber reads text as a JSON number: its sign, mantissa and exponent.
func splitNumber(text string) (neg bool, m mantissa, exp int64, ok bool) {
	s := text
	if neg = strings.HasPrefix(s, "-"); neg {
		s = s[1:]
	}
	intEnd := digitsEnd(s)
	if intEnd == 0 || intEnd > 1 && s[0] == '0' {
		return false, m, 0, false
	}
	whole, s := s[:intEnd], s[intEnd:]
	frac := ""
	if strings.HasPrefix(s, ".") {
		end := digitsEnd(s[1:])
		if end == 0 {
			return false, m, 0, false
		}
		frac, s = s[1:1+end], s[1+end:]
	}
	if s != "" {
		if s[0] != 'e' && s[0] != 'E' {
			return false, m, 0, false
		}
		s = s[1:]
		sign := int64(1)
		if s != "" && (s[0] == '+' || s[0] == '-') {
			if s[0] == '-' {
				sign = -1
			}
			s = s[1:]
		}
		if s == "" || digitsEnd(s) != len(s) {
			return false, m, 0, false
		}
		e, err := strconv.ParseInt(s, 10, 64)
		if err != nil || e > maxExponent {
			return false, m, 0, false
		}
		exp = sign * e
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
