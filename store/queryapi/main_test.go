package queryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/queryapi"
	"github.com/waymark-dev/waymark/store/storetest"
)

var server *storetest.Server

func TestMain(m *testing.M) { os.Exit(storetest.RunTests(m, &server)) }

// serve opens a store of its own (its configuration changed by configure, nil: none) holding
// customer a's track events, named in order one second apart, and serves its query API with the
// built-in journey map.
func serve(t testing.TB, configure func(*store.Config), events ...string) *httptest.Server {
	t.Helper()
	s := server.OpenStore(t, configure)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b sessionize.Batch
	for i, name := range events {
		b.Events = append(b.Events, ingest.Event{Source: "test", Type: "track", Event: name, UserID: "a",
			MessageID: fmt.Sprint("m", i), Timestamp: t0.Add(time.Duration(i) * time.Second), ReceivedAt: t0, Raw: []byte(`{}`)})
		b.Channels = append(b.Channels, "")
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	jm, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	api, err := queryapi.New(s, jm, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// getJSON asks srv for path with the query string v and returns the status and the JSON body.
func getJSON(t *testing.T, srv *httptest.Server, path string, v url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s?%s: %d, body not JSON: %s", path, v.Encode(), resp.StatusCode, body)
	}
	return resp.StatusCode, out
}
