package store

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"runtime/debug"
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
// The batch takes one of Config.QueryConcurrency slots: when none is free it fails whole with
// ErrBusy and runs nothing. Its queries run at once in that slot, each within
// Config.QueryTimeout. Their scans wait for each other, and are read as one when every query
// still running waits for its scan (see scanShare), so a query may take as long as the read of
// all; and since that read is one ClickHouse query per pass, a limit it runs over
// (Config.QueryMaxMemory) fails every query of it. Names not in QueryNames fail as Query fails
// them. The caller bounds len(qs) (MaxBatchQueries).
func (s *Store) QueryBatch(ctx context.Context, jm *sessionize.Map, qs []BatchQuery) ([]BatchAnswer, error) {
	if err := s.takeSlot("batch"); err != nil {
		s.metrics.queryErrors.WithLabelValues("batch").Inc()
		return nil, err
	}
	defer func() { <-s.slots }()
	share := &scanShare{store: s, running: len(qs), engine: make(chan struct{}, 1)}
	ctx = context.WithValue(ctx, scanShareKey{}, share)
	answers := make([]BatchAnswer, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() {
			defer share.leave()
			defer func() {
				// The queries run apart from the caller's goroutine, where a panic would end the
				// process rather than the request (net/http recovers a handler's).
				if p := recover(); p != nil {
					s.log.Error("query panicked", "query", q.Name, "panic", p, "stack", string(debug.Stack()))
					answers[i].Err = fmt.Errorf("%s: panic: %v", q.Name, p)
				}
			}()
			answers[i].Result, answers[i].Err = s.Query(ctx, jm, q.Name, q.Params)
		})
	}
	wg.Wait()
	return answers, nil
}

// scanShareKey is the context key of a batch's scanShare.
type scanShareKey struct{}

// shareOf returns the scanShare of the batch ctx's query belongs to; nil outside a batch.
func shareOf(ctx context.Context) *scanShare {
	sh, _ := ctx.Value(scanShareKey{}).(*scanShare)
	return sh
}

// scanShare lets the queries of a batch share their scans. A query's scan waits until every
// query of the batch still running waits for one too; then as many of the waiting scans as their
// conditions fit one 64-bit mask are read together (scanTogether). The others wait for those
// queries to end and are read next: a batch reads one scan at a time, as one query does. A query
// that never scans (a query matched in ClickHouse) holds the others back until it ends.
type scanShare struct {
	store   *Store
	mu      sync.Mutex
	running int           // queries of the batch that have not ended
	waiting []*sharedScan // scans asked for and not begun
	// engine is held by a query of the batch matched in ClickHouse (matchInClickHouse), which
	// reads the events on its own: such queries read one after another. The shared reads never
	// overlap them, as they begin only once every running query waits for one.
	engine chan struct{}
}

// takeEngineTurn waits until no other query of the batch is being matched in ClickHouse, or ctx
// ends; release ends the turn.
func (sh *scanShare) takeEngineTurn(ctx context.Context) (release func(), err error) {
	select {
	case sh.engine <- struct{}{}:
		return func() { <-sh.engine }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the batch's other queries matched in clickhouse: %w", ctx.Err())
	}
}

// sharedScan is one query's scan in a batch.
type sharedScan struct {
	reader scanReader
	done   chan error // the read's own error (see scanTogether), once it ends; buffered
}

// scan reads r's scan together with the batch's other scans, and returns as Store.scan does.
func (sh *scanShare) scan(ctx context.Context, r scanReader) error {
	if n := len(r.scan.preds); n == 0 || n > 64 {
		return fmt.Errorf("scan: %d conditions, want 1 to 64", n) // as personRows says alone
	}
	w := &sharedScan{reader: r, done: make(chan error, 1)}
	w.reader.ctx = ctx
	sh.mu.Lock()
	sh.waiting = append(sh.waiting, w)
	ready := sh.takeReady()
	sh.mu.Unlock()
	if ready != nil {
		go sh.read(ready)
	}
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
	ready := sh.takeReady()
	sh.mu.Unlock()
	if ready != nil {
		go sh.read(ready)
	}
}

// takeReady takes the waiting scans to read next, once every running query waits for one: as
// many as fit one mask (a condition several of them have counts once), in the order they were
// asked; nil when none are to be read yet. sh.mu is held.
func (sh *scanShare) takeReady() []*sharedScan {
	if len(sh.waiting) == 0 || len(sh.waiting) < sh.running {
		return nil
	}
	var read, rest []*sharedScan
	preds := map[string]bool{} // the conditions of the read, each read once (see combineScans)
	for _, w := range sh.waiting {
		var added []string
		for _, p := range w.reader.scan.preds {
			if k := p.key(); !preds[k] && !slices.Contains(added, k) {
				added = append(added, k)
			}
		}
		if len(read) > 0 && len(preds)+len(added) > 64 {
			rest = append(rest, w)
			continue
		}
		read = append(read, w)
		for _, k := range added {
			preds[k] = true
		}
	}
	sh.waiting = rest
	return read
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
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil { // a reader's matching runs here, apart from its query
				sh.store.log.Error("scan panicked", "panic", p, "stack", string(debug.Stack()))
				err = fmt.Errorf("scan events: panic: %v", p)
			}
		}()
		return sh.store.scanTogether(ctx, readers)
	}()
	for _, w := range scans {
		w.done <- err
	}
}
