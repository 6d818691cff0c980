package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// deadlineCtx is a context whose deadline has come while its timer has not yet marked it done
// (Err is nil): the moment between clickhouse-go's read timing out at the deadline it took from
// the context and the context's own timer firing.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// TestQueryErrorTellsTheLimitFromOutOfReach: a read that timed out at the query's deadline is the
// query's limit (ErrQueryLimit, answered "ran over its limit"), whether or not the context says
// so yet; the same timeout before the deadline, or a refused connection, is ClickHouse out of
// reach.
func TestQueryErrorTellsTheLimitFromOutOfReach(t *testing.T) {
	t.Parallel()
	readTimeout := fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
	refused := fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	now := time.Now()
	expired, cancel := context.WithDeadline(context.Background(), now.Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		limit bool
	}{
		{"read timed out, deadline passed, context not yet done", deadlineCtx{context.Background(), now.Add(-time.Millisecond)}, readTimeout, true},
		{"read timed out, context done", expired, readTimeout, true},
		{"read timed out before the deadline", deadlineCtx{context.Background(), now.Add(time.Hour)}, readTimeout, false},
		{"read timed out, no deadline", context.Background(), readTimeout, false},
		{"refused, deadline passed, context not yet done", deadlineCtx{context.Background(), now.Add(-time.Millisecond)}, refused, false},
		// ClickHouse 26.7's words when the query's memory ran out inside waymark_funnel (tester 56's F2)
		{"the memory limit inside the UDF", context.Background(), fmt.Errorf("match in clickhouse: %w", &clickhouse.Exception{Code: 754, Name: "DB::Exception",
			Message: "User defined function 'waymark_funnel' failed: Code: 241. DB::Exception: Query memory limit exceeded: would use 33.38 MiB (MEMORY_LIMIT_EXCEEDED)\n0. DB::Exception::Exception(…)"}), true},
		// and when no process of the function's pool came in time (store/udfpool.go)
		{"no process from the UDF's pool", context.Background(), fmt.Errorf("match in clickhouse: %w", poolTimeout), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{cfg: Config{QueryTimeout: 50 * time.Millisecond}}
			got := s.queryError("funnel", tc.ctx, tc.err)
			if errors.Is(got, ErrQueryLimit) != tc.limit {
				t.Errorf("queryError = %v; ErrQueryLimit: %v, want %v", got, !tc.limit, tc.limit)
			}
			if strings.Contains(got.Error(), "\n") || strings.Contains(got.Error(), "Stack trace") {
				t.Errorf("queryError = %q: more than a line, or ClickHouse's stack trace", got)
			}
			if !tc.limit && !Unreachable(got) {
				t.Errorf("queryError = %v: no longer ClickHouse out of reach", got)
			}
		})
	}
}

// poolTimeout is ClickHouse 26.7's failure of a query that waited for a process of
// waymark_funnel's pool until max_command_execution_time's wait ran out.
var poolTimeout = &clickhouse.Exception{Code: 754, Name: "DB::Exception",
	Message: "User defined function 'waymark_funnel' failed. Command: 'waymark', Arguments: [\"udf-funnel\"]. Original error: Code: 159. DB::Exception: Could not get process from pool, max command execution timeout exceeded 6 seconds. (TIMEOUT_EXCEEDED) Stack trace (when copying this message, always include the lines below):\n\n0. DB::Exception::Exception(…)"}

// udfKilled is ClickHouse 26.7's failure of a query whose waymark_funnel process was killed
// (kill -9 of the process, as the kernel's out-of-memory killer sends).
var udfKilled = &clickhouse.Exception{Code: 754, Name: "DB::Exception",
	Message: "User defined function 'waymark_funnel' failed. Command: 'waymark', Arguments: [\"udf-funnel\"]. Original error: Code: 302. DB::Exception: Child process was terminated by signal 9. (CHILD_WAS_NOT_EXITED_NORMALLY), Stack trace (when copying this message, always include the lines below):\n\n0. DB::Exception::Exception(…)"}

// TestWhatRenewsTheFunnelPool: the failures of a matching in ClickHouse after which the store
// reloads waymark_funnel are those that can lose its pool a process (the memory limit, reached
// anywhere in the query), that an empty pool causes (a timeout: ClickHouse's, or the query's own
// deadline) or that end a query waiting on one (its caller's stop, KILL QUERY); a query failing
// for another reason does not.
func TestWhatRenewsTheFunnelPool(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	bg := context.Background()
	ex := func(code int32, msg string) error {
		return fmt.Errorf("match in clickhouse: %w", &clickhouse.Exception{Code: code, Name: "DB::Exception", Message: msg})
	}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		renew bool
	}{
		{"memory limit", bg, ex(241, "Query memory limit exceeded: would use 4.15 MiB"), true},
		{"memory limit inside the UDF", bg, ex(754, "User defined function 'waymark_funnel' failed. Original error: Code: 241. (MEMORY_LIMIT_EXCEEDED)"), true},
		{"no process from the pool", bg, fmt.Errorf("match in clickhouse: %w", poolTimeout), true},
		{"max_execution_time", bg, ex(159, "Timeout exceeded: elapsed 60 seconds"), true},
		{"the query's deadline", expired, fmt.Errorf("read: %w", context.DeadlineExceeded), true},
		{"stopped by its caller", stopped, fmt.Errorf("read: %w", context.Canceled), true},
		{"KILL QUERY", bg, ex(394, "Query was cancelled."), true},
		{"a process of the pool killed", bg, fmt.Errorf("match in clickhouse: %w", udfKilled), true},
		{"no such function", bg, ex(46, "Unknown function waymark_funnel"), false},
		{"the UDF's own error", bg, ex(754, "User defined function 'waymark_funnel' failed: spec version 20, this binary speaks 21"), false},
		{"out of reach", bg, fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), false},
		{"no error", bg, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renewsFunnelPool(tc.ctx, tc.err); got != tc.renew {
				t.Errorf("renewsFunnelPool(%v) = %v, want %v", tc.err, got, tc.renew)
			}
		})
	}
}

// TestQueryErrorOfAKilledQuery: a query ClickHouse cancelled while Waymark had not stopped it
// (KILL QUERY) is ErrQueryCancelled, answered 503, where it was a 500; one Waymark stopped is
// its caller's stop.
func TestQueryErrorOfAKilledQuery(t *testing.T) {
	t.Parallel()
	s := &Store{cfg: Config{QueryTimeout: time.Minute}}
	killed := fmt.Errorf("match in clickhouse: %w", &clickhouse.Exception{Code: 394, Name: "DB::Exception", Message: "Query was cancelled."})
	if got := s.queryError("funnel", context.Background(), killed); !errors.Is(got, ErrQueryCancelled) {
		t.Errorf("killed on the server: %v, want ErrQueryCancelled", got)
	}
	// A process of waymark_funnel's pool killed under the query (tester 60's F2: a 500).
	lost := fmt.Errorf("match in clickhouse: %w", udfKilled)
	if got := s.queryError("funnel", context.Background(), lost); !errors.Is(got, ErrQueryCancelled) || strings.Contains(got.Error(), "Stack trace") {
		t.Errorf("a process of the UDF's pool killed: %v, want ErrQueryCancelled in a line", got)
	}
	stopped, stop := context.WithCancel(context.Background())
	stop()
	if got := s.queryError("funnel", stopped, killed); errors.Is(got, ErrQueryCancelled) || !errors.Is(got, context.Canceled) {
		t.Errorf("stopped by its caller: %v, want its caller's stop", got)
	}
}
