package ingest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// charsetOf returns the charset parameter of a Content-Type header, unquoted and in lower case;
// "" when it has none. It reads the parameters leniently (a trailing ";", spaces around "=", as
// clients write them): a body is JSON whatever its media type, and only its charset matters.
func charsetOf(contentType string) string {
	_, params, more := strings.Cut(contentType, ";")
	for more {
		var p string
		p, params, more = strings.Cut(params, ";")
		name, value, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(name), "charset") {
			return strings.ToLower(strings.Trim(strings.TrimSpace(value), `"`))
		}
	}
	return ""
}

// utf16Mark reports whether body starts with UTF-16's byte order mark (FF FE or FE FF).
func utf16Mark(body []byte) bool {
	return bytes.HasPrefix(body, []byte{0xff, 0xfe}) || bytes.HasPrefix(body, []byte{0xfe, 0xff})
}

// decodeBody returns a request body in UTF-8, decoded as the WHATWG Encoding Standard's decode
// does, the way browsers read a labelled text: a byte order mark of UTF-16 or UTF-8 starting the
// body tells its encoding, else the charset its Content-Type names (by the standard's labels:
// iso-8859-1, latin1 and us-ascii are windows-1252, utf-16 is UTF-16LE, shift_jis, gbk, …). A body
// in UTF-8, labelled so or not labelled, is returned as it is: its bytes that are not UTF-8 are
// read later as the tracking API documents (U+FFFD in a name, an id refused). A charset the
// standard does not name, or one it reads as "replacement" (ISO-2022-KR, HZ-GB-2312, …), is a 415
// naming Content-Type: its text is never stored as replacement characters. The decoded body is
// held to limit as the body itself is (a Latin-1 body grows up to twice its size in UTF-8).
func decodeBody(contentType string, body []byte, limit int) ([]byte, error) {
	label := charsetOf(contentType)
	enc, name := encoding.Encoding(unicode.UTF8), "utf-8"
	if label != "" {
		e, err := htmlindex.Get(label)
		if err == nil {
			name, err = htmlindex.Name(e)
		}
		if err != nil || e == encoding.Replacement {
			return nil, &requestError{http.StatusUnsupportedMediaType, "Content-Type",
				fmt.Sprintf("charset %.40q is not supported: send UTF-8, or label the body with a charset of the WHATWG Encoding Standard (ISO-8859-1, windows-1252, UTF-16, Shift_JIS, …)", label)}
		}
		enc = e
	}
	if name == "utf-8" && !utf16Mark(body) {
		return body, nil
	}
	out, err := io.ReadAll(io.LimitReader(transform.NewReader(bytes.NewReader(body), unicode.BOMOverride(enc.NewDecoder())), int64(limit)+1))
	if err != nil {
		return nil, &requestError{http.StatusBadRequest, "body", fmt.Sprintf("body not in its charset %s: %v", name, err)}
	}
	if len(out) > limit {
		return nil, &requestError{http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("body larger than %d bytes once decoded from %s to UTF-8", limit, name)}
	}
	return out, nil
}
