package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
)

// spillChunk is how many values a spilledValues holds in memory (8 bytes each) before it writes
// them to its file.
const spillChunk = 1 << 16

// spilledValues collects non-negative integers (durations in milliseconds) for exact quantiles in
// bounded memory: it holds at most spillChunk of them, writing each full chunk to a temporary
// file (in os.TempDir, removed by close), 8 bytes a value. Its nth finds an order statistic by
// radix selection, 16 bits at a time, reading the values once per 16 bits of the largest (twice
// for durations under 2^32 ms, 49 days). A query that kept its values in a slice instead held
// 8 bytes a session and up to twice that while the slice grew: 200 MiB of the sessions query's
// 330 MiB at 10M events (9.2M sessions), and ten times that at 100M.
type spilledValues struct {
	chunk []uint64
	file  *os.File
	n     uint64 // values added
	max   uint64 // the largest added
	bytes []byte // a chunk's encoding, reused
}

func newSpilledValues() *spilledValues {
	return &spilledValues{chunk: make([]uint64, 0, spillChunk)}
}

// add appends v, writing the chunk to the file when it is full.
func (s *spilledValues) add(v uint64) error {
	if len(s.chunk) == cap(s.chunk) {
		if err := s.spill(); err != nil {
			return err
		}
	}
	s.chunk = append(s.chunk, v)
	s.n++
	s.max = max(s.max, v)
	return nil
}

func (s *spilledValues) spill() error {
	if s.file == nil {
		f, err := os.CreateTemp("", "waymark-values-*")
		if err != nil {
			return fmt.Errorf("spill values to a temporary file: %w", err)
		}
		s.file = f
	}
	s.bytes = s.bytes[:0]
	for _, v := range s.chunk {
		s.bytes = binary.LittleEndian.AppendUint64(s.bytes, v)
	}
	if _, err := s.file.Write(s.bytes); err != nil {
		return fmt.Errorf("spill values to %s: %w", s.file.Name(), err)
	}
	s.chunk = s.chunk[:0]
	return nil
}

// each calls fn with every value added, in no particular order.
func (s *spilledValues) each(fn func(uint64)) error {
	if s.file != nil {
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("read spilled values: %w", err)
		}
		r := bufio.NewReaderSize(s.file, 1<<16)
		var word [8]byte
		for {
			if _, err := io.ReadFull(r, word[:]); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("read spilled values from %s: %w", s.file.Name(), err)
			}
			fn(binary.LittleEndian.Uint64(word[:]))
		}
	}
	for _, v := range s.chunk {
		fn(v)
	}
	return nil
}

// nth gives, for each rank (0-based, each < the number of values), the value at that index of
// the values sorted ascending.
func (s *spilledValues) nth(ranks ...uint64) ([]uint64, error) {
	const digit = 16
	for _, r := range ranks {
		if r >= s.n {
			return nil, fmt.Errorf("rank %d of %d values", r, s.n)
		}
	}
	levels := max((bits.Len64(s.max)+digit-1)/digit, 1)
	prefix := make([]uint64, len(ranks)) // the digits of each answer found so far
	rest := append([]uint64(nil), ranks...)
	counts := make([][]uint64, len(ranks))
	for i := range counts {
		counts[i] = make([]uint64, 1<<digit)
	}
	for level := levels - 1; level >= 0; level-- {
		shift := uint(level * digit)
		for i := range counts {
			clear(counts[i])
		}
		// v>>above is 0 for every value on the top level (shifts of 64 or more give 0 in Go).
		above := shift + digit
		err := s.each(func(v uint64) {
			for i, p := range prefix {
				if v>>above == p>>above {
					counts[i][v>>shift&(1<<digit-1)]++
				}
			}
		})
		if err != nil {
			return nil, err
		}
		for i := range ranks {
			d := 0
			for ; rest[i] >= counts[i][d]; d++ {
				rest[i] -= counts[i][d]
			}
			prefix[i] |= uint64(d) << shift
		}
	}
	return prefix, nil
}

// close removes the file, if any.
func (s *spilledValues) close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}
