package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse keeps waymark_funnel's processes in a pool of pool_size (executable_pool,
// deploy/clickhouse/waymark_funnel_function.xml). A query that fails over its memory limit just
// after it took a process from the pool, before the process is handed to the query's reading
// (ClickHouse allocates the pipes' buffers there, about 4 MiB), loses the pool that slot for good:
// ShellCommandSourceCoordinator::createPipe drops what it borrowed without returning it (26.7, and
// the ClickHouse source of 2026-12). Once every slot is lost, each query calling the function
// waits for a process that never comes, 10 s per second of max_command_execution_time,
// past max_execution_time and KILL QUERY (2026-12-07: four funnels failing over a limit of 24 MiB
// left a server whose in-engine queries all hung, until it restarted; tester 56's F2). SYSTEM
// RELOAD FUNCTION makes a new pool; queries holding processes of the old one finish with them.
//
// So after a matching in ClickHouse fails in a way that can lose a slot, or that a lost pool
// causes, or is given up (renewsFunnelPool), the store reloads the function (renewFunnelPool),
// and the next matching in ClickHouse waits for the reload (awaitFunnelPool). A reload costs the
// server a few milliseconds and the function new processes (about 30 ms each) as queries need
// them; the old pool's processes end as their queries do. It needs the SYSTEM RELOAD FUNCTION
// privilege (docs/udf.md); refused, it is logged and counted, and the queries go on with the
// pool as it is.

// funnelPoolRenewal is the reload of waymark_funnel in flight, if any.
type funnelPoolRenewal struct {
	mu   sync.Mutex
	done chan struct{} // closed when the reload in flight ends; nil when none is
	wg   sync.WaitGroup
	// closing ends a reload in flight when the store closes (stop): a CLI stopped by Ctrl-C
	// while ClickHouse hangs must not wait renewalTimeout for it.
	closing context.Context
	stop    context.CancelFunc
	timeout time.Duration // of one reload: renewalTimeout
}

// newFunnelPoolRenewal returns a funnelPoolRenewal with no reload in flight.
func newFunnelPoolRenewal() *funnelPoolRenewal {
	r := &funnelPoolRenewal{timeout: renewalTimeout}
	r.closing, r.stop = context.WithCancel(context.Background())
	return r
}

// close ends a reload in flight and waits for it; no reload starts after.
func (r *funnelPoolRenewal) close() {
	r.mu.Lock()
	r.stop()
	r.mu.Unlock()
	r.wg.Wait()
}

// renewalTimeout bounds one reload of waymark_funnel (the server reads the function's file
// again: milliseconds).
const renewalTimeout = 30 * time.Second

// renewsFunnelPool reports whether a matching in ClickHouse that failed with err may have lost
// the pool of waymark_funnel a slot, or failed because it had none left: the query's memory limit
// (MEMORY_LIMIT_EXCEEDED, 241, on its own or inside the function's failure, 754), a timeout
// (TIMEOUT_EXCEEDED, 159: "Could not get process from pool" among them), the query's own
// deadline, or the query given up, by its caller (a client gone, a CLI's Ctrl-C) or on the
// server (QUERY_WAS_CANCELLED, 394: KILL QUERY): a query waiting for a process of a lost pool
// waits until one of these ends it, and those are what people do to a query that hangs; or a
// process of the pool killed (CHILD_WAS_NOT_EXITED_NORMALLY inside 754: udfProcessKilled).
func renewsFunnelPool(ctx context.Context, err error) bool {
	var ex *clickhouse.Exception
	switch {
	case err == nil:
		return false
	case errors.As(err, &ex):
		return ex.Code == 241 || ex.Code == 159 || ex.Code == 394 || udfOverMemory(ex) || udfTimedOut(ex) || udfProcessKilled(ex)
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil || timedOutAtDeadline(ctx, err)
}

// udfTimedOut reports whether ex is waymark_funnel's failure (UDF_EXECUTION_FAILED, 754) for a
// timeout (TIMEOUT_EXCEEDED): no process came from its pool in time, or a pipe's timeout passed.
func udfTimedOut(ex *clickhouse.Exception) bool {
	return ex.Code == 754 && strings.Contains(ex.Message, "TIMEOUT_EXCEEDED")
}

// renewFunnelPool starts a reload of waymark_funnel after a matching in ClickHouse failed with
// cause, unless one is in flight; it does not wait for it (awaitFunnelPool does).
func (s *Store) renewFunnelPool(cause error) {
	r := s.poolRenewal
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil || r.closing.Err() != nil {
		return
	}
	done := make(chan struct{})
	r.done = done
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.closing, r.timeout)
		defer cancel()
		start := time.Now()
		err := s.conn.Exec(ctx, "SYSTEM RELOAD FUNCTION "+FunnelUDFName)
		after := exceptionLine(cause.Error())
		switch {
		case r.closing.Err() != nil: // the store closed: neither a reload nor a failure to report
		case err != nil:
			s.metrics.poolRenewals.WithLabelValues("failed").Inc()
			s.log.Warn("could not reload "+FunnelUDFName+" after a query matching in ClickHouse failed or was given up: "+
				"if such queries now fail with \"Could not get process from pool\" or over their time limit, grant the Waymark user SYSTEM RELOAD FUNCTION or restart ClickHouse (docs/udf.md)",
				"after", after, "error", err)
		default:
			s.metrics.poolRenewals.WithLabelValues("reloaded").Inc()
			s.log.Info("reloaded "+FunnelUDFName+" for a new pool of processes, after a query matching in ClickHouse failed or was given up (docs/udf.md)",
				"after", after, "duration", time.Since(start))
		}
		r.mu.Lock()
		r.done = nil
		r.mu.Unlock()
		close(done)
	}()
}

// awaitFunnelPool waits for a reload of waymark_funnel in flight, or for ctx to end (ctx's
// error then).
func (s *Store) awaitFunnelPool(ctx context.Context) error {
	r := s.poolRenewal
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
