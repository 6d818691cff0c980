package queryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// TestFailedQueriesAnswer: each kind of error a query can end with gets its status, Retry-After
// and JSON body; a query whose client went away is logged and answered only its status 499 (for
// waymark_query_requests_total; no one reads it), a failure of the
// server logged with its cause while the client is told only where to look.
func TestFailedQueriesAnswer(t *testing.T) {
	t.Parallel()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		err        error
		ctx        context.Context
		status     int    // ingest.StatusClientClosed: nothing but the status
		retryAfter string // the Retry-After header
		param      string // the body's param
		says       string // the body's error
		logs       string // a message logged
	}{
		{"a parameter", fmt.Errorf("funnel: %w", &store.ParamError{Param: "window", Err: errors.New("must be positive")}), context.Background(),
			400, "", "window", "funnel: window: must be positive", ""},
		{"over a limit", fmt.Errorf("funnel: %w (time 1m0s)", store.ErrQueryLimit), context.Background(),
			503, "60", "", "funnel: the query ran over its limit (time 1m0s)", ""},
		{"busy", fmt.Errorf("funnel: %w: 8 are running", store.ErrBusy), context.Background(),
			503, "5", "", "funnel: too many queries in flight: 8 are running", ""},
		{"cancelled on the server", fmt.Errorf("funnel: %w (KILL QUERY): Query was cancelled.", store.ErrQueryCancelled), context.Background(),
			503, "5", "", "funnel: the query was cancelled on the ClickHouse server (KILL QUERY): Query was cancelled.", ""},
		{"the client went away", fmt.Errorf("funnel: stopped: %w", context.Canceled), gone,
			ingest.StatusClientClosed, "", "", "", "query stopped: the client went away"},
		{"anything else", errors.New("read: connection reset by peer"), context.Background(),
			500, "", "", "the funnel query failed; see the server log", "connection reset by peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			a, _ := New(nil, nil, slog.New(slog.NewTextHandler(&logs, nil)), nil)
			w := httptest.NewRecorder()
			a.fail(w, httptest.NewRequestWithContext(tt.ctx, "GET", "/api/v1/funnel", nil), "funnel", tt.err)
			if tt.status == ingest.StatusClientClosed {
				if w.Code != tt.status || w.Body.Len() > 0 || len(w.Header()) > 0 {
					t.Errorf("answered %d %v %q, want %d and nothing else", w.Code, w.Header(), w.Body, tt.status)
				}
			} else {
				var body map[string]string
				err := json.Unmarshal(w.Body.Bytes(), &body)
				_, hasParam := body["param"] // left out when no parameter is at fault
				if err != nil || w.Code != tt.status || w.Header().Get("Content-Type") != "application/json" || hasParam != (tt.param != "") ||
					body["param"] != tt.param || body["error"] != tt.says || w.Header().Get("Retry-After") != tt.retryAfter {
					t.Errorf("%d %v %q (%v), want %d JSON with param %q, error %q, Retry-After %q", w.Code, w.Header(), w.Body, err, tt.status, tt.param, tt.says, tt.retryAfter)
				}
			}
			if !strings.Contains(logs.String(), tt.logs) || tt.logs == "" && logs.Len() > 0 {
				t.Errorf("logged %q, want %q", logs.String(), tt.logs)
			}
		})
	}
}
