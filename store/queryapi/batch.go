package queryapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// maxBatchBytes bounds the body of a batch.
const maxBatchBytes = 1 << 20

// batchAnswer is one query's answer in a batch's: its status and its result, or what a GET of
// the query would have answered as an error.
type batchAnswer struct {
	Query  string `json:"query"`
	Status int    `json:"status"`
	Result any    `json:"result,omitempty"`
	*failure
}

// batch answers POST /api/v1/batch: several journey queries asked at once, which read the events
// once for all of them where they can (store.QueryBatch). The journey page loads its panels
// through it.
//
// The body is {"queries": [{"query": "funnel", "params": {"steps": "a,b", "window": "24h"}}, …]},
// 1 to store.MaxBatchQueries queries of /api/v1/queries, each parameter a string, number or
// boolean as its GET takes it; a list of steps (a Param with List: steps, exclude) may also be an
// array of strings, one step each, in which a comma needs no escape: {"steps": ["Checkout, Step
// 2", "Order Completed"]}, as PostHog's, Amplitude's and Mixpanel's APIs take event lists. The
// answer is 200 with {"results": [{"query", "status", "result"}, …]} in the order asked, each
// status what the query's GET would answer, with its "error", "param" and "retry_after"
// (seconds) when it is not 200, in the manner of Elasticsearch's multi-search. A parameter in the
// URL is a 400 naming it (the queries' parameters go in the body). A body that cannot be read is a
// 400 naming the field at fault
// (413 past 1 MiB, before any of it is read when its Content-Length says so; 415 for another
// Content-Type than JSON, or a Content-Encoding; 408 when it
// does not arrive within the server's read timeout, ingest.ErrBodyTimeout), and none of
// its queries runs; a batch that finds no free query slot is a 503 with Retry-After.
func (a *API) batch(w http.ResponseWriter, r *http.Request) {
	if !noParameters(w, r) { // the queries' parameters are in the body; one in the URL is a mistake
		return
	}
	qs, refused, status, param, err := readBatch(w, r)
	if err != nil {
		if status == http.StatusRequestTimeout {
			w.Header().Set("Connection", "close") // the read deadline has passed (RFC 9110 §15.5.9)
		}
		WriteError(w, status, param, err.Error())
		return
	}
	ctx, done := a.queryContext(r)
	defer done()
	answers, err := a.run(ctx, qs, refused)
	if err != nil {
		a.fail(w, r, "batch", err)
		return
	}
	if r.Context().Err() != nil {
		a.log.Info("batch stopped: the client went away", "queries", len(qs))
		w.WriteHeader(ingest.StatusClientClosed) // to no one: for the request's count
		return
	}
	out := make([]batchAnswer, len(qs))
	for i, ans := range answers {
		out[i] = batchAnswer{Query: qs[i].Name, Status: http.StatusOK, Result: ans.Result}
		if ans.Err == nil {
			if _, err := encodeJSON(ans.Result); err != nil { // a bug; the other answers still go out
				ans.Err = fmt.Errorf("encode the answer as JSON: %w", err)
			}
		}
		if ans.Err != nil {
			f := a.failure(qs[i].Name, ans.Err)
			out[i] = batchAnswer{Query: qs[i].Name, Status: f.Status, failure: &f}
		}
	}
	a.writeJSON(w, "batch", map[string]any{"results": out})
}

// run answers the batch's queries qs: those refused as they were read (refused[i] not nil) with
// their error, the others through store.QueryBatch; its error, when it fails whole.
func (a *API) run(ctx context.Context, qs []store.BatchQuery, refused []error) ([]store.BatchAnswer, error) {
	answers := make([]store.BatchAnswer, len(qs))
	var asked []store.BatchQuery
	var at []int // the index in qs of each query asked
	for i, q := range qs {
		if refused[i] != nil {
			answers[i].Err = refused[i]
			continue
		}
		asked, at = append(asked, q), append(at, i)
	}
	if len(asked) == 0 {
		return answers, nil
	}
	got, err := a.store.QueryBatch(ctx, a.jm, asked)
	if err != nil {
		return nil, err
	}
	for j, ans := range got {
		answers[at[j]] = ans
	}
	return answers, nil
}

// batchShape is what a batch's body looks like, for the errors that say it is not one.
const batchShape = `{"queries": [{"query": NAME, "params": {…}}, …]}`

// readBatch reads a batch's body into its queries, and for each the error it is answered with
// without running, refused[i], when its parameters are the body's JSON and yet not ones the
// query takes (an empty step in an array: the query's own 400, as its GET's steps=A,,B is,
// not the batch's: tester 50's F8; a number or other non-string in it too: tester 53's F10). On failure it returns the status, the field at fault
// ("body" when the body as a whole is: too large, not JSON, not an object) and why. It reads
// the JSON strictly: a member given twice, or named in other letter case, is an error (Go's
// decoder would take the last, or match it).
func readBatch(w http.ResponseWriter, r *http.Request) (qs []store.BatchQuery, refused []error, status int, param string, err error) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, nil, http.StatusUnsupportedMediaType, "Content-Encoding", fmt.Errorf("Content-Encoding %q: send the batch uncompressed", enc)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, nil, http.StatusUnsupportedMediaType, "Content-Type", fmt.Errorf("Content-Type %q: a batch is JSON, application/json", ct)
		}
	}
	// One whose Content-Length says it is too large is refused before any of it is read, as the
	// collector refuses one: its client need not send it all first.
	tooLarge := fmt.Errorf("the body is over %d bytes", maxBatchBytes)
	if r.ContentLength > maxBatchBytes {
		return nil, nil, http.StatusRequestEntityTooLarge, "body", tooLarge
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return nil, nil, http.StatusRequestEntityTooLarge, "body", tooLarge
	case ingest.ReadTimedOut(err):
		return nil, nil, http.StatusRequestTimeout, "body", ingest.ErrBodyTimeout
	case ingest.ClientClosed(err):
		return nil, nil, ingest.StatusClientClosed, "body", ingest.ErrClientClosed
	case err != nil:
		return nil, nil, http.StatusBadRequest, "body", fmt.Errorf("read the body: %w", err)
	}
	var whole json.RawMessage
	if err := json.Unmarshal(ingest.TrimByteOrderMark(raw), &whole); err != nil {
		return nil, nil, http.StatusBadRequest, "body", fmt.Errorf("the body is not JSON: %w", err)
	}
	body, err := objectMembers(whole, "queries")
	if err != nil {
		param := fieldOf(err, "")
		if param == "" {
			param = "body" // not an object: the collector names it so too
		}
		return nil, nil, http.StatusBadRequest, param, fmt.Errorf("the body: %w; a batch is %s", err, batchShape)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(body["queries"], &list); err != nil || body["queries"] == nil {
		return nil, nil, http.StatusBadRequest, "queries", fmt.Errorf("queries: want an array of queries; a batch is %s", batchShape)
	}
	if len(list) == 0 || len(list) > store.MaxBatchQueries {
		return nil, nil, http.StatusBadRequest, "queries", fmt.Errorf("%d queries: a batch asks 1 to %d", len(list), store.MaxBatchQueries)
	}
	names := store.QueryNames()
	for i, item := range list {
		at := fmt.Sprintf("queries[%d]", i)
		q, err := objectMembers(item, "query", "params")
		if err != nil {
			return nil, nil, http.StatusBadRequest, fieldOf(err, at), fmt.Errorf("%s: %w", at, err)
		}
		var name string
		if err := json.Unmarshal(q["query"], &name); err != nil || !slices.Contains(names, name) {
			return nil, nil, http.StatusBadRequest, at + ".query", fmt.Errorf("%s.query: %s is not a query; the queries are %s", at, q["query"], strings.Join(names, ", "))
		}
		v := url.Values{}
		var refuse error
		if raw, ok := q["params"]; ok {
			params, err := objectMembers(raw)
			if err != nil {
				return nil, nil, http.StatusBadRequest, fieldOf(err, at+".params"), fmt.Errorf("%s.params: %w", at, err)
			}
			schema := store.QueryParams(name)
			for _, p := range slices.Sorted(maps.Keys(params)) {
				isList := slices.ContainsFunc(schema, func(sp store.Param) bool { return sp.Name == p && sp.List })
				value, err := paramText(params[p], isList)
				var entry *entryError
				switch {
				case errors.As(err, &entry):
					refuse = cmp.Or(refuse, error(&store.ParamError{Param: p, Err: entry}))
				case err != nil:
					return nil, nil, http.StatusBadRequest, at + ".params." + p, fmt.Errorf("%s.params.%s: %w", at, p, err)
				}
				v.Set(p, value)
			}
		}
		qs, refused = append(qs, store.BatchQuery{Name: name, Params: v}), append(refused, refuse)
	}
	return qs, refused, 0, "", nil
}

// memberError is an error of one member of a JSON object.
type memberError struct {
	member string
	err    error
}

func (e *memberError) Error() string { return fmt.Sprintf("%q: %v", e.member, e.err) }

// fieldOf names the field an error of objectMembers is about, under parent ("" at the top);
// parent itself when it is about the whole object.
func fieldOf(err error, parent string) string {
	var m *memberError
	if !errors.As(err, &m) {
		return parent
	}
	if parent == "" {
		return m.member
	}
	return parent + "." + m.member
}

// objectMembers reads raw, a JSON value, as an object, and returns its members. A member given
// twice is a *memberError, and so is one not in allowed when allowed is given (names are
// compared exactly).
func objectMembers(raw json.RawMessage, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object, not %.40s", raw)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		if _, dup := out[name]; dup {
			return nil, &memberError{name, errors.New("given twice")}
		}
		if len(allowed) > 0 && !slices.Contains(allowed, name) {
			return nil, &memberError{name, fmt.Errorf("unknown; the members are %s", strings.Join(allowed, ", "))}
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, &memberError{name, err}
		}
		out[name] = v
	}
	return out, nil
}

// paramText is the text of a parameter's JSON value, as a query string would give it: a string
// as it is, a number or boolean as written, and for a list of steps (isList: steps, exclude)
// also an array of strings, each one step, joined as the list's text (store.JoinSteps). An
// entry of the array that is empty, or no string, is an *entryError.
func paramText(raw json.RawMessage, isList bool) (string, error) {
	if isList && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		var entries []json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			return "", fmt.Errorf("want an array of strings, one step each, or a string: %w", err)
		}
		steps := make([]string, len(entries))
		for i, e := range entries {
			if err := json.Unmarshal(e, &steps[i]); err != nil {
				return "", &entryError{entry: i + 1, is: jsonKind(e)}
			}
			// said here, not as the list's empty entry, whose error speaks of commas (tester 49's F4)
			if strings.TrimSpace(steps[i]) == "" {
				return "", &entryError{entry: i + 1}
			}
		}
		return store.JoinSteps(steps), nil
	}
	return scalarText(raw)
}

// entryError is an entry of a list's array (paramText) that is no step: empty (a null too), or
// not a string. It is the error of its query alone, which its item of the batch answers as a 400
// naming the parameter (tester 50's F8, tester 53's F10). A number is not read as its text: a
// step is a name, and JSON keeps no number as it was written (1.50 and 1.5 are one number).
type entryError struct {
	entry int    // 1-based
	is    string // what the entry is when it is no string (jsonKind); "" when it is empty
}

func (e *entryError) Error() string {
	if e.is == "" {
		return fmt.Sprintf("entry %d of the array is empty: each is a step", e.entry)
	}
	return fmt.Sprintf("entry %d of the array is %s, not a string: each is a step, its name in quotes", e.entry, e.is)
}

// jsonKind says what a JSON value that is no string is, for an error: "the number 1",
// "true", "an array", "an object".
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == '[':
		return "an array"
	case raw[0] == '{':
		return "an object"
	case raw[0] == 't' || raw[0] == 'f':
		return string(raw)
	default:
		return fmt.Sprintf("the number %.40s", raw)
	}
}

// scalarText is the text of a parameter's JSON value, as a query string would give it: a string
// as it is, a boolean as written, and a number in its canonical text (ingest.CanonicalNumber,
// the one the stored properties have), so that 3.0 and 3e0 are the whole number 3 wherever a
// whole number is asked and 3.5 is still refused there (tester 24: {"depth": 3.0} was refused).
func scalarText(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		if text, ok := ingest.CanonicalNumber(v.String()); ok {
			return text, nil
		}
		return v.String(), nil
	case bool:
		return fmt.Sprint(v), nil
	default:
		return "", fmt.Errorf("want a string, number or boolean, not %.40s", raw)
	}
}
