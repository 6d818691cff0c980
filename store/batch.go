package store

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/waymark-dev/waymark/sessionize"
)

// BatchQuery is one query of a batch: a name of QueryNames and its text parameters, as Query
// takes them.
type BatchQuery struct {
	Name   string
	Params url.Values
}

// BatchAnswer is what Query answers for one query of a batch: its result, or its error.
type BatchAnswer struct {
	Result any
	Err    error
}

// MaxBatchQueries is the most queries one batch may ask.
const MaxBatchQueries = 8

// QueryBatch answers several journey queries asked together, each exactly as Query would, in the
// order of qs, and reads the events once for all of them where it can. The journey page asks its
// stages, paths and funnel together, over one date range; alone, each would have ClickHouse
// group every person's events, which is most of a query's time (docs/query-scale.md).
//
// The batch takes one of Config.QueryConcurrency slots (when none is free, every query fails
// with ErrBusy), and its queries run at once in it, each within Config.QueryTimeout. Their scans
// wait for each other, and are read as one when every query still running waits for its scan
// (see scanShare), so the matching of all of them runs on one core, as one query's does. Names
// not in QueryNames fail as Query fails them. The caller bounds len(qs) (MaxBatchQueries).
func (s *Store) QueryBatch(ctx context.Context, jm *sessionize.Map, qs []BatchQuery) []BatchAnswer {
	answers := make([]BatchAnswer, len(qs))
	if err := s.takeSlot("batch"); err != nil {
		for i := range answers {
			answers[i].Err = err
		}
		return answers
	}
	defer func() { <-s.slots }()
	share := &scanShare{store: s, running: len(qs)}
	ctx = context.WithValue(ctx, scanShareKey{}, share)
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() {
			defer share.leave()
			answers[i].Result, answers[i].Err = s.Query(ctx, jm, q.Name, q.Params)
		})
	}
	wg.Wait()
	return answers
}

// scanShareKey is the context key of a batch's scanShare.
type scanShareKey struct{}

// shareOf returns the scanShare of the batch ctx's query belongs to; nil outside a batch.
func shareOf(ctx context.Context) *scanShare {
	sh, _ := ctx.Value(scanShareKey{}).(*scanShare)
	return sh
}

// scanShare lets the queries of a batch share their scans. A query's scan waits until every
// query of the batch still running waits for one too; then the waiting scans are read together
// (scanTogether), as many in each read as their conditions fit one 64-bit mask, and each read
// begins at once. A query that never scans (sessions, a funnel matched in ClickHouse) holds the
// others back until it ends.
type scanShare struct {
	store   *Store
	mu      sync.Mutex
	running int           // queries of the batch that have not ended
	waiting []*sharedScan // scans asked for and not begun
}

// sharedScan is one query's scan in a batch.
type sharedScan struct {
	reader scanReader
	done   chan error // the read's own error (see scanTogether), once it ends; buffered
}

// scan reads r's scan together with the batch's other scans, and returns as Store.scan does.
func (sh *scanShare) scan(ctx context.Context, r scanReader) error {
	w := &sharedScan{reader: r, done: make(chan error, 1)}
	w.reader.ctx = ctx
	sh.mu.Lock()
	sh.waiting = append(sh.waiting, w)
	sh.startReady()
	sh.mu.Unlock()
	select {
	case err := <-w.done:
		return cmp.Or(err, w.reader.err)
	case <-ctx.Done():
		sh.mu.Lock()
		i := slices.Index(sh.waiting, w)
		if i >= 0 {
			sh.waiting = slices.Delete(sh.waiting, i, i+1) // never begun: the others go on when this query ends
		}
		sh.mu.Unlock()
		if i >= 0 {
			return fmt.Errorf("scan events: %w", ctx.Err())
		}
		err := <-w.done // begun: the read drops this reader and ends when the others are done
		return cmp.Or(err, w.reader.err)
	}
}

// leave says one query of the batch has ended.
func (sh *scanShare) leave() {
	sh.mu.Lock()
	sh.running--
	sh.startReady()
	sh.mu.Unlock()
}

// startReady begins the waiting scans once every running query waits for one. sh.mu is held.
func (sh *scanShare) startReady() {
	if len(sh.waiting) == 0 || len(sh.waiting) < sh.running {
		return
	}
	for len(sh.waiting) > 0 {
		var read, rest []*sharedScan
		preds := 0
		for _, w := range sh.waiting {
			if n := len(w.reader.scan.preds); len(read) == 0 || preds+n <= 64 {
				read, preds = append(read, w), preds+n
			} else {
				rest = append(rest, w)
			}
		}
		sh.waiting = rest
		go sh.read(read)
	}
}

// read reads scans together, until all of their queries have stopped waiting (each one's context
// ends only its own part).
func (sh *scanShare) read(scans []*sharedScan) {
	readers := make([]*scanReader, len(scans))
	for i, w := range scans {
		readers[i] = &w.reader
	}
	// The read's context ends when every query's has (a query whose context ends stops reading at
	// the next person); it carries the first's settings.
	ctx, cancel := context.WithCancel(context.WithoutCancel(scans[0].reader.ctx))
	defer cancel()
	var left atomic.Int32
	left.Store(int32(len(scans)))
	for _, w := range scans {
		stop := context.AfterFunc(w.reader.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	err := sh.store.scanTogether(ctx, readers)
	for _, w := range scans {
		w.done <- err
	}
}
