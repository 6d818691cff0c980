package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestIdentityLinksOfReadsThePersonsLinks: IdentityLinksOf returns the links stored since a version with either
// end among the ids, each once (a link stored by two batches too), in IdentityLinks' order (by
// the version that first stored it, then by ids), and nothing of other persons: a consumer reads them for the
// persons whose links it stored, to learn those another consumer stored (sessionize.Runner).
func TestIdentityLinksOfReadsThePersonsLinks(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	writeBatches(t, st,
		sessionize.Batch{Links: [][2]string{{"u:a", "a:dev"}}, Version: 1},
		sessionize.Batch{Links: [][2]string{{"u:c", "u:b"}, {"u:c", "a:b"}}, Version: 2},
		sessionize.Batch{Links: [][2]string{{"u:b", "u:a"}, {"u:b", "a:a"}, {"u:x", "a:y"}}, Version: 3},
		sessionize.Batch{Links: [][2]string{{"u:c", "u:b"}}, Version: 4},
	)
	checkLinkReads(t, "IdentityLinksOf", st.IdentityLinksOf, []linkRead{
		{[]string{"u:b"}, 0, "[[u:c u:b] [u:b a:a] [u:b u:a]]"},
		{[]string{"u:a", "a:dev"}, 0, "[[u:a a:dev] [u:b u:a]]"},
		{[]string{"a:y"}, 0, "[[u:x a:y]]"},
		{[]string{"u:nobody"}, 0, "[]"},
		{nil, 0, "[]"},
		// Stored since version 3 (u:c u:b again at 4, ordered by its first storing since).
		{[]string{"u:b"}, 3, "[[u:b a:a] [u:b u:a] [u:c u:b]]"},
		{[]string{"u:a", "a:dev"}, 2, "[[u:b u:a]]"},
		{[]string{"u:b"}, 5, "[]"},
	})
}

// writeBatches stores batches in st, in order.
func writeBatches(t *testing.T, st *store.Store, batches ...sessionize.Batch) {
	t.Helper()
	for _, b := range batches {
		if err := st.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// linkRead is a read of the stored identity links of ids stored since a version, and the links
// it must return (fmt.Sprint's text).
type linkRead struct {
	ids   []string
	since uint64
	want  string
}

// checkLinkReads asks read (named name in errors) each of reads.
func checkLinkReads(t *testing.T, name string, read func(ctx context.Context, ids []string, since uint64) ([][2]string, error), reads []linkRead) {
	t.Helper()
	for _, tt := range reads {
		got, err := read(context.Background(), tt.ids, tt.since)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tt.want && !(len(got) == 0 && tt.want == "[]") {
			t.Errorf("%s(%q, %d) = %v, want %s", name, tt.ids, tt.since, got, tt.want)
		}
	}
}

// TestIdentityLinksFromReadsTheLinksNamingAnIDFirst: IdentityLinksFrom returns the links stored
// since a version whose first id is among the ids, each once, in IdentityLinks' order: a device's
// aliases from its id and its sign-in by its own events (stored device first), not a sign-in
// naming it second (sessionize.Runner reads them before it takes in a device it does not hold,
// tester 42's F1).
func TestIdentityLinksFromReadsTheLinksNamingAnIDFirst(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	writeBatches(t, st,
		sessionize.Batch{Links: [][2]string{{"a:dev", "u:erin"}, {"u:bob", "a:dev2"}}, Version: 1},
		sessionize.Batch{Links: [][2]string{{"a:dev2", "a:dev2"}, {"a:dev", "u:fay"}}, Version: 2},
		sessionize.Batch{Links: [][2]string{{"a:dev", "u:erin"}, {"u:x", "a:dev"}}, Version: 3},
	)
	checkLinkReads(t, "IdentityLinksFrom", st.IdentityLinksFrom, []linkRead{
		{[]string{"a:dev"}, 0, "[[a:dev u:erin] [a:dev u:fay]]"},
		{[]string{"a:dev", "a:dev2", "a:nobody"}, 0, "[[a:dev u:erin] [a:dev u:fay] [a:dev2 a:dev2]]"},
		{[]string{"a:dev"}, 2, "[[a:dev u:fay] [a:dev u:erin]]"}, // erin's again at 3
		{[]string{"a:dev2"}, 3, "[]"},
		{nil, 0, "[]"},
	})
}

// TestDeviceLinksReadsLinksAndBrowsedDevices: DeviceLinks returns IdentityLinksOf of the devices
// and, in the same read, those of them that are the anonymousId of a stored event (a device that
// only browsed, as one signed in on): not an id stored only as a userId, nor one never stored
// (sessionize.Runner reads them before a batch's aliases from a device's id, tester 20's report).
func TestDeviceLinksReadsLinksAndBrowsedDevices(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	browsed := ev("", "Home", 0)
	browsed.Type, browsed.AnonymousID, browsed.MessageID = "page", "dev", "m1"
	signedIn := ev("bob", "Product Viewed", 60)
	signedIn.AnonymousID, signedIn.MessageID = "dev2", "m2"
	user := ev("carol", "Order Completed", 120) // a userId only: carol is no device
	writeBatches(t, st,
		sessionize.Batch{Events: []ingest.Event{browsed, signedIn, user}, Version: 1},
		sessionize.Batch{Links: [][2]string{{"a:dev2", "a:dev2"}, {"u:bob", "a:dev2"}, {"a:dev", "u:erin"}}, Version: 2},
		sessionize.Batch{Links: [][2]string{{"u:x", "a:y"}}, Version: 3},
	)
	for _, tt := range []struct {
		devices []string
		since   uint64
		links   string
		seen    string
	}{
		{[]string{"a:dev"}, 0, "[[a:dev u:erin]]", "[a:dev]"},
		{[]string{"a:dev", "a:dev2", "a:carol", "a:nobody"}, 0, "[[a:dev u:erin] [a:dev2 a:dev2] [u:bob a:dev2]]", "[a:dev a:dev2]"},
		{[]string{"a:carol"}, 0, "[]", "[]"},
		{[]string{"a:dev", "a:y"}, 3, "[[u:x a:y]]", "[a:dev]"},
		{nil, 0, "[]", "[]"},
	} {
		links, seen, err := st.DeviceLinks(ctx, tt.devices, tt.since)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(links); got != tt.links && !(len(links) == 0 && tt.links == "[]") {
			t.Errorf("DeviceLinks(%q, %d) links = %v, want %s", tt.devices, tt.since, got, tt.links)
		}
		if got := fmt.Sprint(seen); got != tt.seen && !(len(seen) == 0 && tt.seen == "[]") {
			t.Errorf("DeviceLinks(%q, %d) seen = %v, want %s", tt.devices, tt.since, got, tt.seen)
		}
	}
}
