package store_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSchemaDDLGolden pins the DDL of both modes. The single-node DDL also runs on the real server
// in every test that opens a store; the cluster DDL is reviewed here (CI has no cluster).
func TestSchemaDDLGolden(t *testing.T) {
	t.Parallel()
	tests := []struct{ cluster, golden string }{
		{"", "testdata/schema-single.sql"},
		{"waymark_cluster", "testdata/schema-cluster.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			got := strings.Join(store.SchemaDDL("waymark", tt.cluster), ";\n\n") + ";\n"
			if *update {
				if err := os.WriteFile(tt.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatalf("%v (run go test ./store -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("DDL differs from %s (run with -update if intended):\n%s", tt.golden, got)
			}
		})
	}
}
