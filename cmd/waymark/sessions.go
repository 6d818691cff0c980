package main

import (
	"cmp"
	"fmt"
	"io"
	"sort"

	"github.com/waymark-dev/waymark/store"
)

// printSessions prints a sessions summary as a table: counts, durations, then the sessions by
// end reason, entry channel, entry touchpoint and exit touchpoint.
func printSessions(stdout io.Writer, v any) {
	sum := v.(*store.SessionSummary)
	tw := leftTable(stdout)
	fmt.Fprintf(tw, "sessions\t%d\npersons\t%d\nevents\t%d\nmedian duration\t%.0fs\np90 duration\t%.0fs\nevents per session\t%.1f\n",
		sum.Sessions, sum.Persons, sum.Events, sum.MedianDurationSeconds, sum.P90DurationSeconds, sum.MeanEventsPerSession)
	for _, by := range []struct {
		title string
		m     map[string]uint64
	}{{"end reason", sum.ByEndReason}, {"entry channel", sum.ByEntryChannel}} {
		keys := make([]string, 0, len(by.m))
		for k := range by.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return by.m[keys[i]] > by.m[keys[j]] || by.m[keys[i]] == by.m[keys[j]] && keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(tw, "by %s: %s\t%d\n", by.title, k, by.m[k])
		}
	}
	// The touchpoints as the answer ranks them, each by the step that asks about it, as next
	// prints its touchpoints.
	for _, by := range []struct {
		title string
		rows  []store.Ranked
	}{{"entry touchpoint", sum.ByEntryTouchpoint}, {"exit touchpoint", sum.ByExitTouchpoint}} {
		for _, r := range by.rows {
			fmt.Fprintf(tw, "by %s: %s\t%d\n", by.title, label(cmp.Or(r.Step, r.Value), r.Marker), r.Count)
		}
	}
	tw.Flush()
}
