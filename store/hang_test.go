package store_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// hangGuard is how long these tests wait for what should come at once before they call it a
// hang: far less than the limits they set (a half-hour query timeout, a ten-minute dial timeout),
// far more than a loaded machine needs.
const hangGuard = 2 * time.Minute

// TestQueryStopsWhenClickHouseHangs: a query whose ClickHouse stops answering mid-query ends
// when its context is cancelled (a stopped CLI, a client gone), not when ClickHouse answers again
// (tester 27's F3: a CLI query stayed up 55 minutes after SIGINT, its read waiting on a stopped
// server).
func TestQueryStopsWhenClickHouseHangs(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	proxy := storetest.StartProxy(t, server.Addr)
	db := testDatabase(t)
	st := openStoreWith(t, func(c *store.Config) { c.Addr, c.Database = proxy.Addr, db })
	proxy.Stall()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jm := defaultMap(t)
	errc := make(chan error, 1)
	go func() {
		_, err := st.Sessions(ctx, jm, store.SessionsQuery{})
		errc <- err
	}()
	select {
	case <-proxy.Asked():
	case <-time.After(hangGuard):
		t.Fatal("the query never reached ClickHouse")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a query stopped while ClickHouse hangs: %v, want it stopped (context canceled)", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("the query did not stop while ClickHouse hangs")
	}
}

// TestQueryTimeoutBoundsGettingAConnection: a query's time limit bounds getting a new connection
// too, whose hello a hanging ClickHouse never answers, not only the query once connected (tester
// 27's F2: with --query-timeout 500ms the answer came after the 5 s dial timeout; tester 28's F1:
// so did a funnel, asking for the server's version first). Two queries run at once so that the
// second dials, then a funnel; the dial timeout is set far past the guard.
func TestQueryTimeoutBoundsGettingAConnection(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	proxy := storetest.StartProxy(t, server.Addr)
	db := testDatabase(t)
	st := openStoreWith(t, func(c *store.Config) {
		c.Addr, c.Database, c.DialTimeout, c.QueryTimeout = proxy.Addr, db, 10*time.Minute, time.Second
	})
	proxy.Stall()

	jm := defaultMap(t)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := st.Sessions(context.Background(), jm, store.SessionsQuery{})
			errc <- err
		}()
	}
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, store.ErrQueryLimit) {
				t.Errorf("a query while ClickHouse hangs: %v, want it over its limit", err)
			}
		case <-time.After(hangGuard):
			t.Fatal("a query outlived its limit while ClickHouse hangs")
		}
	}

	// Both connections are gone (closed on the error, or never made): a funnel now asks for
	// the server's version (whether it may have the UDF), which dials, before its own queries.
	done := make(chan error, 1)
	go func() {
		_, err := st.Funnel(context.Background(), defaultMap(t), store.FunnelQuery{Steps: []string{"awareness", "conversion"}, Window: time.Hour})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrQueryLimit) {
			t.Errorf("a funnel while ClickHouse hangs: %v, want it over its limit", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("a funnel outlived its limit while ClickHouse hangs")
	}

	// Open's ping follows its context the same way.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() {
		st, err := store.Open(ctx, store.Config{Addr: proxy.Addr, Database: db, DialTimeout: 10 * time.Minute}, slog.New(slog.DiscardHandler), nil)
		if err == nil {
			st.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		var ce *store.ConnectError
		if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Open while ClickHouse hangs: %v, want a ConnectError of its context's deadline (not the cut connection's timeout: tester 28's F5)", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Open outlived its context while ClickHouse hangs")
	}
}
