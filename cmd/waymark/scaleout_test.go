package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestScaleOutSurvivesKill9 runs three `waymark serve --roles ingest` processes in one consumer
// group on a 6-partition topic and kills one with SIGKILL while it holds events it has fetched
// but not stored: every event is stored once and every funnel answer equals a single-consumer
// run's (the Taobao known answers, times 4 passes of fresh customers).
//
// The work in flight at the kill is made so, not raced for: a first pass is stored and committed,
// then ClickHouse is stopped, so the consumers fetch the other passes but can neither store nor
// commit them; the victim is a consumer that has since retried storing a batch. After
// the kill ClickHouse comes back and the survivors take over the victim's partitions from its
// last committed offsets.
func TestScaleOutSurvivesKill9(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	broker := startBrokerProcess(t)
	db := fmt.Sprintf("scaleout_%d", dbSeq.Add(1))
	var consumers []*server
	for range 3 {
		s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-addr", ch.Addr, "--clickhouse-database", db, "--batch-size", "5000")
		s.database, s.broker = db, broker
		consumers = append(consumers, s)
	}
	replay := func(passes int) {
		out := consumers[0].waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", fmt.Sprint(passes), "--kafka-brokers", broker)
		t.Log(out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard
	defer cancel()

	// Pass 0, stored and committed, once all three consumers share the partitions.
	waitGroupStable(t, broker, "waymark", len(consumers))
	replay(1)
	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	stuck := make([]float64, len(consumers))
	for i, s := range consumers {
		stuck[i] = storeRetries(scrape(t, s.http))
	}

	// Passes 0 (again) to 3 while ClickHouse is down: fetched, held, not committed. 40,000
	// events, about 13,000 a consumer, more than a batch (5,000) each: the size matters no more
	// than that since the middle is made, not raced for (the test first killed a consumer while
	// the events of 20 passes streamed in, hoping to hit it midway), and the test checks that
	// something was in flight at the kill.
	ch.Stop()
	const passes = 4
	replay(passes)
	var victim *server
	waitFor(t, "a consumer to hold events it cannot store", func() bool {
		for i, s := range consumers {
			if storeRetries(scrape(t, s.http)) > stuck[i] {
				victim = s
				return true
			}
		}
		return false
	})
	lag, err := ingest.GroupLag(ctx, []string{broker}, "waymark", "waymark.events")
	if err != nil {
		t.Fatal(err)
	}
	var pending int64
	for _, n := range lag {
		pending += n
	}
	if pending == 0 {
		t.Fatal("nothing uncommitted at the kill")
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed a consumer with %d messages uncommitted in the group", pending)
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}

	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	if n := liveEventsOn(t, ch.Addr, db); n != passes*10000 {
		t.Errorf("stored %d distinct events, want %d", n, passes*10000)
	}
	s := consumers[0]
	if s == victim {
		s = consumers[1]
	}
	for _, k := range knownAnswers {
		out := s.waymark(t, "funnel", "--clickhouse-addr", ch.Addr, "--steps", k.steps, "--window", k.window, "--json")
		var f funnelJSON
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			t.Fatalf("funnel --json: %v\n%s", err, out)
		}
		for i, st := range f.Steps {
			if st.Customers != passes*k.want[i] {
				t.Errorf("funnel %s window %s step %d: %d customers, want %d", k.steps, k.window, i+1, st.Customers, passes*k.want[i])
			}
		}
	}
}

// TestQueryOnlyServeStartsNoBroker: a `waymark serve --roles query` talks to no Kafka, so it
// starts no dev broker, and two of them run side by side on one host with the same (default)
// --dev-broker-addr, here held by another process's listener. Each answers queries, and logs
// nothing of brokers or a consumer it does not have (it logged brokers=[127.0.0.1:9092] and
// "consumer flushed and committed" on shutdown).
func TestQueryOnlyServeStartsNoBroker(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0") // the port a dev broker would take
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for i := range 2 {
		s := startServe(t, "--roles", "query", "--dev-broker-addr", held.Addr().String())
		if status, body := httpGet(t, "http://"+s.http+"/api/v1/sessions"); status != http.StatusOK {
			t.Errorf("query-only serve %d: GET /api/v1/sessions answered %d %s", i+1, status, body)
		}
		s.stop(t) // its whole log is read once it has stopped
		for _, kafka := range []string{"DEV BROKER", "brokers=", "consumer", "Kafka"} {
			if strings.Contains(s.log.String(), kafka) {
				t.Errorf("query-only serve %d logged %q:\n%s", i+1, kafka, s.log)
			}
		}
		if !strings.Contains(s.log.String(), "closing ClickHouse clients") {
			t.Errorf("query-only serve %d logged no shutdown:\n%s", i+1, s.log)
		}
	}
}

// startBrokerProcess runs the dev broker (6 partitions) in its own `waymark serve --roles
// collector` process, as a stand-in for a Kafka cluster that outlives the consumers, and returns
// its address.
func startBrokerProcess(t *testing.T) string {
	t.Helper()
	s := startServe(t, "--roles", "collector", "--dev-broker-partitions", "6")
	return s.broker
}

// storeRetries is how often a consumer has retried preparing (sessionizing, which reads
// ClickHouse), writing or committing a batch, from a scrape of its /metrics: while ClickHouse is
// down, it grows exactly when the consumer holds a batch of fetched, uncommitted events.
func storeRetries(metrics string) float64 {
	n := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		for _, step := range []string{"prepare batch", "write batch", "commit offsets"} {
			if v, ok := strings.CutPrefix(line, `waymark_consumer_retries_total{step="`+step+`"} `); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				n += f
			}
		}
	}
	return n
}

// waitGroupStable waits until the consumer group is stable with n members that all have
// partitions of waymark.events, as the broker describes it.
func waitGroupStable(t *testing.T, broker, group string, n int) {
	t.Helper()
	client := &kafka.Client{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	waitFor(t, fmt.Sprintf("group %s to be stable with %d members", group, n), func() bool {
		resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(resp.Groups) != 1 || resp.Groups[0].Error != nil || resp.Groups[0].GroupState != "Stable" || len(resp.Groups[0].Members) != n {
			return false
		}
		for _, m := range resp.Groups[0].Members {
			if len(m.MemberAssignments.Topics) == 0 || len(m.MemberAssignments.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})
}

// TestAliasesAcrossConsumers runs two `--roles ingest` consumers in one group, each reading some
// partitions, with two cases of aliases keyed apart from the ids they link, read by both, which
// must answer as one consumer does, live, after a restart and after waymark resessionize.
//
// Tester's F0: an alias chain CJ1-a → CJ1-b → CJ1-c whose aliases are keyed by CJ1-b (partition
// 0, with the device CJ1-dev) and CJ1-c (partition 4), read by two consumers, the alias b→c
// stored before a→b. Each consumer linked its own half (dev, a, b named CJ1-b; b, c named
// CJ1-c), and the override CJ1-b → CJ1-b written last hid CJ1-b → CJ1-c: two persons, funnel
// 1 → 0, where one consumer answers 1 → 1. identity_links held all three links, yet neither a
// restart nor waymark resessionize wrote the persons again. Now a consumer reads the stored links
// of the persons it wrote after storing them (sessionize.Runner), so the live answer is one
// person named CJ1-c; and a start, or resessionize, writes every person the stored links make,
// over overrides a consumer wrote knowing half the links (put back here as an older build left
// them).
//
// Tester 19's T6: alice and bob each sign in on device T6-dev and a server aliases each from the
// device's id (no anonymousId: keyed by the user), the users read by one consumer, the device by
// the other. alice's alias is read before the device is known anywhere, so that consumer reads
// its previousId as an earlier userId too; bob's after the device's sign-ins are stored. Before,
// bob's alias then joined bob to alice through that reading, and his order was alice's. Now a
// device signed in on by its own events is never read as a userId (sessionize.identities.linksOf):
// each user's order is theirs, the device's views go to whoever was signed in then.
//
// The consumers and resessionize run with --alias-joins-users: the chain joins its userIds with
// it alone (T6's device is read alike either way).
func TestAliasesAcrossConsumers(t *testing.T) {
	t.Parallel()
	collector := startServe(t, "--roles", "collector", "--dev-broker-partitions", "6")
	db := newDatabase(t, "aliaschain")
	collector.database = db
	// Each consumer answers queries too (T6's, one HTTP call each: a CLI run costs a process).
	consumer := func() *server {
		s := startServe(t, "--roles", "ingest,query", "--kafka-brokers", collector.broker, "--clickhouse-database", db, "--alias-joins-users")
		s.database, s.broker = db, collector.broker
		return s
	}
	consumers := []*server{consumer(), consumer()}
	querier := consumers[0]
	waitGroupStable(t, collector.broker, "waymark", 2)
	// The tester's ids, CJ1-dev and CJ1-b on partition 0, CJ1-c on 4: read by two consumers when
	// the group splits the partitions so. Else the first CJn whose ids are read so.
	holder := partitionHolders(t, collector.broker, "waymark")
	of := func(id string) string { return holder[ingest.Partition(id, 6)] }
	cj := ""
	for n := 1; n <= 100 && cj == ""; n++ {
		if p := fmt.Sprintf("CJ%d", n); of(p+"-dev") == of(p+"-b") && of(p+"-b") != of(p+"-c") {
			cj = p
		}
	}
	if cj == "" {
		t.Fatalf("no CJn-b and CJn-c read by two consumers: partitions %v", holder)
	}
	// T6's device read by one consumer, alice and bob by the other.
	t6 := ""
	for n := 1; n <= 100 && t6 == ""; n++ {
		if p := fmt.Sprintf("T6n%d", n); of(p+"-alice") == of(p+"-bob") && of(p+"-alice") != of(p+"-dev") {
			t6 = p
		}
	}
	if t6 == "" {
		t.Fatalf("no T6n-alice and T6n-bob read by another consumer than T6n-dev: partitions %v", holder)
	}
	// Each step is one call, stored before the next: the arrival order is the steps'. F0's lines
	// are one a step; T6's go with them, on June 2nd, apart from F0's day (their events' names are
	// T6's own): alice's alias before the device is known, the device's calls, then bob's alias.
	names := strings.NewReplacer("CJ1", cj, "T6n", t6)
	send := func(steps ...[]string) {
		t.Helper()
		for _, lines := range steps {
			for i := range lines {
				lines[i] = names.Replace(lines[i])
			}
			collector.sendBatch(t, lines...)
			collector.waitStored(t)
		}
	}
	send(
		[]string{`{"type":"identify","anonymousId":"CJ1-dev","userId":"CJ1-a","timestamp":"2026-06-01T09:00:00Z","messageId":"cj1"}`,
			`{"type":"alias","previousId":"T6n-dev","userId":"T6n-alice","timestamp":"2026-06-02T09:02:00Z","messageId":"t6-1"}`},
		[]string{`{"type":"alias","previousId":"CJ1-b","userId":"CJ1-c","timestamp":"2026-06-01T09:02:00Z","messageId":"cj3"}`,
			`{"type":"page","anonymousId":"T6n-dev","name":"T6 Home","timestamp":"2026-06-02T09:00:00Z","messageId":"t6-2"}`,
			`{"type":"identify","anonymousId":"T6n-dev","userId":"T6n-alice","timestamp":"2026-06-02T09:01:00Z","messageId":"t6-3"}`,
			`{"type":"page","anonymousId":"T6n-dev","name":"T6 Catalog","timestamp":"2026-06-02T09:03:00Z","messageId":"t6-4"}`,
			`{"type":"track","userId":"T6n-alice","event":"T6 alice ordered","timestamp":"2026-06-02T09:04:00Z","messageId":"t6-5"}`,
			`{"type":"identify","anonymousId":"T6n-dev","userId":"T6n-bob","timestamp":"2026-06-02T09:10:00Z","messageId":"t6-6"}`},
		[]string{`{"type":"alias","previousId":"CJ1-a","userId":"CJ1-b","timestamp":"2026-06-01T09:01:00Z","messageId":"cj2"}`,
			`{"type":"alias","previousId":"T6n-dev","userId":"T6n-bob","timestamp":"2026-06-02T09:11:00Z","messageId":"t6-7"}`,
			`{"type":"page","anonymousId":"T6n-dev","name":"T6 Cart","timestamp":"2026-06-02T09:12:00Z","messageId":"t6-8"}`,
			`{"type":"track","userId":"T6n-bob","event":"T6 bob ordered","timestamp":"2026-06-02T09:13:00Z","messageId":"t6-9"}`},
		[]string{`{"type":"track","anonymousId":"CJ1-dev","event":"Product Viewed","timestamp":"2026-06-01T09:03:00Z","messageId":"cj4"}`},
		[]string{`{"type":"track","userId":"CJ1-c","event":"Order Completed","timestamp":"2026-06-01T09:05:00Z","messageId":"cj5"}`},
	)
	// checkT6 checks whose each user's order and the device's view after bob's sign-in are, and
	// more's (a query each: after a restart and resessionize the persons are what changes).
	checkT6 := func(when string, more ...string) {
		t.Helper()
		whose := map[string]string{"T6 Home": "alice", "T6 Catalog": "alice", "T6 alice ordered": "alice", "T6 Cart": "bob", "T6 bob ordered": "bob"}
		for _, step := range append([]string{"T6 alice ordered", "T6 bob ordered", "T6 Cart"}, more...) {
			want := whose[step]
			code, body := httpGet(t, "http://"+querier.http+"/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape(step+","+step))
			var d struct{ Persons []string }
			if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{t6 + "-" + want}) {
				t.Errorf("%s: %s went to %v (%d %.200s), want %s-%s's", when, step, d.Persons, code, body, t6, want)
			}
		}
	}
	checkT6("live, two consumers", "T6 Home", "T6 Catalog")
	wantPersons := []string{"CJ1-a=CJ1-c", "CJ1-b=CJ1-c", "CJ1-c=CJ1-c", "device:CJ1-dev=CJ1-c"}
	for i := range wantPersons {
		wantPersons[i] = strings.ReplaceAll(wantPersons[i], "CJ1", cj)
	}
	// persons are the chain's overrides but those of the device readings of the aliases'
	// previousIds a and b (the flag links both readings; no event names those devices), which
	// must be c's too.
	persons := func() []string {
		t.Helper()
		var out []string
		for _, p := range queryStrings(t, "SELECT concat(k, '=', argMax(person_id, version)) AS p FROM (SELECT "+readablePerson("customer_key")+
			" AS k, person_id, version FROM "+db+".persons) WHERE startsWith(k, ?) OR startsWith(k, ?) GROUP BY k ORDER BY p", cj+"-", "device:"+cj+"-") {
			if key, person, _ := strings.Cut(p, "="); key == "device:"+cj+"-a" || key == "device:"+cj+"-b" {
				if person != cj+"-c" {
					t.Errorf("override %q, want %s-c's", p, cj)
				}
				continue
			}
			out = append(out, p)
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		if got := persons(); !slices.Equal(got, wantPersons) {
			t.Errorf("%s: persons %q, want %q", when, got, wantPersons)
		}
		if f := collector.funnel(t, "Product Viewed,Order Completed", "24h"); len(f.Steps) != 2 || f.Steps[0].Customers != 1 || f.Steps[1].Customers != 1 {
			t.Errorf("%s: funnel Product Viewed → Order Completed = %+v, want 1 → 1, a single consumer's", when, f.Steps)
		}
		if n := collector.sessions(t, "--from", "2026-06-01T00:00:00Z", "--to", "2026-06-02T00:00:00Z").Persons; n != 1 {
			t.Errorf("%s: %d persons, want 1", when, n)
		}
	}
	check("live, two consumers")

	// The overrides the two consumers wrote before, each knowing half the chain: CJ1-b → CJ1-b
	// written last. (The events keep the persons the fixed consumers stored them with, so only
	// the overrides are wrong here.)
	stale := func() {
		t.Helper()
		v := uint64(time.Now().UnixNano())
		insertPersons(t, chServer.Addr, db, [][3]any{{cj + "-b", cj + "-c", v}, {cj + "-c", cj + "-c", v},
			{cj + "-a", cj + "-b", v + 1}, {cj + "-b", cj + "-b", v + 1}, {ingest.DevicePerson(cj + "-dev"), cj + "-b", v + 1}})
		if got := persons(); slices.Equal(got, wantPersons) {
			t.Fatalf("persons %q after the stale overrides were written", got)
		}
	}
	stale()
	for _, s := range consumers {
		s.stop(t)
	}
	restarted := consumer()
	querier = restarted
	send([]string{`{"type":"track","anonymousId":"CJ1-dev","event":"Product Viewed","timestamp":"2026-06-01T09:10:00Z","messageId":"cj6"}`})
	check("after a restart")
	checkT6("after a restart")

	for _, args := range [][]string{{"resessionize", "--alias-joins-users", "--from", "2026-06-01T00:00:00Z", "--to", "2026-06-02T00:00:00Z"}, {"resessionize", "--alias-joins-users"}} {
		stale()
		restarted.waymark(t, args...)
		check("after waymark " + strings.Join(args, " "))
		checkT6("after waymark " + strings.Join(args, " "))
	}
}

// TestServerAliasesReadBeforeTheDevicesEvents is tester 42's F1 on a deployment of `--roles
// ingest` consumers: six servers' aliases {"previousId":"mal-devN","userId":"mal-userN"} (no
// anonymousId: keyed by the user) and each user's Order Completed are stored before the devices'
// own Home page and Product Viewed (earlier times) arrive. With two consumers, each device read
// by the consumer that does not read its user, the device's consumer stored the views with the
// device's own person and never learned the alias (another consumer's, stored after it read all
// links): funnel Product Viewed → Order Completed answered 6 → 4 (the pairs one consumer read
// were 1 → 1), until a restart and a new batch. Now a consumer reads the stored links naming a
// device it does not hold before it takes in the device's events (sessionize.Runner), so two
// consumers answer as one: 6 → 6, six persons.
func TestServerAliasesReadBeforeTheDevicesEvents(t *testing.T) {
	storetest.FirstPassOnly(t) // its subject is the consumers' identity graph; the funnel is compared on both engines elsewhere
	t.Parallel()
	for _, tt := range []struct {
		name      string
		consumers int
	}{
		{"one consumer", 1},
		{"two consumers", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			collector := startConsumers(t, "aliasfirst", tt.consumers)
			// Six pairs whose device and user two consumers read apart (one reads all).
			pairs := readApart(t, collector, tt.consumers, "mal-dev%d", "mal-user%d")
			var users, devices []string
			for i, n := range pairs {
				users = append(users,
					fmt.Sprintf(`{"type":"alias","previousId":"mal-dev%d","userId":"mal-user%d","timestamp":"2026-06-03T10:%02d:00Z","messageId":"mal-alias%d"}`, n, n, i, n),
					fmt.Sprintf(`{"type":"track","userId":"mal-user%d","event":"Order Completed","timestamp":"2026-06-03T10:%02d:30Z","messageId":"mal-order%d"}`, n, i, n))
				devices = append(devices,
					fmt.Sprintf(`{"type":"page","anonymousId":"mal-dev%d","name":"Home","timestamp":"2026-06-03T09:%02d:00Z","messageId":"mal-home%d"}`, n, i, n),
					fmt.Sprintf(`{"type":"track","anonymousId":"mal-dev%d","event":"Product Viewed","timestamp":"2026-06-03T09:%02d:30Z","messageId":"mal-view%d"}`, n, i, n))
			}
			collector.sendBatch(t, users...)
			collector.waitStored(t)
			collector.sendBatch(t, devices...)
			collector.waitStored(t)
			if f := collector.funnel(t, "Product Viewed,Order Completed", "24h"); len(f.Steps) != 2 || f.Steps[0].Customers != 6 || f.Steps[1].Customers != 6 {
				t.Errorf("funnel Product Viewed → Order Completed = %+v, want 6 → 6, a single consumer's", f.Steps)
			}
			if n := collector.sessions(t, "--from", "2026-06-03T00:00:00Z", "--to", "2026-06-04T00:00:00Z").Persons; n != 6 {
				t.Errorf("%d persons, want 6", n)
			}
		})
	}
}

// TestServerAliasesOfTwoUsersShareADevice is tester 42's F6 on real serve processes, the dev
// broker and ClickHouse: six devices that only browse, each signed in on by two users through a
// server's alias from its id (keyed by the user), the two users' partitions read by two
// consumers. Each device's view before the second alias is the first user's, the one after the
// second's (its sign-ins), so the funnel Product Viewed → Order Completed is 12 → 12, as one
// consumer answers. The aliases arrive in one call, so the two consumers read them at once: each
// saw one user of the device, and before, neither wrote its sign-ins with both (the funnel
// answered 6 → 6: every view one user's).
func TestServerAliasesOfTwoUsersShareADevice(t *testing.T) {
	storetest.FirstPassOnly(t) // its subject is the consumers' identity graph; sign-ins are compared on both engines elsewhere
	t.Parallel()
	for _, tt := range []struct {
		name      string
		consumers int
	}{
		{"one consumer", 1},
		{"two consumers", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			collector := startConsumers(t, "shareddevice", tt.consumers)
			// Six devices whose two users two consumers read apart (one reads all).
			devices := readApart(t, collector, tt.consumers, "sd-a%d", "sd-b%d")
			var views, aliases, orders []string
			for i, n := range devices {
				at := func(minute int) string { return fmt.Sprintf("2026-06-04T%02d:%02d:00Z", 10+i, minute) }
				views = append(views,
					fmt.Sprintf(`{"type":"page","anonymousId":"sd-dev%d","name":"Home","timestamp":"%s","messageId":"sd-home%d"}`, n, at(0), n),
					fmt.Sprintf(`{"type":"track","anonymousId":"sd-dev%d","event":"Product Viewed","timestamp":"%s","messageId":"sd-view-a%d"}`, n, at(2), n),
					fmt.Sprintf(`{"type":"track","anonymousId":"sd-dev%d","event":"Product Viewed","timestamp":"%s","messageId":"sd-view-b%d"}`, n, at(11), n))
				aliases = append(aliases,
					fmt.Sprintf(`{"type":"alias","previousId":"sd-dev%d","userId":"sd-a%d","timestamp":"%s","messageId":"sd-alias-a%d"}`, n, n, at(1), n),
					fmt.Sprintf(`{"type":"alias","previousId":"sd-dev%d","userId":"sd-b%d","timestamp":"%s","messageId":"sd-alias-b%d"}`, n, n, at(10), n))
				orders = append(orders,
					fmt.Sprintf(`{"type":"track","userId":"sd-a%d","event":"Order Completed","timestamp":"%s","messageId":"sd-order-a%d"}`, n, at(3), n),
					fmt.Sprintf(`{"type":"track","userId":"sd-b%d","event":"Order Completed","timestamp":"%s","messageId":"sd-order-b%d"}`, n, at(12), n))
			}
			collector.sendBatch(t, views...)
			collector.waitStored(t)
			collector.sendBatch(t, aliases...)
			collector.waitStored(t)
			collector.sendBatch(t, orders...)
			collector.waitStored(t)
			if f := collector.funnel(t, "Product Viewed,Order Completed", "1h"); len(f.Steps) != 2 || f.Steps[0].Customers != 12 || f.Steps[1].Customers != 12 {
				t.Errorf("funnel Product Viewed → Order Completed = %+v, want 12 → 12, a single consumer's", f.Steps)
			}
		})
	}
}

// startConsumers starts a collector (with the dev broker, 6 partitions) and consumers serve
// processes of the ingest role on a database of its own named by prefix, waits until the
// consumer group is stable, and returns the collector, which knows the database.
func startConsumers(t *testing.T, prefix string, consumers int) *server {
	t.Helper()
	collector := startServe(t, "--roles", "collector", "--dev-broker-partitions", "6")
	db := newDatabase(t, prefix)
	collector.database = db
	for range consumers {
		s := startServe(t, "--roles", "ingest", "--kafka-brokers", collector.broker, "--clickhouse-database", db)
		s.database, s.broker = db, collector.broker
	}
	waitGroupStable(t, collector.broker, "waymark", consumers)
	return collector
}

// readApart returns six numbers n whose keys fmt.Sprintf(a, n) and fmt.Sprintf(b, n) two
// consumers read apart (with one consumer, the first six).
func readApart(t *testing.T, collector *server, consumers int, a, b string) []int {
	t.Helper()
	holder := partitionHolders(t, collector.broker, "waymark")
	var ns []int
	for n := 1; n <= 200 && len(ns) < 6; n++ {
		if consumers == 1 || holder[ingest.Partition(fmt.Sprintf(a, n), 6)] != holder[ingest.Partition(fmt.Sprintf(b, n), 6)] {
			ns = append(ns, n)
		}
	}
	if len(ns) < 6 {
		t.Fatalf("%d pairs of %s and %s read apart, want 6: partitions %v", len(ns), a, b, holder)
	}
	return ns
}

// partitionHolders returns, per partition of waymark.events, the id of the group member that
// reads it, as the broker describes the group.
func partitionHolders(t *testing.T, broker, group string) map[int]string {
	t.Helper()
	client := &kafka.Client{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(resp.Groups) != 1 {
		t.Fatalf("describe group %s: %v", group, err)
	}
	holders := map[int]string{}
	for _, m := range resp.Groups[0].Members {
		for _, topic := range m.MemberAssignments.Topics {
			for _, p := range topic.Partitions {
				holders[p] = m.MemberID
			}
		}
	}
	return holders
}

// insertPersons inserts rows (customer key, person id, version) into the persons table of
// database on a ClickHouse server.
func insertPersons(t *testing.T, addr, database string, rows [][3]any) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+database+".persons (customer_key, person_id, version)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := batch.Append(r[:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}
