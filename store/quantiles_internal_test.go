package store

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

func TestSpilledValuesNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	many := func(n int, value func() uint64) []uint64 {
		vs := make([]uint64, n)
		for i := range vs {
			vs[i] = value()
		}
		return vs
	}
	tests := []struct {
		name   string
		values []uint64
	}{
		{"one", []uint64{7}},
		{"two", []uint64{9, 3}},
		{"all zero, spilled", many(3*spillChunk+5, func() uint64 { return 0 })},
		{"mostly zero, spilled", many(2*spillChunk+1, func() uint64 {
			if rng.IntN(10) == 0 {
				return rng.Uint64N(86_400_000)
			}
			return 0
		})},
		{"a day in ms, spilled", many(spillChunk+3, func() uint64 { return rng.Uint64N(86_400_001) })},
		{"one chunk exactly", many(spillChunk, func() uint64 { return rng.Uint64N(1000) })},
		{"past 2^32", many(5000, func() uint64 { return 1<<32 + rng.Uint64N(1<<40) })},
		{"the largest values", []uint64{math.MaxUint64, 0, math.MaxUint64 - 1, 1 << 63}},
		{"few distinct", many(spillChunk+100, func() uint64 { return []uint64{5, 65536, 65537, 1 << 20}[rng.IntN(4)] })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpilledValues()
			defer s.close()
			for _, v := range tt.values {
				if err := s.add(v); err != nil {
					t.Fatal(err)
				}
			}
			sorted := slices.Sorted(slices.Values(tt.values))
			n := uint64(len(sorted))
			ranks := []uint64{0, n / 2, n * 9 / 10, n - 1, uint64(rng.Int64N(int64(n)))}
			got, err := s.nth(ranks...)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range ranks {
				if got[i] != sorted[r] {
					t.Errorf("rank %d of %d: got %d, want %d", r, n, got[i], sorted[r])
				}
			}
			if _, err := s.nth(n); err == nil {
				t.Errorf("rank %d of %d values: no error", n, n)
			}
		})
	}
}

func TestSpilledValuesRemoveTheirFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	s := newSpilledValues()
	for i := range 2 * spillChunk {
		if err := s.add(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.file == nil {
		t.Fatal("no file after two chunks")
	}
	name := s.file.Name()
	s.close()
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", name, err)
	}
}
