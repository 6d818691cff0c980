package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestBotsAreLeftOutThroughThePipeline is tester 35's F3 and F9 as the tester asked them: user
// agents sent to the collector, read as devices, and left out of a funnel by [device.type!=bot];
// and a page on an internationalised domain referred from the same host in Unicode is direct.
func TestBotsAreLeftOutThroughThePipeline(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	agents := []string{
		"TelegramBot (like TwitterBot)",
		"WhatsApp/2.23.20.0",
		"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 ChatGPT-User/1.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
		"", // no agent: no device type, which passes !=
	}
	var lines []string
	for i, ua := range agents {
		lines = append(lines, fmt.Sprintf(`{"type":"track","userId":"ua%d","event":"UA Probe","timestamp":"2024-05-27T10:00:00Z","context":{"userAgent":%q}}`, i, ua))
	}
	lines = append(lines, `{"type":"page","anonymousId":"ow7","name":"IDN Page","timestamp":"2024-06-26T09:00:00Z",`+
		`"context":{"page":{"url":"https://xn--bcher-kva.example/p","referrer":"https://bücher.example/"}}}`)
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(lines, ",")+`]}`); status != 200 {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	funnel := func(params string) string {
		t.Helper()
		code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+params)
		var res funnelAnswer
		if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
			t.Fatalf("funnel?%s: %d %s", params, code, body)
		}
		out := fmt.Sprint(res.Steps[0].Customers)
		for _, g := range res.Groups {
			out += fmt.Sprintf(" %s%s=%d", g.Value, g.Marker, g.Steps[0].Customers)
		}
		return out
	}
	for _, tt := range []struct{ params, want string }{
		{"steps=UA+Probe&from=2024-05-27&to=2024-05-28&breakdown=device", "6 bot=3 desktop=1 mobile=1 none=1"},
		{"steps=" + url.QueryEscape("UA Probe[device.type!=bot]") + "&from=2024-05-27&to=2024-05-28", "3"},
		{"steps=" + url.QueryEscape("UA Probe[device.type=bot]") + "&from=2024-05-27&to=2024-05-28", "3"},
		{"steps=IDN+Page&from=2024-06-26&to=2024-06-27&breakdown=channel", "1 direct=1"},
	} {
		if got := funnel(tt.params); got != tt.want {
			t.Errorf("funnel?%s: %s, want %s", tt.params, got, tt.want)
		}
	}
}
