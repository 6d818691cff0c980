package storetest

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestChdbOutlivesBadClients sends the chdb engine's native port what broken or hostile clients
// send, each through chdbserver's relay as the tests' clients connect, and checks after each, once
// the engine has closed the connection, that it still answers. Before chdbserver gave the engine a terminal, a Hello cut short killed
// it (ClickHouse issue #115666).
func TestChdbOutlivesBadClients(t *testing.T) {
	s, err := StartEngine(Chdb, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	hello := nativeHello("waymark-test", 54470)
	for _, c := range []struct {
		name  string
		send  []byte
		read  bool // read the server's answer before closing
		reset bool // close with a TCP reset
	}{
		{name: "unknown packet", send: []byte("\x05garbage")},
		{name: "Hello cut short", send: hello[:7]},
		{name: "Hello cut short, reset", send: hello[:7], reset: true},
		{name: "Hello, then gone before the addendum", send: hello, read: true},
		{name: "Hello, then reset before the addendum", send: hello, read: true, reset: true},
		{name: "Hello, reset with the answer unread", send: hello, reset: true},
		{name: "HTTP on the native port", send: []byte("GET / HTTP/1.0\r\n\r\n"), read: true},
	} {
		ok := t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			if c.read {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = conn.Read(make([]byte, 64<<10))
			}
			if c.reset {
				_ = conn.(*net.TCPConn).SetLinger(0)
			}
			conn.Close()
			// The engine is done with the connection once it counts no native one (the HTTP
			// queries do not count); a process it killed would not answer here.
			for httpQuery(t, s, "SELECT value FROM system.metrics WHERE metric = 'TCPConnection'") != "0" {
				time.Sleep(20 * time.Millisecond)
			}
			if got := httpQuery(t, s, "SELECT 41 + 1"); got != "42" {
				t.Fatalf("after the bad client the engine answered %q, want 42", got)
			}
		})
		if !ok {
			break // the later clients would only find the engine gone
		}
	}
}

// nativeHello is a native-protocol Hello packet: type 0, client name, version 1.0, revision,
// database, user, empty password.
func nativeHello(client string, revision uint64) []byte {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	b := binary.AppendUvarint(nil, 0)
	b = str(b, client)
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, revision)
	for _, s := range []string{"default", "default", ""} {
		b = str(b, s)
	}
	return b
}

// httpQuery runs query over the server's HTTP interface and returns its answer, trimmed; it
// fails the test, with the server's log when it has exited, when there is none.
func httpQuery(t *testing.T, s *Server, query string) string {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + s.HTTPAddr + "/?query=" + url.QueryEscape(query))
	if err != nil {
		if died, why := s.Exited(); died {
			t.Fatalf("%s: %v\n%s", query, err, why)
		}
		t.Fatalf("%s: %v", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s %v", query, resp.StatusCode, body, err)
	}
	return strings.TrimSpace(string(body))
}
