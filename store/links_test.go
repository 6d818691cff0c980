package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/waymark-dev/waymark/sessionize"
)

// TestIdentityLinksOfReadsThePersonsLinks: IdentityLinksOf returns the links stored since a version with either
// end among the ids, each once (a link stored by two batches too), in IdentityLinks' order (by
// the version that first stored it, then by ids), and nothing of other persons: a consumer reads them for the
// persons whose links it stored, to learn those another consumer stored (sessionize.Runner).
func TestIdentityLinksOfReadsThePersonsLinks(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	for _, b := range []sessionize.Batch{
		{Links: [][2]string{{"u:a", "a:dev"}}, Version: 1},
		{Links: [][2]string{{"u:c", "u:b"}, {"u:c", "a:b"}}, Version: 2},
		{Links: [][2]string{{"u:b", "u:a"}, {"u:b", "a:a"}, {"u:x", "a:y"}}, Version: 3},
		{Links: [][2]string{{"u:c", "u:b"}}, Version: 4},
	} {
		if err := st.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		ids   []string
		since uint64
		want  string
	}{
		{[]string{"u:b"}, 0, "[[u:c u:b] [u:b a:a] [u:b u:a]]"},
		{[]string{"u:a", "a:dev"}, 0, "[[u:a a:dev] [u:b u:a]]"},
		{[]string{"a:y"}, 0, "[[u:x a:y]]"},
		{[]string{"u:nobody"}, 0, "[]"},
		{nil, 0, "[]"},
		// Stored since version 3 (u:c u:b again at 4, ordered by its first storing since).
		{[]string{"u:b"}, 3, "[[u:b a:a] [u:b u:a] [u:c u:b]]"},
		{[]string{"u:a", "a:dev"}, 2, "[[u:b u:a]]"},
		{[]string{"u:b"}, 5, "[]"},
	} {
		got, err := st.IdentityLinksOf(ctx, tt.ids, tt.since)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tt.want && !(len(got) == 0 && tt.want == "[]") {
			t.Errorf("IdentityLinksOf(%q, %d) = %v, want %s", tt.ids, tt.since, got, tt.want)
		}
	}
}
