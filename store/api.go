package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/sessionize"
)

// API serves journey questions over HTTP under /api/v1/, with the same JSON as the CLI's --json.
type API struct {
	store *Store
	jm    *sessionize.Map
	log   *slog.Logger
}

// NewAPI returns the query API over st, resolving stage names with jm.
func NewAPI(st *Store, jm *sessionize.Map, log *slog.Logger) *API {
	return &API{store: st, jm: jm, log: log}
}

// query is one journey question: its parameters, how to read them and how to answer it.
type query struct {
	params []Param
	check  func(url.Values) error
	run    func(context.Context, *Store, *sessionize.Map, url.Values) (any, error)
}

// endpoint makes a query of a parameter parser and the Store method that answers it.
func endpoint[Q, R any](params []Param, parse func(url.Values) (Q, error), answer func(*Store, context.Context, *sessionize.Map, Q) (R, error)) query {
	return query{
		params: params,
		check: func(v url.Values) error {
			_, err := parse(v)
			return err
		},
		run: func(ctx context.Context, s *Store, jm *sessionize.Map, v url.Values) (any, error) {
			q, err := parse(v)
			if err != nil {
				return nil, err
			}
			return answer(s, ctx, jm, q)
		},
	}
}

// queries are the journey questions, by the name of their endpoint and CLI command.
func queries() map[string]query {
	return map[string]query{
		"funnel":    endpoint(funnelParams(), ParseFunnelQuery, (*Store).Funnel),
		"dropoff":   endpoint(dropoffParams(), ParseDropoffQuery, (*Store).Dropoff),
		"paths":     endpoint(pathsParams(), ParsePathsQuery, (*Store).Paths),
		"next":      endpoint(nextParams(), ParseNextQuery, (*Store).Next),
		"retention": endpoint(retentionParams(), ParseRetentionQuery, (*Store).Retention),
		"stages":    endpoint(stagesParams(), ParseStagesQuery, (*Store).Stages),
		"sessions": endpoint(sessionsParams(), ParseSessionsQuery, func(s *Store, ctx context.Context, _ *sessionize.Map, q SessionsQuery) (*SessionSummary, error) {
			return s.Sessions(ctx, q)
		}),
	}
}

// QueryNames lists the journey queries, sorted: each is an endpoint /api/v1/NAME and a command.
func QueryNames() []string { return slices.Sorted(maps.Keys(queries())) }

// QueryParams returns the parameters of the named query in the order it lists them; nil when
// there is no such query.
func QueryParams(name string) []Param { return queries()[name].params }

// Register mounts the API's endpoints on mux, and GET /api/v1/queries, which lists each query's
// parameters with their defaults and meaning ({"funnel": [{"name", "default", "usage"}, …], …}),
// the schema the page reads its defaults from.
// Any other path under /api/v1/, or another method, gets a JSON 404 or 405 like every other
// answer of the API.
func (a *API) Register(mux *http.ServeMux) {
	for name := range queries() {
		mux.HandleFunc("GET /api/v1/"+name, a.handle(name))
	}
	mux.HandleFunc("GET /api/v1/queries", func(w http.ResponseWriter, r *http.Request) {
		schema := map[string][]Param{}
		for name, q := range queries() {
			schema[name] = q.params
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(schema)
	})
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/api/v1/")
		if _, known := queries()[name]; known || name == "queries" {
			w.Header().Set("Allow", "GET, HEAD")
			writeAPIError(w, http.StatusMethodNotAllowed, "", r.Method+" "+r.URL.Path+": the journey queries are read with GET")
			return
		}
		names := slices.Sorted(maps.Keys(queries()))
		writeAPIError(w, http.StatusNotFound, "", r.URL.Path+": no such query; the queries are /api/v1/"+strings.Join(names, ", /api/v1/"))
	})
}

// Query runs the named journey query (one of QueryNames) with text parameters, as the API's
// query string and the CLI's flags give them, resolving stage names with jm: both answer through
// it, so they give the same answers and errors. A problem with a parameter is a *ParamError.
func (s *Store) Query(ctx context.Context, jm *sessionize.Map, name string, v url.Values) (any, error) {
	q, ok := queries()[name]
	if !ok {
		return nil, errors.New("unknown query " + name)
	}
	return q.run(ctx, s, jm, v)
}

// CheckParams reads the parameters of the named query without running it, so a command can
// report a bad flag before it connects anywhere. Names of events are checked when the query runs.
func CheckParams(name string, v url.Values) error {
	q, ok := queries()[name]
	if !ok {
		return errors.New("unknown query " + name)
	}
	return q.check(v)
}

func (a *API) handle(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var perr *ParamError
		v, err := parseQueryString(r.URL.RawQuery)
		var res any
		if err == nil {
			res, err = a.store.Query(r.Context(), a.jm, name, v)
		}
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false) // step names like "Order Completed[revenue>=100]" stay readable
			_ = enc.Encode(res)
		case errors.As(err, &perr):
			writeAPIError(w, http.StatusBadRequest, perr.Param, err.Error())
		case errors.Is(err, ErrQueryLimit):
			w.Header().Set("Retry-After", "60")
			writeAPIError(w, http.StatusServiceUnavailable, "", err.Error())
		case errors.Is(err, ErrBusy):
			w.Header().Set("Retry-After", "5")
			writeAPIError(w, http.StatusServiceUnavailable, "", err.Error())
		case r.Context().Err() != nil:
			a.log.Info("query stopped: the client went away", "query", name, "err", err)
		default:
			a.log.Error("query failed", "query", name, "err", err)
			writeAPIError(w, http.StatusInternalServerError, "", "the "+name+" query failed; see the server log")
		}
	}
}

// parseQueryString reads a query string as url.ParseQuery does, but refuses what it would drop:
// a pair with a ";" (which Go no longer reads as a separator) or a bad %-escape would otherwise be
// left out and the query answered without it. The error names the pair's parameter.
func parseQueryString(raw string) (url.Values, error) {
	v := url.Values{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		name, kerr := url.QueryUnescape(key)
		if kerr != nil {
			name = key
		}
		if strings.Contains(pair, ";") {
			return nil, paramErrorf(name, "a \";\" in the query string: separate parameters with \"&\" and escape a \";\" in a value as %%3B")
		}
		val, verr := url.QueryUnescape(value)
		if err := cmp.Or(kerr, verr); err != nil {
			return nil, paramErrorf(name, "%v", err)
		}
		v[name] = append(v[name], val)
	}
	return v, nil
}

func writeAPIError(w http.ResponseWriter, status int, param, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message, "param": param})
}
