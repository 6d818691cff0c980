package main

import (
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/mattn/go-runewidth"

	"github.com/waymark-dev/waymark/store"
)

// TestTablesLayOutAsTabwriter: on text whose every character takes one terminal column, the
// tables are laid out byte for byte as text/tabwriter lays them out (blocks of lines with a cell
// in a column, text after a line's last tab, lines without tabs between blocks, a last line
// without a newline).
func TestTablesLayOutAsTabwriter(t *testing.T) {
	inputs := map[string]string{
		"funnel":  "#\tSTEP\tCUSTOMERS\t\n1\tProduct Viewed\t120\t\n2\tOrder Completed\t7\t  ← largest drop-off\n",
		"blocks":  "a\tbb\tccc\t\nheading without tabs\n\tx\t\nlonger cell\ty\tz\ttrailing\n\n1\t2\n",
		"ragged":  "one\t\ntwo\tthree\tfour\t\nfive\tsix\t\n\t\t\t\n",
		"unended": "k\tv\t\nkey\tvalue",
		"empty":   "",
	}
	for name, in := range inputs {
		for _, right := range []bool{true, false} {
			var want, got strings.Builder
			flags := uint(0)
			tw := leftTable(&got)
			if right {
				flags = tabwriter.AlignRight
				tw = table(&got)
			}
			ref := tabwriter.NewWriter(&want, 0, 0, tablePadding, ' ', flags)
			ref.Write([]byte(in))
			ref.Flush()
			tw.Write([]byte(in))
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("%s (right %v):\n%q\ntabwriter:\n%q", name, right, got.String(), want.String())
			}
		}
	}
}

// TestTablesAlignWideCharacters (tester 14's note): a column after CJK or emoji text starts at
// the same terminal column on every line, where tabwriter's count of code points put it one
// column further right for each wide character.
func TestTablesAlignWideCharacters(t *testing.T) {
	var b strings.Builder
	tw := leftTable(&b)
	for _, row := range [][2]string{{"商品浏览", "2"}, {"Café ☕", "2"}, {"Order Completed", "17"}, {"e\u0301clair", "3"}} {
		tw.Write([]byte(row[0] + "\t" + row[1] + "\t\n"))
	}
	tw.Flush()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	var at []int
	for _, l := range lines {
		cells := strings.Fields(l)
		last := cells[len(cells)-1]
		at = append(at, runewidth.StringWidth(strings.TrimRight(l, " "))-runewidth.StringWidth(last))
	}
	for i, a := range at {
		if a != at[0] {
			t.Fatalf("the second column starts at terminal column %d on line %d, %d on line 1:\n%s", a, i+1, at[0], b.String())
		}
	}
}

// TestFunnelTableNamesItsUnits: a funnel counting sessions heads its counts SESSIONS, not
// CUSTOMERS (tester 29's N3: the footer said sessions, the column customers).
func TestFunnelTableNamesItsUnits(t *testing.T) {
	for countBy, want := range map[string]string{store.CountPersons: "CUSTOMERS", store.CountSessions: "SESSIONS"} {
		var out strings.Builder
		res := &store.FunnelResult{CountBy: countBy, Mode: store.ModeOrdered, Steps: []store.FunnelStep{{Name: "A", Customers: 3}, {Name: "B", Customers: 1}},
			Breakdown: "channel", Groups: []store.FunnelGroup{{Value: "email", Steps: []store.FunnelStep{{Name: "A", Customers: 1}, {Name: "B"}}}}}
		printFunnel(&out, res)
		header := regexp.MustCompile(`(?m)^\s*#\s+STEP\s+(\S+)`)
		heads := header.FindAllStringSubmatch(out.String(), -1)
		if len(heads) != 2 {
			t.Fatalf("count by %s: want 2 tables (the funnel and its group), got:\n%s", countBy, out.String())
		}
		for _, h := range heads {
			if h[1] != want {
				t.Errorf("count by %s: the counts are headed %s, want %s:\n%s", countBy, h[1], want, out.String())
			}
		}
	}
}
