package store

import (
	"slices"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
)

// TestDropoffListsUserIDsFirst: a drop-off's person ids list the userIds before the persons
// named by a device (ingest.DevicePerson) and a device's lost sign-ins, bytewise within each, and
// the limit keeps the first of that order: with more anonymous drop-offs than the limit, the
// customers a shop can reach are still listed (tester 46's F4).
func TestDropoffListsUserIDsFirst(t *testing.T) {
	lost := ingest.Internal + "kiosk" // a device's lost sign-ins (sessionize's lostUser)
	ids := []string{ingest.DevicePerson("a1"), "bob", lost, ingest.DevicePerson("0"), "alice", "bob", ingest.DevicePerson("a1"), "zed"}
	tests := []struct {
		limit int
		want  []string
		more  bool
	}{
		{10, []string{"alice", "bob", "zed", ingest.DevicePerson("0"), ingest.DevicePerson("a1"), lost}, false},
		{6, []string{"alice", "bob", "zed", ingest.DevicePerson("0"), ingest.DevicePerson("a1"), lost}, false},
		{4, []string{"alice", "bob", "zed", ingest.DevicePerson("0")}, true},
		{2, []string{"alice", "bob"}, true},
		{0, []string{}, true},
	}
	for _, tt := range tests {
		s := smallestIDs{limit: tt.limit, kept: map[string]bool{}}
		for _, id := range ids {
			s.add(id)
		}
		if got := s.sorted(); !slices.Equal(got, tt.want) || s.more != tt.more {
			t.Errorf("limit %d: %q (more %v), want %q (more %v)", tt.limit, got, s.more, tt.want, tt.more)
		}
	}
}
