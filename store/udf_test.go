package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestFunnelUDFComesAndGoes: a store remembers that the server has waymark_funnel rather than
// look it up before each query; when the function is then removed, each kind of query that can
// match in ClickHouse still answers, the same (auto: in Waymark) or fails saying the function is
// missing (engine), and once the function is back they match in ClickHouse again. The server is
// the test's own: the other tests' server keeps its function. Where the matching ran is told by
// the function's command, a script that notes each process ClickHouse starts for it.
func TestFunnelUDFComesAndGoes(t *testing.T) {
	t.Parallel()
	own, fnFile, original := ownFunnelUDFServer(t)
	// install makes command (a script beside the waymark binary in user_scripts, which notes its
	// start in the file command.log of the server's folder and runs waymark) the function's
	// command, and restarts the server; "" removes the function. (A restart, not SYSTEM RELOAD
	// FUNCTIONS: on 26.7 the reload that removed the function hung now and then, for good, once
	// its pool's processes had run.) The stores' connections to the stopped server are dropped
	// and dialled again.
	install := func(command string) {
		t.Helper()
		if command == "" {
			if err := os.Remove(fnFile); err != nil {
				t.Fatal(err)
			}
		} else {
			script := "#!/bin/sh\necho \"$$\" >> '" + filepath.Join(own.Dir, command+".log") + "'\nexec '" + filepath.Join(own.Dir, "user_scripts", "waymark") + "' \"$@\"\n"
			if err := os.WriteFile(filepath.Join(own.Dir, "user_scripts", command), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			fn := strings.Replace(string(original), "<command>waymark udf-funnel</command>", "<command>"+command+" udf-funnel</command>", 1)
			if fn == string(original) {
				t.Fatalf("%s: no <command>waymark udf-funnel</command> to replace", fnFile)
			}
			if err := os.WriteFile(fnFile, []byte(fn), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := own.Restart(); err != nil {
			t.Fatal(err)
		}
		want := "1"
		if command == "" {
			want = "0"
		}
		if got := engineSQL(t, own, "SELECT count() FROM system.functions WHERE name = '"+store.FunnelUDFName+"'"); got != want {
			t.Fatalf("after the restart system.functions lists %s %s times, want %s", store.FunnelUDFName, got, want)
		}
	}
	started := func(command string) bool {
		_, err := os.Stat(filepath.Join(own.Dir, command+".log"))
		return err == nil
	}

	var db string
	process := own.OpenStore(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	generateRefData(5, 30).write(t, process)
	jm := defaultMap(t)
	ctx := context.Background()
	funnel := store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 30 * 24 * time.Hour}
	// Every kind of query whose matching can run in ClickHouse (store.matchPlan's callers).
	kinds := []struct {
		name string
		ask  func(s *store.Store) (any, error)
	}{
		{"funnel", func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, funnel) }},
		{"dropoff", func(s *store.Store) (any, error) {
			return s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: funnel, Step: 1, Limit: 100, IDsLimit: 100})
		}},
		{"paths", func(s *store.Store) (any, error) { return s.Paths(ctx, jm, store.PathsQuery{Anchor: "Product Viewed"}) }},
		{"next", func(s *store.Store) (any, error) { return s.Next(ctx, jm, store.NextQuery{Anchor: "Product Viewed"}) }},
		{"retention", func(s *store.Store) (any, error) {
			return s.Retention(ctx, jm, store.RetentionQuery{Conversion: "Product Viewed"})
		}},
		{"stages", func(s *store.Store) (any, error) { return s.Stages(ctx, jm, store.StagesQuery{}) }},
	}
	answer := func(s *store.Store, ask func(s *store.Store) (any, error)) (string, error) {
		res, err := ask(s)
		if err != nil {
			return "", err
		}
		b, err := json.Marshal(res)
		return string(b), err
	}
	// Each kind's auto store asks it in each phase: the first question after a change is the
	// first that store asks on the changed server.
	want := map[string]string{}
	autos := map[string]*store.Store{}
	for _, k := range kinds {
		var err error
		if want[k.name], err = answer(process, k.ask); err != nil {
			t.Fatalf("%s in Waymark: %v", k.name, err)
		}
		autos[k.name] = own.OpenStore(t, func(c *store.Config) { c.Database = db })
	}
	engine := own.OpenStore(t, func(c *store.Config) { c.Database, c.FunnelMatching = db, store.MatchEngine })
	askAll := func(phase string) {
		t.Helper()
		for _, k := range kinds {
			if got, err := answer(autos[k.name], k.ask); err != nil {
				t.Errorf("%s: %s (auto): %v", phase, k.name, err)
			} else if got != want[k.name] {
				t.Errorf("%s: %s (auto):\n%s\nin Waymark:\n%s", phase, k.name, got, want[k.name])
			}
		}
	}

	install("spy")
	askAll("with the function")
	if _, err := answer(engine, kinds[0].ask); err != nil {
		t.Errorf("with the function: funnel (engine): %v", err)
	}
	if !started("spy") {
		t.Fatal("with the function: no query matched in ClickHouse")
	}

	install("")
	askAll("function removed")
	if _, err := answer(engine, kinds[0].ask); err == nil || !strings.Contains(err.Error(), "no "+store.FunnelUDFName+" function") {
		t.Errorf("function removed: funnel (engine): %v, want an error saying the server has no %s", err, store.FunnelUDFName)
	}

	install("spy-again")
	askAll("function back")
	if _, err := answer(engine, kinds[0].ask); err != nil {
		t.Errorf("function back: funnel (engine): %v", err)
	}
	if !started("spy-again") {
		t.Error("function back: no query matched in ClickHouse")
	}
}

// ownFunnelUDFServer starts a server of the test's own, with waymark_funnel (skipping the test
// on an engine without executable UDFs), stopped when the test ends, and returns it, its
// function file's path and the file.
func ownFunnelUDFServer(t *testing.T) (own *storetest.Server, fnFile string, fn []byte) {
	t.Helper()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	own, err := storetest.StartEngine(server.Engine, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	fnFile = filepath.Join(own.Dir, "waymark_funnel_function.xml")
	if fn, err = os.ReadFile(fnFile); err != nil {
		t.Fatal(err)
	}
	return own, fnFile, fn
}

// engineSQL runs sql on s over HTTP and returns its answer, trimmed.
func engineSQL(t *testing.T, s *storetest.Server, sql string) string {
	t.Helper()
	ok, body := postSQL(t, s, sql)
	if !ok {
		t.Fatalf("%s: %s", sql, body)
	}
	return strings.TrimSpace(body)
}

// engineSQLError runs sql on s over HTTP, which must fail, and returns ClickHouse's error.
func engineSQLError(t *testing.T, s *storetest.Server, sql string) string {
	t.Helper()
	ok, body := postSQL(t, s, sql)
	if ok {
		t.Fatalf("%s: %s, want it to fail", sql, body)
	}
	return body
}

// postSQL runs sql on s over HTTP and returns whether it answered 200, and its body.
func postSQL(t *testing.T, s *storetest.Server, sql string) (bool, string) {
	t.Helper()
	resp, err := http.Post("http://"+s.HTTPAddr+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return resp.StatusCode == http.StatusOK, string(body)
}

// TestFunnelUDFReadsAPersonOfManyKeys: a person signed in on 400 devices (a kiosk's staff
// account), 60,000 events, each device a stored visit, counted by sessions and broken down by
// entry channel in ClickHouse under a 512 MiB query limit, answers as the process does. The
// person's events meet their keys' visits grouped by person and key: grouped by person, their
// arrays were copied once per key, and the query ran over 1 GiB.
func TestFunnelUDFReadsAPersonOfManyKeys(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	ctx := context.Background()
	here, engine := storesInBothPlaces(t, func(c *store.Config) { c.QueryMaxMemory = 512 << 20 })
	steps := []string{"Product Viewed", "Product Added", "Order Completed"}
	t0 := time.Date(2026, 2, 2, 8, 0, 0, 0, time.UTC)
	const keys, perKey = 400, 150
	var b sessionize.Batch
	for k := range keys {
		key := fmt.Sprintf("kiosk-%03d", k)
		b.Persons = append(b.Persons, sessionize.PersonLink{CustomerKey: key, PersonID: "staff"})
		start := t0.Add(time.Duration(k) * time.Hour)
		for i := range perKey {
			e := ingest.Event{Source: "web", Type: "track", Event: steps[i%3], MessageID: fmt.Sprintf("%s-%d", key, i), AnonymousID: key,
				UserID: "staff", Timestamp: start.Add(time.Duration(i) * time.Second), ReceivedAt: t0, Raw: []byte("{}"), Seq: int64(k*perKey + i + 1)}
			b.Events, b.Channels, b.PersonIDs = append(b.Events, e), append(b.Channels, "email"), append(b.PersonIDs, "staff")
		}
		b.Sessions = append(b.Sessions, sessionize.Session{ID: key + "-1", CustomerKey: key, PersonID: "staff", Start: start,
			End: start.Add((perKey - 1) * time.Second), Version: 1, EntryChannel: []string{"paid_search", "email"}[k%2], EntryCampaign: "spring"})
	}
	b.Version = 1
	if err := here.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	for _, q := range []store.FunnelQuery{
		{Steps: steps, Window: 24 * time.Hour, CountBy: store.CountSessions},
		{Steps: steps, Window: 24 * time.Hour, Breakdown: store.Breakdown{By: "channel"}},
	} {
		funnelsAgree(t, here, engine, jm, q)
	}
}

// storesInBothPlaces opens two stores over one new database: here matches in Waymark, engine in
// ClickHouse (configured further by configure).
func storesInBothPlaces(t *testing.T, configure func(*store.Config)) (here, engine *store.Store) {
	t.Helper()
	var db string
	here = openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	engine = openStoreWith(t, func(c *store.Config) {
		c.Database, c.FunnelMatching = db, store.MatchEngine
		configure(c)
	})
	return here, engine
}

// funnelsAgree checks that q answers the same in Waymark (here) as in ClickHouse (engine), and
// that someone reached its last step.
func funnelsAgree(t *testing.T, here, engine *store.Store, jm *sessionize.Map, q store.FunnelQuery) {
	t.Helper()
	ctx := context.Background()
	want, err := here.Funnel(ctx, jm, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.Funnel(ctx, jm, q)
	if err != nil {
		t.Fatalf("%d steps from %s in ClickHouse: %v", len(q.Steps), q.From, err)
	}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if string(g) != string(w) || want.Steps[len(want.Steps)-1].Customers == 0 {
		t.Errorf("%+v in ClickHouse:\n%s\nin the process:\n%s", q, g, w)
	}
}

// TestFunnelUDFPacksWhatFits: matched in ClickHouse, each event's time and condition bits share
// one value when the read's times and conditions fit 64 bits (udfPack), and are sent apart when
// not; either way the answers are the in-process path's. Persons who went through 14 steps in
// 1970 and in 2026: 56 years of µs need 51 bits, so the 14-step funnel (14 condition bits) is
// sent apart and the 3-step one packed. One more went through them around 2^50 µs after the
// first event (2005): packed in 50 bits, its later steps would seem to come before its first.
func TestFunnelUDFPacksWhatFits(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	ctx := context.Background()
	here, engine := storesInBothPlaces(t, func(*store.Config) {})
	var steps []string
	for i := range 14 {
		steps = append(steps, fmt.Sprintf("Step %02d", i+1))
	}
	var b sessionize.Batch
	first := time.Date(1970, 1, 2, 8, 0, 0, 0, time.UTC)
	for p, start := range []time.Time{
		first, time.Date(1970, 1, 2, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 4, 8, 0, 0, 0, time.UTC),
		first.Add((1<<50)*time.Microsecond - 7*time.Minute), // its 8th step at 2^50 µs after the first event
	} {
		// Person p stops p%5 steps short of the last.
		appendSteps(&b, fmt.Sprintf("p%d", p), steps[:14-p%5], start.Add(time.Duration(p)*time.Microsecond), time.Minute, int64(100*p+1))
	}
	b.Version = 1
	if err := here.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	for _, q := range []store.FunnelQuery{
		{Steps: steps, Window: 24 * time.Hour},     // 14 conditions: sent apart
		{Steps: steps[:3], Window: 24 * time.Hour}, // 3: packed
		{Steps: steps[:3], Window: 24 * time.Hour, From: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)},
	} {
		funnelsAgree(t, here, engine, jm, q)
	}
}

// TestFunnelUDFTakesItsSpecOncePerBlock: matched in ClickHouse, a query's spec is sent in the
// first row of each block only (specOncePerBlock), and the UDF refuses a chunk whose first row
// has none. Over 3,000 persons a pass's grouping is two-level (group_by_two_level_threshold),
// whose result comes in a block per bucket: the answers are the in-process path's only if every
// chunk the UDF is handed starts a block.
func TestFunnelUDFTakesItsSpecOncePerBlock(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	ctx := context.Background()
	here, engine := storesInBothPlaces(t, func(*store.Config) {})
	steps := []string{"View", "Add", "Buy"}
	var b sessionize.Batch
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for p := range 3000 {
		// A third of the persons buy.
		appendSteps(&b, fmt.Sprintf("p%04d", p), steps[:1+p%3], start.Add(time.Duration(p)*time.Second), time.Minute, int64(10*p+1))
	}
	b.Version = 1
	if err := here.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	funnelsAgree(t, here, engine, defaultMap(t), store.FunnelQuery{Steps: steps, Window: time.Hour})
}

// appendSteps appends to b a track event of person key (user id and person) for each of steps,
// the first at start and each after it gap later, their Seqs from seq on.
func appendSteps(b *sessionize.Batch, key string, steps []string, start time.Time, gap time.Duration, seq int64) {
	for i, step := range steps {
		e := ingest.Event{Source: "web", Type: "track", Event: step, MessageID: fmt.Sprintf("%s-%d", key, i), UserID: key,
			Timestamp: start.Add(time.Duration(i) * gap), ReceivedAt: start, Raw: []byte("{}"), Seq: seq + int64(i)}
		b.Events, b.Channels, b.PersonIDs = append(b.Events, e), append(b.Channels, "direct"), append(b.PersonIDs, key)
	}
}

// TestFunnelUDFCodesFewValues: matched in ClickHouse, a read's attribute columns of few values
// are sent as numbers (spec version 16, udfPack.Codes) and a column of more than 256 values as
// text; either way the answers are the in-process path's. 300 persons, each on a page of their
// own (the drop-off's location: 300 values, sent as text), from one of three channels and with
// three event names (coded), each with a plan of their own (the funnel's breakdown: text) and a
// visit (its key: 300 values, text); a third view and add at one µs in either order of seq (ties),
// every seventh's view delivered twice, once a minute later from another path (a copy), and a
// third buy.
func TestFunnelUDFCodesFewValues(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	ctx := context.Background()
	here, engine := storesInBothPlaces(t, func(*store.Config) {})
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	var b sessionize.Batch
	for p := range 300 {
		key := fmt.Sprintf("q%03d", p)
		at := start.Add(time.Duration(p) * time.Minute)
		add := at.Add(time.Minute)
		seqs := []int64{int64(10 * p), int64(10*p + 1)}
		if p%3 == 1 {
			add, seqs[0], seqs[1] = at, int64(10*p+1), int64(10*p) // the add at the view's µs, sent first
		} else if p%3 == 2 {
			add = at // the add at the view's µs, sent after it
		}
		view := ingest.Event{Source: "web", Type: "track", Event: "View", MessageID: key + "-v", UserID: key, Timestamp: at,
			ReceivedAt: at, Raw: []byte("{}"), Seq: seqs[0], PagePath: fmt.Sprintf("/p/%d", p),
			PropertyKeys: []string{"plan"}, PropertyValues: []string{fmt.Sprintf("plan %d", p)}}
		events := []ingest.Event{view,
			{Source: "web", Type: "track", Event: "Add", MessageID: key + "-a", UserID: key, Timestamp: add, ReceivedAt: add, Raw: []byte("{}"), Seq: seqs[1], PagePath: "/cart"}}
		if p%7 == 0 {
			again := view
			again.Source, again.Timestamp, again.Seq = "app", at.Add(time.Minute), int64(10*p+5)
			events = append(events, again)
		}
		if p%3 == 0 {
			buy := at.Add(2 * time.Minute)
			events = append(events, ingest.Event{Source: "web", Type: "track", Event: "Buy", MessageID: key + "-b", UserID: key, Timestamp: buy,
				ReceivedAt: buy, Raw: []byte("{}"), Seq: int64(10*p + 2), PagePath: "/done"})
		}
		channel := []string{"direct", "email", "social"}[p%3]
		b.Sessions = append(b.Sessions, sessionize.Session{ID: key + "-1", CustomerKey: key, PersonID: key, Start: at,
			End: at.Add(2 * time.Minute), Version: 1, EntryChannel: channel})
		for _, e := range events {
			b.Events, b.Channels, b.PersonIDs = append(b.Events, e), append(b.Channels, channel), append(b.PersonIDs, key)
		}
	}
	b.Version = 1
	if err := here.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	steps := []string{"View", "Add", "Buy"}
	for name, ask := range map[string]func(*store.Store) (any, error){
		"drop-off after step 2": func(s *store.Store) (any, error) {
			return s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: steps, Window: time.Hour}, Step: 2, Limit: 400})
		},
		"funnel by plan (300 values: text)": func(s *store.Store) (any, error) {
			return s.Funnel(ctx, jm, store.FunnelQuery{Steps: steps, Window: time.Hour, Breakdown: store.Breakdown{By: "property", Name: "plan"}, BreakdownLimit: 400})
		},
		"funnel by channel (visits read)": func(s *store.Store) (any, error) {
			return s.Funnel(ctx, jm, store.FunnelQuery{Steps: steps, Window: time.Hour, Breakdown: store.Breakdown{By: "channel"}})
		},
		"funnel by sessions": func(s *store.Store) (any, error) {
			return s.Funnel(ctx, jm, store.FunnelQuery{Steps: steps, Window: time.Hour, CountBy: store.CountSessions})
		},
		"paths from View": func(s *store.Store) (any, error) {
			return s.Paths(ctx, jm, store.PathsQuery{Anchor: "View", Depth: 3, Limit: 20, Convert: "Buy"})
		},
		"next after View": func(s *store.Store) (any, error) {
			return s.Next(ctx, jm, store.NextQuery{Anchor: "View", Window: time.Hour})
		},
		"retention": func(s *store.Store) (any, error) {
			return s.Retention(ctx, jm, store.RetentionQuery{Conversion: "View", Return: "Add"})
		},
	} {
		want, err := ask(here)
		if err != nil {
			t.Fatalf("%s in Waymark: %v", name, err)
		}
		got, err := ask(engine)
		if err != nil {
			t.Fatalf("%s in ClickHouse: %v", name, err)
		}
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		if string(g) != string(w) {
			t.Errorf("%s in ClickHouse:\n%s\nin Waymark:\n%s", name, g, w)
		}
	}
}
