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
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{cfg: Config{QueryTimeout: 50 * time.Millisecond}}
			got := s.queryError("funnel", tc.ctx, tc.err)
			if errors.Is(got, ErrQueryLimit) != tc.limit {
				t.Errorf("queryError = %v; ErrQueryLimit: %v, want %v", got, !tc.limit, tc.limit)
			}
			if strings.Contains(got.Error(), "\n") {
				t.Errorf("queryError = %q: more than a line", got)
			}
			if !tc.limit && !Unreachable(got) {
				t.Errorf("queryError = %v: no longer ClickHouse out of reach", got)
			}
		})
	}
}
