package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestEngineVersion checks that the harness serves the engine WAYMARK_TEST_CLICKHOUSE asks for:
// Debian's 18.16, or chDB's 26.7.
func TestEngineVersion(t *testing.T) {
	t.Parallel()
	want := map[string]*regexp.Regexp{storetest.Debian: regexp.MustCompile(`^18\.16\.`), storetest.Chdb: regexp.MustCompile(`^26\.7\.`)}[server.Engine]
	if got := engineVersion(t, openStore(t)); !want.MatchString(got) {
		t.Errorf("engine %s serves ClickHouse %s, want %s", server.Engine, got, want)
	}
}

func engineVersion(t *testing.T, s *store.Store) string {
	t.Helper()
	v, err := s.ServerVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEnginesGiveIdenticalAnswers writes the same generated shop (ties on a 10-minute grid,
// identity merges after the fact, late events, every event delivered twice) into ClickHouse 18.16
// and 26.7 and asks every journey question, in every mode, of both: the JSON must be byte for
// byte the same. In deploy/test.sh it runs in the debian pass only: the chdb pass would compare the
// same two engines on the same data again.
func TestEnginesGiveIdenticalAnswers(t *testing.T) {
	t.Parallel()
	if storetest.ComparedInAnotherPass(server.Engine) {
		t.Skipf("compared in this run's debian pass (%s=%q)", storetest.PassesEnv, os.Getenv(storetest.PassesEnv))
	}
	other := storetest.Chdb
	if server.Engine == storetest.Chdb {
		other = storetest.Debian
	}
	second, err := storetest.StartEngine(other, t.TempDir())
	if err != nil {
		t.Fatalf("start the %s engine beside %s: %v", other, server.Engine, err)
	}
	t.Cleanup(second.Stop)

	d := generateRefData(11, 250)
	jm := defaultMap(t)
	stores := map[string]*store.Store{server.Engine: openStore(t), other: second.OpenStore(t, nil)}
	versions := map[string]string{}
	for engine, s := range stores {
		d.write(t, s)
		versions[engine] = engineVersion(t, s)
	}
	if versions[storetest.Debian] == versions[storetest.Chdb] {
		t.Fatalf("both engines are ClickHouse %s: the comparison proves nothing", versions[storetest.Debian])
	}

	const steps = "Product Viewed,Product Added,Checkout Started,Order Completed"
	questions := []struct {
		name   string
		params string
	}{
		{"funnel", "steps=" + steps + "&window=24h"},
		{"funnel", "steps=Product Viewed,Product Viewed,Order Completed,Order Completed&window=7d"},
		{"funnel", "steps=" + steps + "&window=24h&mode=strict"},
		{"funnel", "steps=" + steps + "&window=24h&mode=any"},
		{"funnel", "steps=" + steps + "&window=24h&exclude=Coupon Removed:1-3"},
		{"funnel", "steps=" + steps + "&window=24h&count_by=sessions"},
		{"funnel", "steps=awareness,consideration,conversion,loyalty&window=30d&from=2026-03-05&to=2026-04-20"},
		{"funnel", "steps=Product Viewed[category=shoes],Order Completed&window=7d&breakdown=channel"},
		{"funnel", "steps=Product Viewed,Order Completed&window=7d&breakdown=device"},
		{"funnel", "steps=Product Viewed[device.type!=bot],Order Completed&window=7d&exclude=Coupon Removed[device.type=mobile|tablet]"},
		{"next", "anchor=Product Added[device.type^=mob]&direction=next"},
		{"funnel", "steps=Product Viewed,Order Completed&window=7d&breakdown=property:category"},
		{"funnel", "steps=Product Viewed,Order Completed&window=7d&breakdown=trait:customer_type&breakdown_limit=1"},
		{"dropoff", "steps=" + steps + "&window=24h"},
		{"dropoff", "steps=Product Viewed,Order Completed&window=7d&step=1&ids_limit=1000"},
		{"correlation", "steps=" + steps + "&window=24h&limit=1000"},
		{"correlation", "steps=Product Viewed,Order Completed&window=7d&mode=strict&count_by=sessions&limit=1000"},
		{"correlation", "steps=Product Viewed,Order Completed&window=7d&breakdown=channel"},
		{"funnel", "steps=Product Viewed,Survey Answered[score>=7],Order Completed&window=7d"},
		{"dropoff", "steps=Survey Answered[score<=3%3Bscore>-0.5],Order Completed&window=7d"},
		{"paths", "anchor=Product Viewed&direction=start&depth=4"},
		{"paths", "anchor=Order Completed&direction=end&depth=3&collapse=true"},
		{"next", "anchor=Product Added&direction=next"},
		{"next", "anchor=Order Completed&direction=previous&collapse=true"},
		{"retention", "period=week&conversion=Order Completed"},
		{"retention", "period=month&periods=3"},
		{"stages", ""},
		{"stages", "from=2026-03-10&to=2026-04-10"},
	}
	ctx := context.Background()
	answer := func(engine, name, params string) []byte {
		t.Helper()
		v, err := url.ParseQuery(params)
		if err != nil {
			t.Fatal(err)
		}
		res, err := stores[engine].Query(ctx, jm, name, v)
		if err != nil {
			t.Fatalf("%s?%s on %s: %v", name, params, engine, err)
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, q := range questions {
		t.Run(q.name+"?"+q.params, func(t *testing.T) {
			a, b := answer(storetest.Debian, q.name, q.params), answer(storetest.Chdb, q.name, q.params)
			if string(a) != string(b) {
				t.Errorf("18.16 and 26.7 differ\n18.16: %s\n26.7:  %s", a, b)
			}
		})
	}
	t.Run("sessions", func(t *testing.T) {
		var out []string
		for _, engine := range []string{storetest.Debian, storetest.Chdb} {
			sum, err := stores[engine].Sessions(ctx, jm, store.SessionsQuery{From: t0, To: t0.AddDate(0, 3, 0)})
			if err != nil {
				t.Fatalf("sessions on %s: %v", engine, err)
			}
			b, err := json.Marshal(sum)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		if out[0] != out[1] {
			t.Errorf("18.16 and 26.7 differ\n18.16: %s\n26.7:  %s", out[0], out[1])
		}
		if out[0] == fmt.Sprint(`{"sessions":0}`) {
			t.Error("no sessions: the comparison proves nothing")
		}
	})
}

// TestEngineThatDiesFailsFast starts a second server on the data folder of a running one: the
// engine refuses to share it and exits, and Start must say so at once, with the end of the
// engine's log, rather than wait for the test binary's timeout.
func TestEngineThatDiesFailsFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := storetest.StartEngine(server.Engine, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Stop)
	second, err := storetest.StartEngine(server.Engine, dir)
	if err == nil {
		second.Stop()
		t.Fatal("a second server on the same data folder started")
	}
	if !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "last") {
		t.Errorf("the error does not say the engine exited, with its log: %v", err)
	}
	t.Log(err)
}
