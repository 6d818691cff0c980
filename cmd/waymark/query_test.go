package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// TestDropoffCSVIsNotAFormula writes person ids that a visitor could have sent as their userId
// through the drop-off's CSV and reads them back as a spreadsheet would: a cell that begins with
// a formula's first character must begin with an apostrophe (OWASP, "CSV Injection"), every other
// id must come back as it is, a device's person quoted with its escapes.
func TestDropoffCSVIsNotAFormula(t *testing.T) {
	tests := []struct{ id, cell string }{
		{"=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"},
		{`=HYPERLINK("http://evil.example","x")`, `'=HYPERLINK("http://evil.example","x")`},
		{"+15551234567", "'+15551234567"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"alice@example.com", "alice@example.com"},
		{"user-7", "user-7"},
		{"a=b", "a=b"},
		{"'quoted", "'quoted"},
		// A person named by a device (ingest.DevicePerson) is written quoted with its escapes,
		// never as NUL bytes, which also hid its = from the formula guard (tester 46's F3).
		{ingest.DevicePerson(`=HYPERLINK("http://evil.example","x")`), `"\x00\x00=HYPERLINK(\"http://evil.example\",\"x\")"`},
		{ingest.DevicePerson("anon-7"), `"\x00\x00anon-7"`},
	}
	var ids, want []string
	for _, tt := range tests {
		ids, want = append(ids, tt.id), append(want, tt.cell)
	}
	var out bytes.Buffer
	if err := writeDropoffCSV(&out, newFlagSet("dropoff", ""), &store.DropoffResult{Persons: ids}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, ingest.Internal) {
		t.Errorf("the CSV holds NUL bytes:\n%q", text)
	}
	records, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatalf("read the CSV back: %v\n%s", err, text)
	}
	var got []string
	for _, r := range records {
		if len(r) != 1 {
			t.Fatalf("a row of %d cells: %q", len(r), r)
		}
		got = append(got, r[0])
	}
	if got[0] != "person_id" || !slices.Equal(got[1:], want) {
		t.Errorf("cells %q, want person_id then %q", got, want)
	}
}

// TestQueryCommandsNameAMissingDatabase: a --clickhouse-database that does not exist (a typo, or
// a database serve never migrated) gets one message from every query command, naming the flag,
// or the variable it came from, instead of ClickHouse's error in each command's words.
func TestQueryCommandsNameAMissingDatabase(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"funnel", "--steps", "A"}, {"sessions"}, {"stages"}, {"dropoff", "--steps", "A,B"},
		{"paths", "--anchor", "A"}, {"next", "--anchor", "A"}, {"retention", "--conversion", "A"},
	}
	for _, args := range commands {
		for _, viaEnv := range []bool{false, true} {
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr)
			ref := "--clickhouse-database"
			if viaEnv {
				cmd.Env = append(cmd.Env, "WAYMARK_CLICKHOUSE_DATABASE=nope_missing")
				ref = "WAYMARK_CLICKHOUSE_DATABASE (--clickhouse-database)"
			} else {
				cmd.Args = append(cmd.Args, "--clickhouse-database", "nope_missing")
			}
			out, err := cmd.CombinedOutput()
			want := fmt.Sprintf("waymark: %s: database \"nope_missing\" does not exist on %s (run waymark serve or waymark migrate first)\n", ref, chServer.Addr)
			if err == nil || string(out) != want {
				t.Errorf("waymark %s (database from the environment: %v): %v\n%s\nwant %s", strings.Join(args, " "), viaEnv, err, out, want)
			}
		}
	}
}

// TestDropoffCSVSaysWhenTruncated: --csv writes every person who dropped off, up to
// store.MaxIDsLimit; past it, it writes those and fails naming --csv, as the answer's
// persons_truncated says, rather than pass the first ones for all of them silently.
func TestDropoffCSVSaysWhenTruncated(t *testing.T) {
	tests := []struct {
		name      string
		truncated bool
		want      string // the error's start; "" for none
	}{
		{"every person", false, ""},
		{"more than listed", true, "--csv: wrote the first 2 persons who dropped off, the most a drop-off lists, not all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := writeDropoffCSV(&out, newFlagSet("dropoff", ""), &store.DropoffResult{Persons: []string{"a", "b"}, PersonsTruncated: tt.truncated})
			if out.String() != "person_id\na\nb\n" {
				t.Errorf("wrote %q, want the two persons listed", out.String())
			}
			if (err == nil) != (tt.want == "") || err != nil && !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestQueryCommandsNameTheLimitFlags: a query command over its limit names the flags that set
// them, as every other CLI error names its flag.
func TestQueryCommandsNameTheLimitFlags(t *testing.T) {
	t.Parallel()
	db := "waymark_limitflags"
	if out, err := exec.Command(binary, "migrate", "--clickhouse-addr", chServer.Addr, "--clickhouse-database", db).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	cmd := exec.Command(binary, "funnel", "--steps", "A,B", "--query-timeout", "1ns")
	cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+db)
	out, err := cmd.CombinedOutput()
	want := "the query ran over its limit (time 1ns); --query-timeout and --query-max-memory set the limits\n"
	if err == nil || !strings.HasPrefix(string(out), "waymark: funnel: ") || !strings.HasSuffix(string(out), want) {
		t.Errorf("waymark funnel --query-timeout 1ns: %v\n%s\nwant it to end %q", err, out, want)
	}
}

// TestClickHouseAddrAtTheHTTPPort: --clickhouse-addr given ClickHouse's HTTP port, a common slip
// (8123 for 9000), is named as that rather than as nothing answering (tester 26 F6).
func TestClickHouseAddrAtTheHTTPPort(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "funnel", "--steps", "A", "--clickhouse-addr", chServer.HTTPAddr).CombinedOutput()
	want := "waymark: --clickhouse-addr: " + chServer.HTTPAddr + " answers HTTP: that is ClickHouse's HTTP port (8123 by default), and Waymark speaks ClickHouse's native protocol"
	if err == nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("waymark funnel --clickhouse-addr %s: %v\n%s\nwant it to start %q", chServer.HTTPAddr, err, out, want)
	}
}

// TestClickHouseHTTPIsToldFromTheNativePort: the native port answers an HTTP request too (a 400
// saying it is for clickhouse-client), so only the HTTP interface's answer to /ping is taken for
// the HTTP port: a native port slow to shake hands was named as the HTTP one (tester 27's F1).
func TestClickHouseHTTPIsToldFromTheNativePort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if !clickhouseHTTP(ctx, chServer.HTTPAddr) {
		t.Errorf("the HTTP port %s is not taken for ClickHouse's HTTP interface", chServer.HTTPAddr)
	}
	if clickhouseHTTP(ctx, chServer.Addr) {
		t.Errorf("the native port %s is taken for ClickHouse's HTTP interface", chServer.Addr)
	}
}

// TestCorrelationTablePrintsTheAPIsOddsRatios: the table's odds ratios are the API's numbers
// (4 decimals), neither cut to 4 digits nor in e-notation (tester 40's F1: 2.6e+05 for
// 260026, 1.667 for 1.6667).
func TestCorrelationTablePrintsTheAPIsOddsRatios(t *testing.T) {
	var out strings.Builder
	printCorrelation(&out, &store.CorrelationResult{CountBy: store.CountPersons, SuccessTotal: 25, FailureTotal: 10000, Skewed: true,
		Events: []store.CorrelatedTouchpoint{
			{Value: "Chat Opened", Step: "Chat Opened", SuccessCount: 25, OddsRatio: 260026, CorrelationType: store.CorrelationSuccess},
			{Value: "Size Guide", Step: "Size Guide", SuccessCount: 2, FailureCount: 1, OddsRatio: 1.6667, CorrelationType: store.CorrelationSuccess},
			{Value: "Coupon", Step: "Coupon", FailureCount: 30, OddsRatio: 0.0001, CorrelationType: store.CorrelationFailure},
		}})
	for _, want := range []string{" 260026 ", " 1.6667 ", " 0.0001 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "e+") || strings.Contains(out.String(), "e-") {
		t.Errorf("the table has e-notation:\n%s", out.String())
	}
}
