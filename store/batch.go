package store

import (
	"cmp"
	"context"
	"errors"
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
// all; and since that read is one ClickHouse query per pass, Config.QueryMaxMemory bounds all of
// it: each query of a read that ran over it is asked again alone (see below). Names not in
// QueryNames fail as Query fails them. The caller bounds len(qs) (MaxBatchQueries).
func (s *Store) QueryBatch(ctx context.Context, jm *sessionize.Map, qs []BatchQuery) ([]BatchAnswer, error) {
	if err := s.takeSlot("batch"); err != nil {
		s.metrics.queryErrors.WithLabelValues("batch").Inc()
		return nil, err
	}
	defer func() { <-s.slots }()
	share := &scanShare{store: s, running: len(qs)}
	answers := make([]BatchAnswer, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() { answers[i] = s.batchQuery(ctx, share, jm, q) })
	}
	wg.Wait()
	// A shared read is one ClickHouse query a pass, under one QueryMaxMemory, that holds every
	// query's conditions and attributes: over it, each query read in it fails, those that alone
	// fit too. Each query that ran over the memory limit is asked again alone, one after another,
	// in the batch's slot, so that it answers as it would alone (tester 60's F1: a funnel by
	// sessions over the limit took the journey page's stages with it).
	if len(qs) > 1 {
		for i, q := range qs {
			if errors.Is(answers[i].Err, errOverMemory) {
				answers[i] = s.batchQuery(ctx, &scanShare{store: s, running: 1}, jm, q)
			}
		}
	}
	return answers, nil
}

// batchQuery answers q, a query of a batch reading through share.
func (s *Store) batchQuery(ctx context.Context, share *scanShare, jm *sessionize.Map, q BatchQuery) (a BatchAnswer) {
	defer share.leave()
	defer func() {
		// The queries run apart from the caller's goroutine, where a panic would end the
		// process rather than the request (net/http recovers a handler's).
		if p := recover(); p != nil {
			s.log.Error("query panicked", "query", q.Name, "panic", p, "stack", string(debug.Stack()))
			a.Err = fmt.Errorf("%s: panic: %v", q.Name, p)
		}
	}()
	a.Result, a.Err = s.Query(context.WithValue(ctx, scanShareKey{}, share), jm, q.Name, q.Params)
	return a
}

// scanShareKey is the context key of a batch's scanShare.
type scanShareKey struct{}

// shareOf returns the scanShare of the batch ctx's query belongs to; nil outside a batch.
func shareOf(ctx context.Context) *scanShare {
	sh, _ := ctx.Value(scanShareKey{}).(*scanShare)
	return sh
}

// scanShare lets the queries of a batch share their reads. A query's scan (or its matching in
// ClickHouse) waits until every query of the batch still running waits for one too; then as many
// of the waiting matchings in ClickHouse as their conditions fit one 64-bit mask are read
// together (Store.matchTogether), or, when none waits, as many of the waiting scans
// (scanTogether). The others wait for those queries to end and are read next: a batch reads one
// scan at a time, as one query does.
type scanShare struct {
	store   *Store
	mu      sync.Mutex
	running int            // queries of the batch that have not ended
	waiting []*sharedScan  // scans asked for and not begun
	matches []*engineMatch // matchings in ClickHouse asked for and not begun
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
	return cmp.Or(await(sh, ctx, &sh.waiting, w, w.done, "scan events"), w.reader.err)
}

// match matches m (of the query of ctx) in ClickHouse together with the batch's other matchings
// there, and returns as Store.matchInClickHouse does.
func (sh *scanShare) match(ctx context.Context, m *engineMatch) error {
	m.ctx, m.done = ctx, make(chan error, 1)
	return cmp.Or(await(sh, ctx, &sh.matches, m, m.done, "match in clickhouse"), m.err)
}

// await adds w to the reads waiting in list and waits for its read to end, returning the read's
// own error (done's). When ctx ends first, a read not begun is taken out of list (the others go
// on once this query ends) and ctx's error returned, after what; a read begun drops w's query at
// its next person and is waited for.
func await[T comparable](sh *scanShare, ctx context.Context, list *[]T, w T, done <-chan error, what string) error {
	sh.mu.Lock()
	*list = append(*list, w)
	sh.startReady()
	sh.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sh.mu.Lock()
		i := slices.Index(*list, w)
		if i >= 0 {
			*list = slices.Delete(*list, i, i+1)
		}
		sh.mu.Unlock()
		if i >= 0 {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return <-done
	}
}

// leave says one query of the batch has ended.
func (sh *scanShare) leave() {
	sh.mu.Lock()
	sh.running--
	sh.startReady()
	sh.mu.Unlock()
}

// startReady starts the next read (takeReady). sh.mu is held.
func (sh *scanShare) startReady() {
	switch scans, matches := sh.takeReady(); {
	case matches != nil:
		go sh.matchTogether(matches)
	case scans != nil:
		go sh.read(scans)
	}
}

// takeReady takes the next read once every running query waits for one: the waiting matchings
// in ClickHouse first, else the waiting scans; as many of them as fit one mask (a condition
// several of them have counts once), in the order they were asked; nil and nil when nothing is
// to be read yet. sh.mu is held.
func (sh *scanShare) takeReady() (scans []*sharedScan, matches []*engineMatch) {
	if n := len(sh.waiting) + len(sh.matches); n == 0 || n < sh.running {
		return nil, nil
	}
	if len(sh.matches) > 0 {
		matches, sh.matches = fitOneMask(sh.matches, func(m *engineMatch) []predicate { return m.plan.scan.preds })
		return nil, matches
	}
	scans, sh.waiting = fitOneMask(sh.waiting, func(w *sharedScan) []predicate { return w.reader.scan.preds })
	return scans, nil
}

// fitOneMask splits waiting into the first of them (in order) whose conditions, each counted
// once (see combineScans), fit one 64-bit mask, and the rest; the first is always read.
func fitOneMask[T any](waiting []T, predsOf func(T) []predicate) (read, rest []T) {
	preds := map[string]bool{}
	for _, w := range waiting {
		var added []string
		for _, p := range predsOf(w) {
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
	return read, rest
}

// matchTogether matches ms in ClickHouse in one read, until all of their queries have stopped
// waiting (each one's context ends only its own part).
func (sh *scanShare) matchTogether(ms []*engineMatch) {
	queries := make([]context.Context, len(ms))
	for i, m := range ms {
		queries[i] = m.ctx
	}
	ctx, stop := sh.readContext(queries)
	defer stop()
	err := sh.recovered(func() error { return sh.store.matchTogether(ctx, ms) })
	for _, m := range ms {
		m.done <- err
	}
}

// read reads scans together, until all of their queries have stopped waiting (each one's context
// ends only its own part).
func (sh *scanShare) read(scans []*sharedScan) {
	readers := make([]*scanReader, len(scans))
	queries := make([]context.Context, len(scans))
	for i, w := range scans {
		readers[i], queries[i] = &w.reader, w.reader.ctx
	}
	ctx, stop := sh.readContext(queries)
	defer stop()
	err := sh.recovered(func() error { return sh.store.scanTogether(ctx, readers) })
	for _, w := range scans {
		w.done <- err
	}
}

// readContext is the context of a read for several queries of the batch, whose contexts are
// queries (at least one): it ends when every one of theirs has (a query whose context ends stops being read at
// the next person), and carries the first's settings. stop lets go of it.
func (sh *scanShare) readContext(queries []context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(queries[0]))
	var left atomic.Int32
	left.Store(int32(len(queries)))
	stops := make([]func() bool, len(queries))
	for i, q := range queries {
		stops[i] = context.AfterFunc(q, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// recovered runs read, with a panic in it (a query's matching runs there, apart from its
// query's goroutine) turned into its error.
func (sh *scanShare) recovered(read func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			sh.store.log.Error("scan panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("scan events: panic: %v", p)
		}
	}()
	return read()
}
