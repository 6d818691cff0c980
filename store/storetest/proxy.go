package storetest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy passes TCP connections on to a server (a ClickHouse's native port) until it is told to
// stall: from then on, it passes the clients' bytes on and never the server's, as a ClickHouse
// that hangs (stopped, swapping) or a network that loses its answers looks to a client. What it
// holds it never passes on; it closes when its test ends.
type Proxy struct {
	Addr string // where clients connect, "127.0.0.1:port"

	target string
	ln     net.Listener
	done   chan struct{} // closed when the test ends

	mu      sync.Mutex
	stalled bool
	marker  []byte        // StallOn's
	asked   chan struct{} // closed once a client sent bytes while stalled
	conns   []net.Conn
}

// StartProxy starts a Proxy on loopback to target ("host:port"), closed when tb ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, done: make(chan struct{}), asked: make(chan struct{})}
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Stall stops passing the server's bytes to the clients, on the connections open and those to
// come.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
}

// StallOn stalls the proxy once a client sends marker (in one read: a short marker inside one
// request, such as a setting's name in a ClickHouse query), whose request reaches the server.
func (p *Proxy) StallOn(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = []byte(marker)
}

// Asked is closed once a client has sent bytes since Stall, or StallOn's marker: a request
// whose answer will never reach it.
func (p *Proxy) Asked() <-chan struct{} { return p.asked }

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.pass(server, client, false)
		go p.pass(client, server, true)
	}
}

// pass copies from src to dst; fromClient tells the direction. While stalled, a server's bytes
// are held back (never written), and a client's mark Asked.
func (p *Proxy) pass(src, dst net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			marked := fromClient && len(p.marker) > 0 && bytes.Contains(buf[:n], p.marker)
			if marked { // passed on, never answered
				p.stalled, p.marker = true, nil
			}
			if (stalled || marked) && fromClient {
				select {
				case <-p.asked:
				default:
					close(p.asked)
				}
			}
			p.mu.Unlock()
			if stalled && !fromClient {
				<-p.done
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tcp, ok := dst.(*net.TCPConn); ok {
					tcp.CloseWrite()
				}
			}
			return
		}
	}
}

func (p *Proxy) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
