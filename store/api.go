package store

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/waymark-dev/waymark/sessionize"
)

// ParseFunnelQuery builds a FunnelQuery from text parameters (the CLI's flags, the API's query
// string). Errors start with the parameter's name.
func ParseFunnelQuery(steps, window, from, to string) (FunnelQuery, error) {
	var q FunnelQuery
	for _, s := range strings.Split(steps, ",") {
		if s = strings.TrimSpace(s); s != "" {
			q.Steps = append(q.Steps, s)
		}
	}
	if window == "" {
		window = "24h"
	}
	var err error
	if q.Window, err = ParseWindow(window); err != nil {
		return q, fmt.Errorf("window: %w", err)
	}
	if q.From, err = ParseTime(from); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = ParseTime(to); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	return q, q.Validate()
}

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
	mux.HandleFunc("GET /api/v1/funnel", a.funnel)
}

// funnel answers GET /api/v1/funnel?steps=A,B,C&window=24h&from=…&to=….
func (a *API) funnel(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query()
	q, err := ParseFunnelQuery(p.Get("steps"), p.Get("window"), p.Get("from"), p.Get("to"))
	if err != nil {
		param, _, _ := strings.Cut(err.Error(), ":")
		writeAPIError(w, http.StatusBadRequest, param, err.Error())
		return
	}
	res, err := a.store.Funnel(r.Context(), a.jm, q)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		a.log.Error("funnel query", "err", err)
		writeAPIError(w, http.StatusInternalServerError, "", "the funnel query failed; see the server log")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func writeAPIError(w http.ResponseWriter, status int, param, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message, "param": param})
}
