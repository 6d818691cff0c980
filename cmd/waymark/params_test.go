package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
)

// TestIntegerParametersKeepTheirRange asks a running Waymark each journey query with every whole-
// number parameter just inside and just outside the range docs/queries.md gives it: inside is
// answered, outside is a 400 naming the parameter, never an answer for another value. A drop-off's
// step=0 (its default) is the step with the largest drop-off, answered as that step asked by number.
func TestIntegerParametersKeepTheirRange(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	// Five persons view, four add, one orders: one drops off after step 1, three after step 2.
	var events []string
	for i := range 5 {
		for j, name := range []string{"PB View", "PB Add", "PB Order"}[:min(3, []int{3, 2, 2, 2, 1}[i])] {
			events = append(events, fmt.Sprintf(`{"type":"track","userId":"pb-%d","event":%q,"messageId":"pb-%d-%d","timestamp":"2024-03-05T10:0%d:00Z"}`, i, name, i, j, j))
		}
	}
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(events, ",")+`]}`); status != 200 || strings.Contains(answer, "rejected") {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)

	const rng = "&from=2024-03-01&to=2024-04-01"
	steps := "steps=" + url.QueryEscape("PB View,PB Add,PB Order") + rng
	tests := []struct {
		query, base, param string
		lo, hi             int
	}{
		{"funnel", steps + "&breakdown=channel", "breakdown_limit", 1, 1000}, // needs a breakdown (tester 50's F9)
		{"dropoff", steps, "step", 0, 2},
		{"dropoff", steps, "limit", 1, 1000},
		{"dropoff", steps, "ids_limit", 0, 100000},
		{"paths", "anchor=PB+View&convert=PB+Order" + rng, "depth", 2, 10},
		{"paths", "anchor=PB+View&convert=PB+Order" + rng, "limit", 1, 1000},
		{"next", "anchor=PB+View" + rng, "limit", 1, 1000},
		{"retention", "conversion=PB+View" + rng, "periods", 1, 52},
		{"stages", rng[1:], "limit", 1, 100},
		{"sessions", rng[1:], "limit", 1, 1000},
	}
	for _, tt := range tests {
		for _, n := range []int{tt.lo - 1, tt.lo, tt.hi, tt.hi + 1} {
			t.Run(fmt.Sprintf("%s %s=%d", tt.query, tt.param, n), func(t *testing.T) {
				code, body := httpGet(t, "http://"+s.http+"/api/v1/"+tt.query+"?"+tt.base+"&"+tt.param+"="+strconv.Itoa(n))
				var e struct{ Error, Param string }
				json.Unmarshal([]byte(body), &e)
				switch inside := n >= tt.lo && n <= tt.hi; {
				case inside && code != 200:
					t.Errorf("%d %s, want 200", code, body)
				case !inside && (code != 400 || e.Param != tt.param):
					t.Errorf("%d %s, want 400 naming %s", code, body, tt.param)
				case tt.param == "step" && !inside && !strings.Contains(e.Error, "0 for the step with the largest drop-off"):
					t.Errorf("%s: the error does not say what 0 means", e.Error)
				}
			})
		}
	}

	// breakdown_limit without a breakdown limits nothing: a 400 naming it, in a batch as alone
	// (tester 50's F9).
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+steps+"&breakdown_limit=5")
	var e struct{ Error, Param string }
	json.Unmarshal([]byte(body), &e)
	if code != 400 || e.Param != "breakdown_limit" || !strings.Contains(e.Error, "needs a breakdown") {
		t.Errorf("funnel with breakdown_limit and no breakdown: %d %s, want 400 naming breakdown_limit", code, body)
	}
	s.batchAnswersAsAlone(t, "/api/v1/funnel?"+steps+"&breakdown_limit=5")

	// step=0, or none, is the step the most drop off after, by the answers for each step.
	dropoff := func(params string) map[string]any {
		t.Helper()
		code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?"+steps+params)
		var res map[string]any
		if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
			t.Fatalf("dropoff?%s: %d %s", params, code, body)
		}
		return res
	}
	var largest map[string]any
	for k := 1; k <= 2; k++ { // each step but the last
		if res := dropoff("&step=" + strconv.Itoa(k)); largest == nil || res["dropped"].(float64) > largest["dropped"].(float64) {
			largest = res
		}
	}
	if largest["step"] != float64(2) {
		t.Errorf("the largest drop-off is after step %v, want the data's step 2", largest["step"])
	}
	for _, params := range []string{"&step=0", ""} {
		if got := dropoff(params); fmt.Sprint(got) != fmt.Sprint(largest) {
			t.Errorf("dropoff?%s: %v, want the largest drop-off %v", params, got, largest)
		}
	}
	// ids_limit=0 counts them and lists no one.
	if res := dropoff("&step=2&ids_limit=0"); fmt.Sprint(res["persons"], res["persons_truncated"], res["dropped"]) != fmt.Sprint([]any{}, true, largest["dropped"]) {
		t.Errorf("dropoff with ids_limit=0: persons %v, truncated %v, dropped %v; want none listed of %v", res["persons"], res["persons_truncated"], res["dropped"], largest["dropped"])
	}
}

// TestStrayBracketInAStepIsRefused: an unescaped "]" inside a step's filters that closes no "["
// of its filter (two pairs of brackets, a doubled "]", a half-escaped value) is a 400 naming the
// parameter and saying how to write it, in every parameter that takes a step, and on the command
// line an error naming the flag; never the silent zero of a value that holds the bracket.
// Escaped, or paired within the value, a bracket is part of the value.
func TestStrayBracketInAStepIsRefused(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	batch := `{"batch":[
		{"type":"track","userId":"sb-1","event":"SB View","properties":{"category":"4756105","product_id":"1","tag":"[new]"},"messageId":"sb-1","timestamp":"2024-03-05T10:00:00Z"},
		{"type":"track","userId":"sb-1","event":"SB Buy","messageId":"sb-2","timestamp":"2024-03-05T10:01:00Z"}]}`
	if status, answer := s.track(t, "/v1/batch", batch); status != 200 || strings.Contains(answer, "rejected") {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	const rng = "&from=2024-03-01&to=2024-04-01"
	for _, stray := range []string{"SB View[category=4756105][product_id=1]", "SB View[category=4756105]]", `SB View[tag=\[new]]`} {
		q := url.QueryEscape(stray)
		for _, tt := range []struct{ query, param string }{
			{"funnel?steps=" + q + ",SB+Buy", "steps"},
			{"funnel?steps=SB+View,SB+Buy&exclude=" + q, "exclude"},
			{"dropoff?steps=" + q + ",SB+Buy", "steps"},
			{"paths?anchor=" + q + "&convert=SB+Buy", "anchor"},
			{"paths?anchor=SB+View&convert=" + q, "convert"},
			{"next?anchor=" + q, "anchor"},
			{"retention?conversion=" + q, "conversion"},
			{"retention?conversion=SB+View&return=" + q, "return"},
		} {
			code, body := httpGet(t, "http://"+s.http+"/api/v1/"+tt.query+rng)
			var e struct{ Error, Param string }
			json.Unmarshal([]byte(body), &e)
			if code != 400 || e.Param != tt.param || !strings.Contains(e.Error, `\]`) {
				t.Errorf("%s: %d %s, want 400 naming %s and saying how to escape", tt.query, code, body, tt.param)
			}
		}
	}
	cmd := exec.Command(binary, "funnel", "--steps", "SB View[category=4756105]]", "--from", "2024-03-01", "--to", "2024-04-01")
	cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+s.database)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--steps") || !strings.Contains(string(out), `\]`) {
		t.Errorf("waymark funnel --steps with a stray ]: %v\n%s", err, out)
	}
	// Written as the error says, each asks what it meant.
	for _, step := range []string{"SB View[category=4756105;product_id=1]", `SB View[tag=\[new\]]`, "SB View[tag=[new]]"} {
		f := s.funnel(t, step+",SB Buy", "24h")
		if len(f.Steps) != 2 || f.Steps[0].Customers != 1 || f.Steps[1].Customers != 1 {
			t.Errorf("%s: %+v, want 1 → 1", step, f.Steps)
		}
	}
}

// TestMistypedFilterIsRefused: a filter whose operator looks like a typo (==, =!=, !~=, !^=, =>,
// <>), that has no field ([=x]), or that lists an empty value among others ([plan=A|], read as
// "A or the empty string") is a 400 naming the parameter and saying what the operators are, or
// that a value is empty, in every parameter that takes a step, and on the command line an error
// naming the flag; never a field or value that holds the operator's characters and matches
// something else than meant.
func TestMistypedFilterIsRefused(t *testing.T) {
	storetest.FirstPassOnly(t) // the parser's refusals, whatever the engine (its funnels are checked on both elsewhere)
	t.Parallel()
	s := startServe(t)
	batch := `{"batch":[
		{"type":"track","userId":"mf-1","event":"MF View","properties":{"qty":3,"plan":"A"},"messageId":"mf-1","timestamp":"2024-03-05T10:00:00Z"},
		{"type":"track","userId":"mf-1","event":"MF Buy","messageId":"mf-2","timestamp":"2024-03-05T10:01:00Z"}]}`
	if status, answer := s.track(t, "/v1/batch", batch); status != 200 || strings.Contains(answer, "rejected") {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	const rng = "&from=2024-03-01&to=2024-04-01"
	for _, tt := range []struct{ step, says string }{
		{"MF View[qty==3]", `"==" is not an operator; the operators are =, !=, ^=, ~=, >, >=, <, <=`},
		{"MF View[qty=!=3]", `"=!=" is not an operator`},
		{"MF View[qty!~=3]", `"!~=" is not an operator`},
		{"MF View[qty!^=3]", `"!^=" is not an operator`},
		{"MF View[qty=>3]", `"=>" is not an operator`},
		{"MF View[qty<>3]", `"<>" is not an operator`},
		{"MF View[=3]", "no field before the operator ="},
		{"MF View[plan=A|]", "value 2 of 2 is empty"},
		{"MF View[plan=|A]", "value 1 of 2 is empty"},
	} {
		q := url.QueryEscape(tt.step)
		for _, p := range []struct{ query, param string }{
			{"funnel?steps=" + q + ",MF+Buy", "steps"},
			{"funnel?steps=MF+View,MF+Buy&exclude=" + q, "exclude"},
			{"dropoff?steps=" + q + ",MF+Buy", "steps"},
			{"paths?anchor=" + q + "&convert=MF+Buy", "anchor"},
			{"paths?anchor=MF+View&convert=" + q, "convert"},
			{"next?anchor=" + q, "anchor"},
			{"retention?conversion=" + q, "conversion"},
			{"retention?conversion=MF+View&return=" + q, "return"},
		} {
			code, body := httpGet(t, "http://"+s.http+"/api/v1/"+p.query+rng)
			var e struct{ Error, Param string }
			json.Unmarshal([]byte(body), &e)
			if code != 400 || e.Param != p.param || !strings.Contains(e.Error, tt.says) {
				t.Errorf("%s: %d %s, want 400 naming %s and saying %s", p.query, code, body, p.param, tt.says)
			}
		}
		cmd := exec.Command(binary, "funnel", "--steps", tt.step+",MF Buy", "--from", "2024-03-01", "--to", "2024-04-01")
		cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+s.database)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--steps") || !strings.Contains(string(out), tt.says) {
			t.Errorf("waymark funnel --steps %q: %v\n%s", tt.step, err, out)
		}
	}
	// Written as the errors say, each asks what it meant.
	for _, step := range []string{"MF View[qty=3]", "MF View[qty!=4]", "MF View[plan=A]", "MF View[plan~=^(A|)$]"} {
		f := s.funnel(t, step+",MF Buy", "24h")
		if len(f.Steps) != 2 || f.Steps[0].Customers != 1 || f.Steps[1].Customers != 1 {
			t.Errorf("%s: %+v, want 1 → 1", step, f.Steps)
		}
	}
}
