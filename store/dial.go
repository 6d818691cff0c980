package store

import (
	"context"
	"net"
	"sync"
	"time"
)

// dialer dials ClickHouse's native port for clickhouse-go (its Options.DialContext) so that a
// query's context bounds the whole of getting a connection, not only the TCP dial.
//
// clickhouse-go dials with the query's context (cut to the dial timeout), but then says hello
// to the server under a deadline of its own, the dial timeout from then on, and sees no context.
// A server that accepts connections and does not answer (stopped, overloaded, a host gone away
// behind a proxy) held a query of --query-timeout 500ms for the 5 s dial timeout, and a stopped
// query for as long. The connection returned here holds the deadlines the client sets during
// that hello to the context's deadline, and ends the hello at once when the context is done.
// Both stop with the hello: clickhouse-go clears its deadlines (sets a zero time) when it ends.
type dialer struct {
	net.Dialer
}

// DialContext dials addr ("host:port") over TCP; the connection's hello follows ctx.
func (d *dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := d.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn, nil
	}
	c := &helloConn{TCPConn: tcp, greeting: true}
	c.deadline, _ = ctx.Deadline()
	c.stop = context.AfterFunc(ctx, c.cut)
	return c, nil
}

// helloConn is a connection whose deadlines are held to its dial's context until its first
// cleared deadline, the end of clickhouse-go's hello. It is a TCP connection in every other way:
// clickhouse-go checks an idle connection through its file descriptor (syscall.Conn) before it
// lends it again, and found a connection the server had closed only so.
type helloConn struct {
	*net.TCPConn
	stop func() bool

	mu       sync.Mutex
	greeting bool      // the hello is not over
	deadline time.Time // the dial context's deadline (long past once it is done), zero for none
}

// cut ends a hello still under way, its context done: its reads and writes fail at once (a
// timeout), and so do those of any deadline it sets later.
func (c *helloConn) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.greeting {
		c.deadline = time.Unix(1, 0)
		c.TCPConn.SetDeadline(c.deadline)
	}
}

// held returns t, or the dial context's deadline during the hello when that comes first. A zero
// t (no deadline) ends the hello and is returned as it is.
func (c *helloConn) held(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.greeting:
	case t.IsZero():
		c.greeting = false
		c.stop()
	case !c.deadline.IsZero() && c.deadline.Before(t):
		return c.deadline
	}
	return t
}

func (c *helloConn) SetDeadline(t time.Time) error      { return c.TCPConn.SetDeadline(c.held(t)) }
func (c *helloConn) SetReadDeadline(t time.Time) error  { return c.TCPConn.SetReadDeadline(c.held(t)) }
func (c *helloConn) SetWriteDeadline(t time.Time) error { return c.TCPConn.SetWriteDeadline(c.held(t)) }
