package store

import (
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

// query is one journey question: how to read its parameters and how to answer it.
type query struct {
	check func(url.Values) error
	run   func(context.Context, *Store, *sessionize.Map, url.Values) (any, error)
}

// endpoint makes a query of a parameter parser and the Store method that answers it.
func endpoint[Q, R any](parse func(url.Values) (Q, error), answer func(*Store, context.Context, *sessionize.Map, Q) (R, error)) query {
	return query{
		check: func(v url.Values) error {
			_, err := parse(v)
			return badParams(err)
		},
		run: func(ctx context.Context, s *Store, jm *sessionize.Map, v url.Values) (any, error) {
			q, err := parse(v)
			if err != nil {
				return nil, badParams(err)
			}
			return answer(s, ctx, jm, q)
		},
	}
}

// queries are the journey questions, by the name of their endpoint and CLI command.
func queries() map[string]query {
	return map[string]query{
		"funnel":    endpoint(ParseFunnelQuery, (*Store).Funnel),
		"dropoff":   endpoint(ParseDropoffQuery, (*Store).Dropoff),
		"paths":     endpoint(ParsePathsQuery, (*Store).Paths),
		"next":      endpoint(ParseNextQuery, (*Store).Next),
		"retention": endpoint(ParseRetentionQuery, (*Store).Retention),
		"stages":    endpoint(ParseStagesQuery, (*Store).Stages),
	}
}

// Register mounts the API's endpoints on mux.
// Any other path under /api/v1/, or another method, gets a JSON 404 or 405 like every other
// answer of the API.
func (a *API) Register(mux *http.ServeMux) {
	for name := range queries() {
		mux.HandleFunc("GET /api/v1/"+name, a.handle(name))
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if _, known := queries()[strings.TrimPrefix(r.URL.Path, "/api/v1/")]; known {
			w.Header().Set("Allow", "GET, HEAD")
			writeAPIError(w, http.StatusMethodNotAllowed, "", r.Method+" "+r.URL.Path+": the journey queries are read with GET")
			return
		}
		names := slices.Sorted(maps.Keys(queries()))
		writeAPIError(w, http.StatusNotFound, "", r.URL.Path+": no such query; the queries are /api/v1/"+strings.Join(names, ", /api/v1/"))
	})
}

// Query runs the named query (funnel, dropoff, paths, next, retention, stages) with text
// parameters, as the API does; the CLI uses it so both give the same answers and errors.
func (a *API) Query(ctx context.Context, name string, v url.Values) (any, error) {
	q, ok := queries()[name]
	if !ok {
		return nil, errors.New("unknown query " + name)
	}
	return q.run(ctx, a.store, a.jm, v)
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

// paramError is a problem with a request's parameters: the client's fault.
type paramError struct{ err error }

func (e *paramError) Error() string { return e.err.Error() }
func (e *paramError) Unwrap() error { return e.err }

// badParams marks err, whose text starts with the parameter's name, as the client's fault.
func badParams(err error) error {
	if err == nil {
		return nil
	}
	return &paramError{err}
}

// IsParamError reports whether err is a problem with the query's parameters.
func IsParamError(err error) bool {
	var pe *paramError
	return errors.As(err, &pe)
}

func (a *API) handle(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := a.Query(r.Context(), name, r.URL.Query())
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false) // step names like "Order Completed[revenue>=100]" stay readable
			_ = enc.Encode(res)
		case IsParamError(err):
			param, _, _ := strings.Cut(err.Error(), ":")
			writeAPIError(w, http.StatusBadRequest, param, err.Error())
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

func writeAPIError(w http.ResponseWriter, status int, param, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message, "param": param})
}
