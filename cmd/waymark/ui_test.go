package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
)

// testOutput is where tests leave files for people to look at (screenshots): WAYMARK_TEST_OUTPUT,
// else test-output/ at the top of the repository.
func testOutput(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("WAYMARK_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join(mustAbs(t, "../.."), "test-output")
	}
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestJourneyMapPageInChromium loads the Taobao sample (and a few NPS answers), opens the journey
// map page in headless Chromium and checks that it shows the API's numbers (the Net Promoter
// Score of each stage among them, and the emotional curve drawn by it), that the funnel follows an edited step,
// that the fork opens from the keyboard, that a shared link restores the view, that a narrow
// screen needs no sideways scrolling, and that it asks for the read key once per tab, again
// after a wrong one.
func TestJourneyMapPageInChromium(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium not found: run deploy/test.sh, which installs Debian's chromium")
	}
	s := startServe(t)
	s.replayTaobao(t)
	// NPS answers in awareness (10, 10, 5: +33.33) and conversion (9, 3: 0).
	var answers []string
	for i, a := range []struct {
		event string
		score int
	}{{"Product Viewed", 10}, {"Product Viewed", 10}, {"Product Viewed", 5}, {"Order Completed", 9}, {"Order Completed", 3}} {
		answers = append(answers,
			fmt.Sprintf(`{"type":"track","userId":"ui-nps%d","event":%q,"messageId":"ui-nps%d-1","timestamp":"2017-11-28T10:00:00Z"}`, i, a.event, i),
			fmt.Sprintf(`{"type":"track","userId":"ui-nps%d","event":"NPS Submitted","messageId":"ui-nps%d-2","timestamp":"2017-11-28T10:05:00Z","properties":{"score":%d}}`, i, i, a.score))
	}
	s.sendBatch(t, answers...)
	s.waitStored(t)
	dir := npmInstall(t, "playwright-core")
	shots := testOutput(t, "journey-map")
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "drive-ui.js"), "http://"+s.http, shots, testReadKey)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, raw)
	}
	var got struct {
		Errors []string
		Stages []struct {
			Stage   string
			Entered int64
			MovedOn int64  `json:"moved_on"`
			NPS     string // the stage's data-nps: its score, "" when none
			NPSText string `json:"nps_text"`
			Curve   string
		}
		FirstFunnel, ChangedFunnel, RestoredFunnel, HeldFunnel struct{ Steps, Customers string }
		HeldLink                                               string
		Correlation                                            []string // "value odds successes/failures" per row
		CorrelationSteps                                       string
		StaleComparison                                        int // rows drawn of a comparison answered after the funnel was asked again
		KeyboardTouchpoint                                     string
		Fork                                                   struct {
			Title   string
			Persons int64
			First   string
		}
		Link, RestoredFork, Error string
		CommaStep                 string // the error of a step typed with a comma
		NarrowOverflow            int
		Refused                   string
		Asked, AskedAfterReload   int
		StagesAfterReload         int
		KeptIn                    struct{ Session, Local int }
		FirstLoad                 []string // the API calls until the first load showed
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(got.Errors) > 0 {
		t.Errorf("page errors: %v", got.Errors)
	}

	// The page asked for the read key, refused a wrong one, and kept the right one for the tab.
	if !strings.Contains(got.Refused, "refused") || got.Asked != 2 {
		t.Errorf("key dialog: asked %d times (want 2: once, then after the wrong key), refusal %q", got.Asked, got.Refused)
	}
	if got.KeptIn.Session != 1 || got.KeptIn.Local != 0 || got.AskedAfterReload != 0 || got.StagesAfterReload == 0 {
		t.Errorf("key kept in %+v (want session storage only); after a reload asked %d times, %d stages shown (want 0 and the stages)",
			got.KeptIn, got.AskedAfterReload, got.StagesAfterReload)
	}

	// The first load asked its panels in one batch, which reads the events once.
	if !slices.Contains(got.FirstLoad, "POST /api/v1/batch stages,paths,funnel") ||
		slices.ContainsFunc(got.FirstLoad, func(r string) bool { return regexp.MustCompile(`^GET /api/v1/(stages|paths|funnel)$`).MatchString(r) }) {
		t.Errorf("the first load called %q, want the stages, paths and funnel in one batch", got.FirstLoad)
	}

	// The stage numbers are the API's.
	var stages struct {
		Stages []struct {
			Stage   string
			Entered int64
			MovedOn int64 `json:"moved_on"`
			NPS     *struct{ Score float64 }
		}
	}
	_, body := httpGet(t, "http://"+s.http+"/api/v1/stages?limit=6")
	if err := json.Unmarshal([]byte(body), &stages); err != nil {
		t.Fatal(err)
	}
	if len(got.Stages) != len(stages.Stages) || len(got.Stages) == 0 {
		t.Fatalf("page shows %d stages, API %d", len(got.Stages), len(stages.Stages))
	}
	npsShown := 0
	for i, st := range stages.Stages {
		page := got.Stages[i]
		nps := ""
		if st.NPS != nil {
			nps = strconv.FormatFloat(st.NPS.Score, 'f', -1, 64)
			npsShown++
			if !strings.Contains(page.NPSText, "promoters") || !strings.Contains(page.Curve, "Net Promoter Score") {
				t.Errorf("stage %s shows NPS %q under the curve %q, want its promoters and the curve of NPS", st.Stage, page.NPSText, page.Curve)
			}
		}
		if page.Stage != st.Stage || page.Entered != st.Entered || page.MovedOn != st.MovedOn || page.NPS != nps {
			t.Errorf("stage %d on the page %+v, API %+v (NPS %s)", i, page, st, nps)
		}
	}
	if npsShown != 2 {
		t.Errorf("%d stages have an NPS, want awareness and conversion", npsShown)
	}

	// The edited funnel is the API's funnel for those steps.
	funnelOf := func(steps string, more ...string) string {
		_, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?steps="+url.QueryEscape(steps)+"&window=24h"+strings.Join(more, ""))
		var res struct{ Steps []struct{ Customers int64 } }
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range res.Steps {
			out = append(out, jsonNumber(st.Customers))
		}
		return strings.Join(out, ",")
	}
	if want := funnelOf(got.FirstFunnel.Steps); got.FirstFunnel.Customers != want {
		t.Errorf("first funnel %+v, API %s", got.FirstFunnel, want)
	}
	if !strings.HasPrefix(got.ChangedFunnel.Steps, "awareness,Product Added,") {
		t.Errorf("changed funnel steps %q, want the second step Product Added", got.ChangedFunnel.Steps)
	}
	if want := funnelOf(got.ChangedFunnel.Steps); got.ChangedFunnel.Customers != want || want == got.FirstFunnel.Customers {
		t.Errorf("changed funnel %+v, API %s (first funnel %s)", got.ChangedFunnel, want, got.FirstFunnel.Customers)
	}
	// Holding the product constant: the API's held funnel, kept in the address.
	if want := funnelOf(got.HeldFunnel.Steps, "&hold=property:product_id"); got.HeldFunnel.Steps != got.ChangedFunnel.Steps ||
		got.HeldFunnel.Customers != want || want == got.ChangedFunnel.Customers {
		t.Errorf("held funnel %+v, API %s (not held %s)", got.HeldFunnel, want, got.ChangedFunnel.Customers)
	}
	if !strings.Contains(got.HeldLink, "hold=property%3Aproduct_id") {
		t.Errorf("the address %s does not keep hold", got.HeldLink)
	}

	// The comparison of those who converted with those who did not is the API's correlation
	// analysis of the funnel shown.
	_, body = httpGet(t, "http://"+s.http+"/api/v1/correlation?steps="+url.QueryEscape(got.CorrelationSteps)+"&window=24h")
	var corr struct {
		Events []struct {
			Value, Marker string
			OddsRatio     float64 `json:"odds_ratio"`
			SuccessCount  int64   `json:"success_count"`
			FailureCount  int64   `json:"failure_count"`
		}
	}
	if err := json.Unmarshal([]byte(body), &corr); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range corr.Events {
		want = append(want, fmt.Sprintf("%s %s %d/%d", cmp.Or(e.Value, "("+e.Marker+")"), strconv.FormatFloat(e.OddsRatio, 'f', -1, 64), e.SuccessCount, e.FailureCount))
	}
	if got.CorrelationSteps != got.ChangedFunnel.Steps || len(want) == 0 || !slices.Equal(got.Correlation, want) {
		t.Errorf("the comparison of %q (the form's window edited to 1h, not shown) shows %q, want the API's %q for %q over 24h",
			got.CorrelationSteps, got.Correlation, want, got.ChangedFunnel.Steps)
	}
	if got.StaleComparison != 0 {
		t.Errorf("a comparison answered after the funnel was asked again drew %d rows under the new funnel", got.StaleComparison)
	}

	// The fork opened from the keyboard, with the API's numbers.
	if got.KeyboardTouchpoint == "" || !strings.Contains(got.Fork.Title, got.KeyboardTouchpoint) {
		t.Errorf("keyboard reached touchpoint %q, fork %+v", got.KeyboardTouchpoint, got.Fork)
	}
	_, body = httpGet(t, "http://"+s.http+"/api/v1/next?collapse=true&limit=12&anchor="+url.QueryEscape(got.KeyboardTouchpoint))
	var next struct{ Persons int64 }
	if err := json.Unmarshal([]byte(body), &next); err != nil {
		t.Fatal(err)
	}
	if got.Fork.Persons != next.Persons || next.Persons == 0 {
		t.Errorf("fork shows %d persons, API %d", got.Fork.Persons, next.Persons)
	}

	// The shared link restores the funnel and the fork.
	if got.RestoredFunnel != got.ChangedFunnel || got.RestoredFork != got.Fork.Title {
		t.Errorf("link %s restored funnel %+v and fork %q, want %+v and %q", got.Link, got.RestoredFunnel, got.RestoredFork, got.ChangedFunnel, got.Fork.Title)
	}
	if got.NarrowOverflow > 0 {
		t.Errorf("a 360 px wide screen, a breakdown and a comparison shown, scrolls sideways by %d px", got.NarrowOverflow)
	}
	if !strings.Contains(got.CommaStep, `"Checkout, Step 2" is neither`) {
		t.Errorf("a step typed with a comma shows %q, want the API's message about the one name", got.CommaStep)
	}
	if !strings.Contains(got.Error, "window") {
		t.Errorf("a bad window shows %q, want a message naming the window", got.Error)
	}
	for _, png := range []string{"journey-map-1280x800.png", "journey-map-360x780.png", "funnel.png", "correlation.png", "fork.png", "read-key.png"} {
		if fi, err := os.Stat(filepath.Join(shots, png)); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", png, err)
		}
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
