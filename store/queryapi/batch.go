package queryapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/store"
)

// maxBatchBytes bounds the body of a batch.
const maxBatchBytes = 1 << 20

// batchQuery is one query of a batch's body: a query's name and its parameters, each a string,
// number or boolean, or an array of them for a parameter given more than once.
type batchQuery struct {
	Query  string                     `json:"query"`
	Params map[string]json.RawMessage `json:"params"`
}

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
// 1 to store.MaxBatchQueries queries of /api/v1/queries with the parameters their GET takes. The
// answer is 200 with {"results": [{"query", "status", "result"}, …]} in the order asked, each
// status what the query's GET would answer, with its "error", "param" and "retry_after"
// (seconds) when it is not 200, in the manner of Elasticsearch's multi-search. A body that cannot
// be read is a 400 naming the field at fault (a 413 past 1 MiB), and none of its queries runs.
func (a *API) batch(w http.ResponseWriter, r *http.Request) {
	qs, status, param, err := readBatch(w, r)
	if err != nil {
		writeError(w, status, param, err.Error())
		return
	}
	answers := a.store.QueryBatch(r.Context(), a.jm, qs)
	if r.Context().Err() != nil {
		a.log.Info("batch stopped: the client went away", "queries", len(qs))
		return
	}
	out := make([]batchAnswer, len(qs))
	for i, ans := range answers {
		out[i] = batchAnswer{Query: qs[i].Name, Status: http.StatusOK, Result: ans.Result}
		if ans.Err != nil {
			f := a.failure(qs[i].Name, ans.Err)
			out[i] = batchAnswer{Query: qs[i].Name, Status: f.Status, failure: &f}
		}
	}
	writeJSON(w, map[string]any{"results": out})
}

// readBatch reads a batch's body into its queries; on failure it returns the status, the field
// at fault and why.
func readBatch(w http.ResponseWriter, r *http.Request) (qs []store.BatchQuery, status int, param string, err error) {
	var body struct {
		Queries []batchQuery `json:"queries"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatchBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooLarge):
			return nil, http.StatusRequestEntityTooLarge, "", fmt.Errorf("the body is over %d bytes", maxBatchBytes)
		case errors.As(err, &typeErr):
			return nil, http.StatusBadRequest, typeErr.Field, fmt.Errorf("the body: %s: want a %s, not a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, http.StatusBadRequest, field, fmt.Errorf(`the body: unknown field %q: a batch is {"queries": [{"query": NAME, "params": {…}}, …]}`, field)
		default:
			return nil, http.StatusBadRequest, "", fmt.Errorf(`the body is not a batch, {"queries": [{"query": NAME, "params": {…}}, …]}: %w`, err)
		}
	}
	if dec.More() {
		return nil, http.StatusBadRequest, "", errors.New("the body has more after the batch's JSON object")
	}
	if len(body.Queries) == 0 || len(body.Queries) > store.MaxBatchQueries {
		return nil, http.StatusBadRequest, "queries", fmt.Errorf("%d queries: a batch asks 1 to %d", len(body.Queries), store.MaxBatchQueries)
	}
	names := store.QueryNames()
	for i, q := range body.Queries {
		at := fmt.Sprintf("queries[%d]", i)
		if !slices.Contains(names, q.Query) {
			return nil, http.StatusBadRequest, at + ".query", fmt.Errorf("%s.query: %q is not a query; the queries are %s", at, q.Query, strings.Join(names, ", "))
		}
		v := url.Values{}
		for _, name := range slices.Sorted(maps.Keys(q.Params)) {
			values, err := paramText(q.Params[name])
			if err != nil {
				return nil, http.StatusBadRequest, at + ".params." + name, fmt.Errorf("%s.params.%s: %w", at, name, err)
			}
			v[name] = values
		}
		qs = append(qs, store.BatchQuery{Name: q.Query, Params: v})
	}
	return qs, 0, "", nil
}

// paramText is a parameter's JSON value as the text values a query string would give: a string
// as it is, a number or boolean as written, an array as one value per element.
func paramText(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		var out []string
		for _, e := range list {
			v, err := scalarText(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(out) == 0 {
			return nil, errors.New("an empty array: leave the parameter out instead")
		}
		return out, nil
	}
	v, err := scalarText(raw)
	if err != nil {
		return nil, err
	}
	return []string{v}, nil
}

// scalarText is the text of a JSON string, number or boolean.
func scalarText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
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
		return v.String(), nil
	case bool:
		return fmt.Sprint(v), nil
	default:
		return "", fmt.Errorf("want a string, number or boolean, or an array of them, not %s", raw)
	}
}
