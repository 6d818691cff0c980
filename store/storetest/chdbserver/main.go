// Command chdbserver serves chDB's ClickHouse engine (libchdb.so, ClickHouse 26.7 as a library) on
// loopback for Waymark's tests, so the same tests that run against Debian's clickhouse-server 18.16
// run against current ClickHouse. It is a test fixture, not a production server.
//
// chDB has no server entry point. chdbserver loads the library at run time (so `go build ./...` never
// needs it), calls chdb_query_cmdline with the server config and a query that starts the native and
// HTTP listeners and then keeps running, and relays the ports the tests use to the engine's own.
//
// The engine is clickhouse-local's, which terminates the whole process when an exception escapes
// a connection's handler (a malformed packet, a client gone in the middle of its handshake:
// ClickHouse issue #115666, fixed after 26.7 by pull request #115715), unless its standard input is
// a terminal and it runs --interactive. So chdbserver gives it a pseudo-terminal as standard input
// and --interactive: it runs the serving query first, which never ends, and so never prompts. When
// a listener cannot start (its port taken), the engine then waits at its prompt rather than
// exiting; the harness sees no answer on /ping and stops it.
//
// The relay came first, against one such exception (a native-protocol connection that finished its
// handshake ending with a TCP reset: a client killed with kill -9), and stays as a second guard
// for exceptions thrown where no handler catches them. It turns every end of a client connection
// into a graceful close of its engine connection (FIN after everything the client sent, then it
// reads the engine's side until the engine closes it) and dials the engine only once the client
// has sent something, so a connection that sends nothing never reaches it.
//
// Usage:
//
//	chdbserver --lib libchdb.so --config config.xml --tcp 127.0.0.1:P --engine-tcp 127.0.0.1:Q \
//	    --http 127.0.0.1:R --engine-http 127.0.0.1:S
//
// The config's tcp_port and http_port must be Q's and S's ports. chdbserver runs until it is
// killed; it exits with status 1 and the engine's message when the engine stops on its own.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"unsafe"

	"github.com/creack/pty"
	"github.com/ebitengine/purego"
)

// serveQuery starts the engine's listeners and then blocks: sleepEachRow over a huge range, with
// the per-block sleep limit and the execution time limit lifted.
const serveQuery = `SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP;
SELECT sleepEachRow(3) FROM numbers(1000000000000)
SETTINGS function_sleep_max_microseconds_per_block = 0, max_block_size = 1, max_execution_time = 0`

func main() {
	lib := flag.String("lib", "", "path of libchdb.so")
	config := flag.String("config", "", "ClickHouse server config file")
	tcp := flag.String("tcp", "", "address the tests connect to with the native protocol")
	engineTCP := flag.String("engine-tcp", "", "the engine's native protocol address (the config's tcp_port)")
	httpAddr := flag.String("http", "", "address the tests connect to over HTTP")
	engineHTTP := flag.String("engine-http", "", "the engine's HTTP address (the config's http_port)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for name, v := range map[string]string{"lib": *lib, "config": *config, "tcp": *tcp, "engine-tcp": *engineTCP, "http": *httpAddr, "engine-http": *engineHTTP} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "chdbserver: --%s is required\n", name)
			os.Exit(2)
		}
	}
	for _, r := range [][2]string{{*tcp, *engineTCP}, {*httpAddr, *engineHTTP}} {
		l, err := net.Listen("tcp", r[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "chdbserver: listen on %s: %v\n", r[0], err)
			os.Exit(1)
		}
		go relay(l, r[1], log)
	}
	if err := terminalStdin(log); err != nil {
		fmt.Fprintln(os.Stderr, "chdbserver:", err)
		os.Exit(1)
	}
	if err := runEngine(*lib, *config); err != nil {
		fmt.Fprintln(os.Stderr, "chdbserver:", err)
		os.Exit(1)
	}
}

// runEngine loads libchdb and runs the engine with the server config; it returns only when the
// engine stops.
func runEngine(lib, config string) error {
	handle, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("load %s: %w", lib, err)
	}
	var queryCmdline func(argc int32, argv **byte) uintptr
	var resultError func(result uintptr) *byte
	purego.RegisterLibFunc(&queryCmdline, handle, "chdb_query_cmdline")
	purego.RegisterLibFunc(&resultError, handle, "chdb_result_error")
	// The engine logs at trace level whatever the config's logger says (it is clickhouse-local's):
	// about twenty lines a query into the log and onto standard output, about 8% of its CPU in
	// the tests, and a third of what migrating a database costs it. The error log, whose tail a
	// failing test prints, keeps its warnings and errors.
	args := []string{"clickhouse", "--config-file=" + config, "--multiquery", "--query=" + serveQuery, "--interactive", "--progress=off", "--log-level=error"}
	argv := make([]*byte, len(args)+1) // NULL-terminated, as main's argv
	for i, a := range args {
		argv[i] = &append([]byte(a), 0)[0]
	}
	result := queryCmdline(int32(len(args)), &argv[0])
	if result == 0 {
		return errors.New("the engine stopped without a result")
	}
	if msg := resultError(result); msg != nil {
		return fmt.Errorf("the engine stopped: %s", cString(msg))
	}
	return errors.New("the engine stopped: its serving query ended")
}

// terminalStdin makes the process's standard input a pseudo-terminal. Nothing is typed on it;
// what the engine writes to it is read and dropped, so a write never blocks.
func terminalStdin(log *slog.Logger) error {
	master, tty, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	if err := syscall.Dup3(int(tty.Fd()), 0, 0); err != nil {
		return fmt.Errorf("make the pseudo-terminal standard input: %w", err)
	}
	if err := tty.Close(); err != nil {
		return fmt.Errorf("close the pseudo-terminal's copy: %w", err)
	}
	go func() {
		if _, err := io.Copy(io.Discard, master); err != nil {
			log.Warn("read the pseudo-terminal", "err", err)
		}
	}()
	return nil
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// relay accepts connections on l and relays each to the engine at upstream.
func relay(l net.Listener, upstream string, log *slog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Error("relay: accept", "addr", l.Addr(), "err", err)
			return
		}
		go relayConn(c.(*net.TCPConn), upstream, log)
	}
}

// relayConn copies between a client and a new engine connection. The engine connection is opened
// when the client's first bytes arrive and is always ended gracefully: whatever way the client's
// side ends (FIN, reset, error), the engine gets everything the client sent, then a FIN, and its
// answer is read to the end before the socket closes, so the engine never sees a reset.
func relayConn(client *net.TCPConn, upstream string, log *slog.Logger) {
	defer client.Close()
	first := make([]byte, 32<<10)
	n, err := client.Read(first)
	if n == 0 {
		return // the client sent nothing: the engine never hears of it
	}
	conn, derr := net.Dial("tcp", upstream)
	if derr != nil {
		log.Warn("relay: dial engine", "addr", upstream, "err", derr)
		return
	}
	engine := conn.(*net.TCPConn)
	defer engine.Close()
	toClient := make(chan struct{})
	go func() {
		defer close(toClient)
		if _, err := io.Copy(client, engine); err != nil {
			_, _ = io.Copy(io.Discard, engine) // the client is gone: read the engine's side to its end
		}
		_ = client.CloseWrite()
	}()
	if _, werr := engine.Write(first[:n]); werr == nil && err == nil {
		_, _ = io.Copy(engine, client)
	}
	_ = engine.CloseWrite()
	<-toClient
}
