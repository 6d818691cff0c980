package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
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

// Register mounts the API's endpoints on mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, e := range []struct {
		name string
		run  func(context.Context, url.Values) (any, error)
	}{
		{"funnel", a.funnel},
		{"dropoff", a.dropoff},
		{"paths", a.paths},
		{"next", a.next},
		{"retention", a.retention},
		{"stages", a.stages},
	} {
		mux.HandleFunc("GET /api/v1/"+e.name, a.handle(e.name, e.run))
	}
}

// Query runs the named query (funnel, dropoff, paths, next, retention, stages) with text
// parameters, as the API does; the CLI uses it so both give the same answers and errors.
func (a *API) Query(ctx context.Context, name string, v url.Values) (any, error) {
	run := map[string]func(context.Context, url.Values) (any, error){
		"funnel": a.funnel, "dropoff": a.dropoff, "paths": a.paths, "next": a.next,
		"retention": a.retention, "stages": a.stages,
	}[name]
	if run == nil {
		return nil, errors.New("unknown query " + name)
	}
	return run(ctx, v)
}

// CheckParams reads the parameters of the named query without running it, so a command can
// report a bad flag before it connects anywhere. Names of events are checked when the query runs.
func CheckParams(name string, v url.Values) error {
	var err error
	switch name {
	case "funnel":
		_, err = ParseFunnelQuery(v)
	case "dropoff":
		_, err = ParseDropoffQuery(v)
	case "paths":
		_, err = ParsePathsQuery(v)
	case "next":
		_, err = ParseNextQuery(v)
	case "retention":
		_, err = ParseRetentionQuery(v)
	case "stages":
		_, err = ParseStagesQuery(v)
	default:
		return errors.New("unknown query " + name)
	}
	return badParams(err)
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

func (a *API) handle(name string, run func(context.Context, url.Values) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := run(r.Context(), r.URL.Query())
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
		case r.Context().Err() != nil:
			// the client went away
		default:
			a.log.Error("query failed", "query", name, "err", err)
			writeAPIError(w, http.StatusInternalServerError, "", "the "+name+" query failed; see the server log")
		}
	}
}

func (a *API) funnel(ctx context.Context, v url.Values) (any, error) {
	q, err := ParseFunnelQuery(v)
	if err != nil {
		return nil, badParams(err)
	}
	return a.store.Funnel(ctx, a.jm, q)
}

func writeAPIError(w http.ResponseWriter, status int, param, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message, "param": param})
}
