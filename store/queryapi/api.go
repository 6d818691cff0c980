// Package queryapi is the HTTP face of store's journey queries, as Prometheus's web/api/v1 is of
// promql: store answers typed queries and reports typed errors and knows no HTTP; this package
// serves each query of store.QueryNames at GET /api/v1/NAME, reads the query string by the query's
// parameter schema (store.QueryParams), answers with the same JSON as the CLI's --json, and turns
// store's errors into status codes: a *store.ParamError is a 400 naming the parameter,
// store.ErrQueryLimit, store.ErrBusy and store.ErrQueryCancelled a 503 with Retry-After, anything
// else a 500.
package queryapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// API serves journey questions over HTTP under /api/v1/, with the same JSON as the CLI's --json.
type API struct {
	store *store.Store
	jm    *sessionize.Map
	log   *slog.Logger
	// endpoints are the names under /api/v1/ that Register serves (routes), the labels of requests.
	endpoints []string
	requests  *prometheus.CounterVec
	// stopped is done once Stop was called: the queries in flight end, answered 503.
	stopped context.Context
	stop    context.CancelCauseFunc
}

// errStopping is the cause of the queries Stop ends.
var errStopping = errors.New("the server is shutting down")

// New returns the query API over st, resolving stage names with jm and logging failed queries to
// log. The requests Counted counts are waymark_query_requests_total{endpoint,code}, registered
// on reg (nil: not registered).
func New(st *store.Store, jm *sessionize.Map, log *slog.Logger, reg prometheus.Registerer) (*API, error) {
	a := &API{store: st, jm: jm, log: log, requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waymark_query_requests_total",
		Help: "Requests to the query API (/api/v1/), by endpoint (unknown: a path that is none) and HTTP status code (499: the client went away first); the client's errors are the 4xx.",
	}, []string{"endpoint", "code"})}
	a.stopped, a.stop = context.WithCancelCause(context.Background())
	for _, e := range a.routes() {
		a.endpoints = append(a.endpoints, e.name)
	}
	if reg != nil {
		if err := reg.Register(a.requests); err != nil {
			return nil, fmt.Errorf("register query API metrics: %w", err)
		}
	}
	return a, nil
}

// Stop ends the queries in flight (a server shutting down, whose clients would otherwise get no
// answer at all): each is answered 503, with Retry-After, saying the server is shutting down;
// queries asked later are too.
func (a *API) Stop() { a.stop(errStopping) }

// queryContext is the context of r's journey queries: r's, ended by Stop too. done releases it.
func (a *API) queryContext(r *http.Request) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(a.stopped, func() { cancel(errStopping) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// Register mounts the API's endpoints on mux: GET /api/v1/NAME for each query; GET
// /api/v1/queries, which lists each query's parameters with their defaults and meaning
// ({"funnel": [{"name", "default", "usage"}, …], …}), the schema the page reads its defaults
// from; GET /api/v1/map, the journey map's stages ({"version", "stages": [{"name",
// "description"}, …]}); and POST /api/v1/batch, several queries answered together (see batch).
// Any other path under /api/v1/, or another method, gets a JSON 404 or 405 like every other
// answer of the API; a GET or HEAD that declares a body, a 400 naming "body" (refuseBody).
func (a *API) Register(mux *http.ServeMux) {
	routes := a.routes()
	var served []string
	for _, e := range routes {
		h := e.handler
		if e.method == http.MethodGet {
			h = refuseBody(h) // net/http serves HEAD there too
		}
		mux.HandleFunc(e.method+" /api/v1/"+e.name, private(h))
		served = append(served, e.method+" /api/v1/"+e.name)
	}
	mux.HandleFunc("/api/v1/", private(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/api/v1/")
		if i := slices.IndexFunc(routes, func(e endpoint) bool { return e.name == name }); i >= 0 {
			allow := routes[i].method
			if allow == http.MethodGet {
				allow += ", HEAD" // net/http answers HEAD wherever GET is registered
			}
			w.Header().Set("Allow", allow)
			WriteError(w, http.StatusMethodNotAllowed, "", r.Method+" "+r.URL.Path+": "+routes[i].asked)
			return
		}
		WriteError(w, http.StatusNotFound, "", r.URL.Path+": no such query; the API serves "+strings.Join(served, ", "))
	}))
}

// private marks h's answers as kept by no cache (Cache-Control: no-store: they hold person ids,
// and are of the moment they were asked) and as JSON only (X-Content-Type-Options: nosniff: no
// browser reads an answer, whose values are a shop's visitors' text, as another type), as
// OWASP's REST Security Cheat Sheet asks of an API's answers ("Security headers").
func private(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h(w, r)
	}
}

// routes are the API's endpoints, in the order the 404 lists them: the queries, then the others.
// Register mounts them, the 404 and 405 and Counted's labels read them, so none can drift.
func (a *API) routes() []endpoint {
	var routes []endpoint
	for _, name := range store.QueryNames() {
		routes = append(routes, endpoint{http.MethodGet, name, a.handle(name), "the journey queries are read with GET"})
	}
	return append(routes,
		endpoint{http.MethodGet, "queries", a.schema, "the queries' parameters are read with GET"},
		endpoint{http.MethodGet, "map", a.journeyMap, "the journey map is read with GET"},
		endpoint{http.MethodPost, "batch", a.batch, `a batch is sent with POST, its queries in a JSON body {"queries": [{"query": NAME, "params": {…}}, …]}`},
	)
}

// endpointKey is the context key under which Counted passes a request's endpoint label to
// promhttp's counter.
type endpointKey struct{}

// Answers reports whether a request is the query API's: its path is /api/v1 or under /api/v1/,
// as sent or once cleaned of doubled slashes and dot segments (/api/v1//funnel,
// /x/../api/v1/funnel), which get a 404 that Counted counts.
func Answers(r *http.Request) bool {
	for _, p := range []string{r.URL.Path, path.Clean(r.URL.Path)} {
		if p == "/api/v1" || strings.HasPrefix(p, "/api/v1/") {
			return true
		}
	}
	return false
}

// Counted is next, the handler of the requests the API Answers (Register's mux behind any
// read-key check, and whatever answers them before it: a URL over the server's limit, a path not
// served), with each request counted in waymark_query_requests_total by endpoint and status code,
// so that the client's errors (400 for a parameter, 401, 404, 405, 414) are counted apart from the
// server's failures; a path that is no endpoint is counted as endpoint "unknown", never by its
// text.
// The counting is client_golang's promhttp.InstrumentHandlerCounter, which sees the status
// through its own wrapper of the writer (keeping the writer's optional interfaces).
func (a *API) Counted(next http.Handler) http.Handler {
	counted := promhttp.InstrumentHandlerCounter(a.requests, next,
		promhttp.WithLabelFromCtx("endpoint", func(ctx context.Context) string { return ctx.Value(endpointKey{}).(string) }))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := strings.TrimPrefix(r.URL.Path, "/api/v1/")
		if !slices.Contains(a.endpoints, endpoint) {
			endpoint = "unknown"
		}
		counted(w, r.WithContext(context.WithValue(r.Context(), endpointKey{}, endpoint)))
	})
}

// endpoint is one of the API's endpoints: its method, its name under /api/v1/, its handler, and
// how it is asked, which a 405 to another method says.
type endpoint struct {
	method, name string
	handler      http.HandlerFunc
	asked        string
}

// schema answers GET /api/v1/queries: each query's parameters with their defaults and meaning.
func (a *API) schema(w http.ResponseWriter, r *http.Request) {
	if !noParameters(w, r) {
		return
	}
	schema := map[string][]store.Param{}
	for _, name := range store.QueryNames() {
		schema[name] = store.QueryParams(name)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(schema)
}

// journeyMap answers GET /api/v1/map: the journey map's version and stages.
func (a *API) journeyMap(w http.ResponseWriter, r *http.Request) {
	if !noParameters(w, r) {
		return
	}
	type stage struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	m := struct {
		Version string  `json:"version"`
		Stages  []stage `json:"stages"`
	}{Version: a.jm.Version, Stages: []stage{}}
	for _, st := range a.jm.Stages {
		m.Stages = append(m.Stages, stage{st.Name, st.Description})
	}
	a.writeJSON(w, "map", m)
}

func (a *API) handle(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := parseQueryString(r.URL.RawQuery)
		var res any
		if err == nil {
			ctx, done := a.queryContext(r)
			defer done()
			res, err = a.store.Query(ctx, a.jm, name, v)
		}
		if err != nil {
			a.fail(w, r, name, inQueryString(err))
			return
		}
		a.writeJSON(w, name, res)
	}
}

// inQueryString is err, a GET's, with the hint a query string needs: a time whose + was read as a
// space (store.TimeError.Plus; url.ParseQuery reads + as a space) is to be written with its + as
// %2B. A batch's times come in JSON, where a + is a +, and the CLI's on the command line: neither
// gets this hint.
// So is a name of a step never stored whose + was read as a space (store.PlusError: tester
// 50's F6).
func inQueryString(err error) error {
	var te *store.TimeError
	var pe *store.PlusError
	switch {
	case errors.As(err, &te) && te.Plus != "":
		return &hintedError{err: err, hint: "In a URL write + as %2B: " + url.QueryEscape(te.Plus)}
	case errors.As(err, &pe):
		// the step as it is to be written, escaped and all, not the bare name (tester 53's F3)
		return &hintedError{err: err, hint: "In a URL write + as %2B: " + url.QueryEscape(pe.Step)}
	}
	return err
}

// hintedError is err with a hint after its text; errors.As and errors.Is see err (the
// *store.ParamError that names the parameter).
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() + " " + e.hint }
func (e *hintedError) Unwrap() error { return e.err }

// fail answers r, a request for the named query, which failed with err, as failure says; when
// the client went away, only the status 499 is written (to no one, for the count) and the stop
// is logged as information.
func (a *API) fail(w http.ResponseWriter, r *http.Request, name string, err error) {
	if r.Context().Err() != nil {
		a.log.Info("query stopped: the client went away", "query", name, "err", err)
		w.WriteHeader(ingest.StatusClientClosed) // to no one: for the request's count
		return
	}
	f := a.failure(name, err)
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	writeError(w, f.Status, f.Param, f.Error)
}

// failure is how a query that failed is answered: its status, the error, the parameter at
// fault (nil when none is; "" for a parameter given with no name), and when to try again
// (seconds, 0 when not).
type failure struct {
	Status     int     `json:"status"`
	Error      string  `json:"error"`
	Param      *string `json:"param,omitempty"`
	RetryAfter int     `json:"retry_after,omitempty"`
}

// failure says how to answer the named query, which failed with err: the client's fault (400,
// naming the parameter), a limit, ClickHouse out of reach or the server shutting down (503, with
// when to try again), or the server's (500, logged).
func (a *API) failure(name string, err error) failure {
	var perr *store.ParamError
	switch {
	case errors.As(err, &perr):
		return failure{Status: http.StatusBadRequest, Error: err.Error(), Param: &perr.Param}
	case a.stopped.Err() != nil && errors.Is(err, context.Canceled): // Stop ended it
		return failure{Status: http.StatusServiceUnavailable, Error: "the " + name + " query was stopped: the server is shutting down; try again", RetryAfter: 5}
	case errors.Is(err, store.ErrQueryLimit):
		return failure{Status: http.StatusServiceUnavailable, Error: err.Error(), RetryAfter: 60}
	case errors.Is(err, store.ErrBusy), errors.Is(err, store.ErrQueryCancelled):
		return failure{Status: http.StatusServiceUnavailable, Error: err.Error(), RetryAfter: 5}
	case store.Unreachable(err):
		a.log.Warn("query failed: ClickHouse is out of reach", "query", name, "err", err)
		return failure{Status: http.StatusServiceUnavailable, Error: "the " + name + " query could not reach ClickHouse; try again later", RetryAfter: 10}
	default:
		a.log.Error("query failed", "query", name, "err", err)
		return failure{Status: http.StatusInternalServerError, Error: "the " + name + " query failed; see the server log"}
	}
}

// writeJSON answers with v as JSON; when v cannot be encoded (a bug: a query's answer holds only
// finite numbers), with a 500 naming what, logged.
func (a *API) writeJSON(w http.ResponseWriter, what string, v any) {
	b, err := encodeJSON(v)
	if err != nil {
		a.log.Error("encode an answer", "answer", what, "err", err)
		WriteError(w, http.StatusInternalServerError, "", "the "+what+" answer could not be written as JSON; see the server log")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// encodeJSON is v as JSON, with a newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // step names like "Order Completed[revenue>=100]" stay readable
	err := enc.Encode(v)
	return buf.Bytes(), err
}

// parseQueryString reads a query string as url.ParseQuery does, but refuses what it would drop:
// a pair with a ";" (which Go no longer reads as a separator) or a bad %-escape would otherwise be
// left out and the query answered without it. The error is a *store.ParamError naming the pair's
// parameter.
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
			return nil, &store.ParamError{Param: name, Err: errors.New(`a ";" in the query string: separate parameters with "&" and escape a ";" in a value as %3B`)}
		}
		val, verr := url.QueryUnescape(value)
		if err := cmp.Or(kerr, verr); err != nil {
			return nil, &store.ParamError{Param: name, Err: err}
		}
		v[name] = append(v[name], val)
	}
	return v, nil
}

// refuseBody answers a GET or HEAD whose head declares a body with 400 naming "body"
// (ingest.BodyOfGet), at once, and passes the others to next.
func refuseBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := ingest.BodyOfGet(r); err != nil {
			WriteError(w, http.StatusBadRequest, "body", err.Error()+"; queries asked in a JSON body are POST /api/v1/batch")
			return
		}
		next(w, r)
	}
}

// noParameters reports whether r, a request to an endpoint that takes no parameters, has none;
// when it has, it answers 400 naming the first, as a query answers a parameter it does not take
// (a misspelt one would otherwise be ignored without a word).
func noParameters(w http.ResponseWriter, r *http.Request) bool {
	v, err := parseQueryString(r.URL.RawQuery)
	if err == nil && len(v) > 0 {
		first := slices.Min(slices.Collect(maps.Keys(v)))
		err = &store.ParamError{Param: first, Err: errors.New(r.URL.Path + " takes no parameters")}
	}
	if err != nil {
		var param *string
		if pe := (*store.ParamError)(nil); errors.As(err, &pe) { // parseQueryString's errors are
			param = &pe.Param
		}
		writeError(w, http.StatusBadRequest, param, err.Error())
		return false
	}
	return true
}

// WriteError answers with status and the query API's JSON error body, {"error": message,
// "param": param}; param is the parameter at fault, and the member is left out when none is
// ("" given), so that a client can tell a parameter's fault by its presence. A parameter's
// fault, a *store.ParamError, is answered by the API itself, with "param" present even for a
// parameter given with no name ("param": "", from a query string "?=x").
func WriteError(w http.ResponseWriter, status int, param, message string) {
	var p *string
	if param != "" {
		p = &param
	}
	writeError(w, status, p, message)
}

// writeError writes the query API's JSON error body, with "param" when param is not nil.
func writeError(w http.ResponseWriter, status int, param *string, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]string{"error": message}
	if param != nil {
		body["param"] = *param
	}
	_ = json.NewEncoder(w).Encode(body)
}
