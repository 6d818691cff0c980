package queryapi

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWriteJSONNeverAnswersEmpty: an answer JSON cannot hold (a bug) is a 500 with a JSON error,
// not a 200 with an empty body; one that it can is written whole.
func TestWriteJSONNeverAnswersEmpty(t *testing.T) {
	t.Parallel()
	a := &API{log: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct {
		v      any
		status int
		want   string
	}{
		{map[string]float64{"mean_score": math.Inf(1)}, http.StatusInternalServerError, `{"error":"the stages answer could not be written as JSON; see the server log"}` + "\n"},
		{map[string]string{"step": "Order Completed[revenue>=100]"}, http.StatusOK, `{"step":"Order Completed[revenue>=100]"}` + "\n"},
	} {
		rec := httptest.NewRecorder()
		a.writeJSON(rec, "stages", tt.v)
		if rec.Code != tt.status || rec.Body.String() != tt.want || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%v: %d %q, want %d %q", tt.v, rec.Code, rec.Body.String(), tt.status, tt.want)
		}
	}
}
