package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/queryapi"
)

// Limits on a request's head, answered in JSON naming what is too long. http.Server reads at
// most serverMaxHeaderBytes of a request line and header fields (Go's default,
// http.DefaultMaxHeaderBytes, 1 MiB, plus the 4 KiB net/http allows beyond it) and answers a
// larger head itself, 431 in text/plain, before any handler sees it: that bounds what one
// request holds in memory. Within it, limitHead answers a URL longer than maxURLBytes with 414
// and header fields longer than maxHeaderBytes with 431, as the tracking API and the query API
// answer every bad request: a JSON body naming the parameter or header.
const (
	serverMaxHeaderBytes = http.DefaultMaxHeaderBytes
	maxURLBytes          = 64 << 10 // the request target: path and query string
	maxHeaderBytes       = 64 << 10 // header fields: names, values, ": " and CRLF of each
)

// limitHead answers a request whose URL or header fields are too long (maxURLBytes,
// maxHeaderBytes) with 414 or 431 and a JSON body naming the longest query parameter (or "url"
// when the path is the longer part) or the header that alone makes the fields too long
// (headerFieldsTooLarge), in the shape of the API it was sent to (the query API's for a path it
// answers, queryapi.Answers; the tracking API's elsewhere, with its CORS headers), and passes the
// others to next.
func limitHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError, hint := ingest.WriteError, ""
		if queryapi.Answers(r) {
			writeError, hint = queryapi.WriteError, "; send a query that long in the body of POST /api/v1/batch"
		} else {
			ingest.SetCORS(w, r) // so the shop's page can read why its call was refused
		}
		if status, name, msg := urlTooLong(r); status != 0 {
			writeError(w, status, name, msg+hint)
			return
		}
		if status, name, msg := headerFieldsTooLarge(r.Header); status != 0 {
			writeError(w, status, name, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// urlTooLong returns 414, the part to name and why when r's URL is over maxURLBytes, and 0 when
// it is not. The part is the longest query parameter (its name=value) or the path ("url"), named
// only when it alone makes the URL too long, the rest fitting without it, as headerFieldsTooLarge
// names a header: a URL of a thousand short parameters is no one parameter's fault. Then the name
// is "" and the answer says how many parameters were sent.
func urlTooLong(r *http.Request) (status int, name, message string) {
	n := len(r.RequestURI)
	if n <= maxURLBytes {
		return 0, "", ""
	}
	name, size, params := longestParam(r.URL.RawQuery)
	if size < len(r.URL.EscapedPath()) {
		name, size = "url", len(r.URL.EscapedPath())
	}
	if n-size > maxURLBytes {
		return http.StatusRequestURITooLong, "", fmt.Sprintf(
			"the request URL is %d bytes, at most %d, in %d query parameters, and no one of them is the cause (the longest part is %d bytes): send fewer", n, maxURLBytes, params, size)
	}
	part := "its path"
	if name != "url" {
		part = fmt.Sprintf("parameter %q", clipName(name))
	}
	return http.StatusRequestURITooLong, clipName(name), fmt.Sprintf(
		"the request URL is %d bytes, at most %d (%s is %d bytes)", n, maxURLBytes, part, size)
}

// headerFieldsTooLarge returns 431, the header to name and why when header's fields are over
// maxHeaderBytes in all, and 0 when they are not. A header (its fields, when it is sent more than
// once) is named only when it alone makes them too large, the others fitting without it: 20,000
// small fields are no one field's fault, and the longest of them named would send the caller
// looking at a header that is not the cause (tester F5 saw its 26-byte Authorization named).
// Then the name is "" and the answer says how many fields of how many bytes were sent.
func headerFieldsTooLarge(header http.Header) (status int, name, message string) {
	total, fields, longest, longestSize := 0, 0, "", 0
	for name, values := range header {
		size := 0
		for _, v := range values {
			size += len(name) + len(": ") + len(v) + len("\r\n")
		}
		total, fields = total+size, fields+len(values)
		if size > longestSize || size == longestSize && name < longest {
			longest, longestSize = name, size
		}
	}
	switch {
	case total <= maxHeaderBytes:
		return 0, "", ""
	case total-longestSize <= maxHeaderBytes:
		return http.StatusRequestHeaderFieldsTooLarge, clipName(longest), fmt.Sprintf(
			"the request's header fields are %d bytes, at most %d: %q is %d bytes, and the others fit without it", total, maxHeaderBytes, clipName(longest), longestSize)
	}
	return http.StatusRequestHeaderFieldsTooLarge, "", fmt.Sprintf(
		"the request's %d header fields are %d bytes in all, at most %d, and no one of them is the cause (the longest is %d bytes): send fewer", fields, total, maxHeaderBytes, longestSize)
}

// longestParam returns the name of the longest name=value pair of a raw query string (its name
// decoded when it can be), the pair's length in bytes, and how many pairs there are; "", 0, 0
// for an empty query.
func longestParam(rawQuery string) (name string, size, pairs int) {
	if rawQuery == "" {
		return "", 0, 0
	}
	for pair := range strings.SplitSeq(rawQuery, "&") {
		pairs++
		if len(pair) <= size {
			continue
		}
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		name, size = key, len(pair)
	}
	return name, size, pairs
}

// maxNameBytes is the most of a parameter's or header's name an answer repeats: a name may itself
// be what makes a request too long.
const maxNameBytes = 256

// clipName returns name cut to maxNameBytes at a character boundary, with "…" when cut.
func clipName(name string) string {
	if len(name) <= maxNameBytes {
		return name
	}
	i := maxNameBytes
	for i > 0 && !utf8.RuneStart(name[i]) {
		i--
	}
	return name[:i] + "…"
}
