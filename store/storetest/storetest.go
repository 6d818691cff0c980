// Package storetest starts a real ClickHouse server for tests, on loopback, with its data in a
// temporary folder, configured from deploy/clickhouse/local-config.xml. Two engines can serve:
//
//   - debian: Debian's clickhouse-server 18.16 (the only server package on our machines);
//   - chdb: ClickHouse 26.7 from chDB's libchdb.so (npm package chdb@3.4.0), served by the
//     chdbserver launcher in this folder.
//
// The environment variable WAYMARK_TEST_CLICKHOUSE picks one (debian when unset); deploy/test.sh
// runs the ClickHouse-backed tests once with each.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EngineEnv is the environment variable that picks the engine: "debian" or "chdb".
const EngineEnv = "WAYMARK_TEST_CLICKHOUSE"

// PassesEnv lists the engines of the passes one run of the tests makes (deploy/test.sh sets it to
// its WAYMARK_TEST_CLICKHOUSE list, "debian chdb"). A test that compares the two engines needs only
// one of those passes: see ComparedInAnotherPass.
const PassesEnv = "WAYMARK_TEST_PASSES"

// ComparedInAnotherPass reports whether a test comparing the two engines, run on engine, repeats
// work another pass of the same run does: it does on the chdb engine when PassesEnv lists debian
// (the debian pass starts a chdb server beside its own and compares the same two).
func ComparedInAnotherPass(engine string) bool {
	return engine == Chdb && slices.Contains(strings.Fields(os.Getenv(PassesEnv)), Debian)
}

// FirstPassOnly skips tb in every pass of a run but the first (PassesEnv), for a test whose subject
// is not what the ClickHouse engine answers: the collector under load, a client library, the
// journey page in a browser, Prometheus's rules, consumers killed and rebalanced. Such a test
// stores through the engine but asserts nothing an engine could answer differently that the
// other passes' tests do not compare, so one pass is enough. Run on its own (PassesEnv unset or
// one engine), it runs.
func FirstPassOnly(tb testing.TB) {
	tb.Helper()
	if LaterPass() {
		tb.Skipf("its subject is not the ClickHouse engine: the %s pass of this run runs it", strings.Fields(os.Getenv(PassesEnv))[0])
	}
}

// LaterPass reports whether the tests run in a pass of a run other than its first (PassesEnv):
// there a test may leave out the parts whose subject is not the engine (an arrival path, a
// command line asked what the API was), as FirstPassOnly leaves out whole tests. Run on its own
// (PassesEnv unset or one engine), it is false.
func LaterPass() bool {
	passes := strings.Fields(os.Getenv(PassesEnv))
	engine, err := Engine()
	return err == nil && len(passes) > 1 && engine != passes[0]
}

// LibchdbEnv names a libchdb.so to use instead of the one deploy/install-chdb.sh installs.
const LibchdbEnv = "WAYMARK_TEST_LIBCHDB"

// Engines the harness can start.
const (
	Debian = "debian"
	Chdb   = "chdb"
)

// Engine returns the engine WAYMARK_TEST_CLICKHOUSE picks, or an error naming the variable.
func Engine() (string, error) {
	switch e := os.Getenv(EngineEnv); e {
	case "", Debian:
		return Debian, nil
	case Chdb:
		return Chdb, nil
	default:
		return "", fmt.Errorf("%s=%q: want %s or %s", EngineEnv, e, Debian, Chdb)
	}
}

// Server is a running ClickHouse server.
type Server struct {
	Engine   string // Debian or Chdb
	Addr     string // native protocol host:port
	HTTPAddr string // HTTP interface host:port
	Dir      string
	// FunnelUDF is set when the server has the waymark_funnel executable UDF (the chdb engine:
	// 18.16 has no executable UDFs).
	FunnelUDF bool
	argv      []string // the command that runs the server
	proc      *process
}

// process is one run of the server; exited is closed once it has exited, and err is then its
// exit status.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// repoRoot returns the repository's top folder.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ConfigTemplate returns the path of the config template in the repository.
func ConfigTemplate() string {
	return filepath.Join(repoRoot(), "deploy", "clickhouse", "local-config.xml")
}

// debianBinary returns the path of the clickhouse-server executable, or an error saying how to get it.
func debianBinary() (string, error) {
	for _, name := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("clickhouse-server not found: run deploy/test.sh, which installs Debian's clickhouse-server")
}

// Start starts a server of the engine WAYMARK_TEST_CLICKHOUSE picks, whose files live in dir, and
// waits until it answers.
func Start(dir string) (*Server, error) {
	engine, err := Engine()
	if err != nil {
		return nil, err
	}
	return StartEngine(engine, dir)
}

// StartEngine starts a server of the given engine (Debian or Chdb), whose files live in dir, and
// waits until it answers. Its ports are picked free just before it starts, so on a busy machine
// another process may take one first: a start that fails on a port in use is tried again on
// other ports, up to startAttempts times.
func StartEngine(engine, dir string) (*Server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return nil, fmt.Errorf("create clickhouse dir: %w", err)
	}
	confPath := filepath.Join(dir, "config.xml")
	// argv returns the command line of a server on the given ports (TCP, HTTP, and for the chdb
	// engine the two of the engine behind chdbserver's relay), after writing its config.
	var argv func(ports []int) ([]string, error)
	switch engine {
	case Debian:
		bin, err := debianBinary()
		if err != nil {
			return nil, err
		}
		if os.Getenv(QueryLoggingEnv) != "" {
			if err := writeQueryLogging(dir); err != nil {
				return nil, err
			}
		}
		argv = func(ports []int) ([]string, error) {
			return []string{bin, "--config-file=" + confPath}, writeConfig(confPath, dir, ports[0], ports[1])
		}
	case Chdb:
		lib, err := libchdb()
		if err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, "chdbserver")
		if err := InstallBinary(ChdbServerPkg, bin); err != nil {
			return nil, err
		}
		if err := installFunnelUDF(dir); err != nil {
			return nil, err
		}
		if err := writeStaticMemoryLimit(dir); err != nil {
			return nil, err
		}
		argv = func(ports []int) ([]string, error) {
			args := []string{bin, "--lib", lib, "--config", confPath, "--tcp", addr(ports[0]), "--http", addr(ports[1]),
				"--engine-tcp", addr(ports[2]), "--engine-http", addr(ports[3])}
			return args, writeConfig(confPath, dir, ports[2], ports[3])
		}
	default:
		return nil, fmt.Errorf("unknown clickhouse engine %q: want %s or %s", engine, Debian, Chdb)
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return nil, err
		}
		s := &Server{Engine: engine, Addr: addr(ports[0]), HTTPAddr: addr(ports[1]), Dir: dir, FunnelUDF: engine == Chdb}
		if s.argv, err = argv(ports); err != nil {
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == startAttempts || !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return nil, err
		}
		// The next attempt's log tail must not show this one's clash.
		for _, f := range []string{filepath.Join(dir, "log", "clickhouse-server.err.log"), s.stdoutLog()} {
			_ = os.Remove(f)
		}
	}
}

// startAttempts is how many times StartEngine tries to start a server whose port was taken.
const startAttempts = 5

// addr is the loopback address of port.
func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// writeStaticMemoryLimit writes config.d/memory.xml, which keeps the 26.7 engine's server-wide
// memory limit at its start-up cap (RAM × 0.9) rather than recomputing it from the host's
// MemAvailable and a resident size read from a cgroup (ClickHouse PR #104964; chDB read 3 MiB):
// on this test machine, shared by both engines' passes and their builds, the recomputed limit fell
// to about 100 MiB for minutes and the server refused every query, pings included (a CI failure
// of 2026-12-04). ClickHouse's own test configs turn the same two settings off; 18.16 has neither.
func writeStaticMemoryLimit(dir string) error {
	conf := `<?xml version="1.0"?>
<yandex>
    <memory_worker_use_cgroup>0</memory_worker_use_cgroup>
    <memory_worker_dynamic_hard_limit>0</memory_worker_dynamic_hard_limit>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.d", "memory.xml"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write the engine's memory config: %w", err)
	}
	return nil
}

// installFunnelUDF sets up the waymark_funnel executable UDF in dir before the server starts:
// config.d/udf.xml (merged into config.xml) points the server at dir's *_function.xml and at
// dir/user_scripts, which get deploy/clickhouse/waymark_funnel_function.xml and a waymark binary
// of this tree (InstallBinary).
func installFunnelUDF(dir string) error {
	scripts := filepath.Join(dir, "user_scripts")
	for _, d := range []string{filepath.Join(dir, "config.d"), scripts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("install waymark_funnel: %w", err)
		}
	}
	conf := `<?xml version="1.0"?>
<yandex>
    <user_defined_executable_functions_config>` + dir + `/*_function.xml</user_defined_executable_functions_config>
    <user_scripts_path>` + scripts + `/</user_scripts_path>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.d", "udf.xml"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("install waymark_funnel: %w", err)
	}
	fn, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "clickhouse", "waymark_funnel_function.xml"))
	if err != nil {
		return fmt.Errorf("install waymark_funnel: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "waymark_funnel_function.xml"), fn, 0o644); err != nil {
		return fmt.Errorf("install waymark_funnel: %w", err)
	}
	if err := InstallBinary(WaymarkPkg, filepath.Join(scripts, "waymark")); err != nil {
		return fmt.Errorf("install the waymark binary for waymark_funnel: %w", err)
	}
	return nil
}

// writeConfig writes the config template with the server's folder and ports filled in.
func writeConfig(path, dir string, tcpPort, httpPort int) error {
	tmpl, err := os.ReadFile(ConfigTemplate())
	if err != nil {
		return fmt.Errorf("read clickhouse config template: %w", err)
	}
	conf := strings.NewReplacer("__DIR__", dir, "__TCP_PORT__", strconv.Itoa(tcpPort), "__HTTP_PORT__", strconv.Itoa(httpPort)).Replace(string(tmpl))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write clickhouse config: %w", err)
	}
	return nil
}

// libchdb returns the path of libchdb.so: $WAYMARK_TEST_LIBCHDB, else the one deploy/install-chdb.sh
// installs into the user's cache folder, installing it first when it is missing.
func libchdb() (string, error) {
	if p := os.Getenv(LibchdbEnv); p != "" {
		return p, nil
	}
	script := filepath.Join(repoRoot(), "deploy", "install-chdb.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("install chDB with %s: %v\n%s", script, err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}

// start runs the server process and waits until it answers.
func (s *Server) start() error {
	out, err := os.OpenFile(s.stdoutLog(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create clickhouse log: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s clickhouse: %w", s.Engine, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.proc = p
	if err := s.waitReady(p, 60*time.Second); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// Restart starts a stopped server again, on the same ports with the same data. A port taken
// meanwhile (by another test's pick, which freePorts makes rare) is waited for, up to
// restartWait.
func (s *Server) Restart() error {
	s.Stop()
	deadline := time.Now().Add(restartWait)
	for {
		err := s.start()
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "address already in use") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// restartWait is how long Restart waits for its server's ports to be free again.
const restartWait = 30 * time.Second

// waitReady waits until the server answers /ping, and fails at once, with the end of its logs,
// when it exits first.
func (s *Server) waitReady(p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s clickhouse exited before it was ready: %v\n%s", s.Engine, p.err, s.LogTail(30))
		default:
		}
		resp, err := client.Get("http://" + s.HTTPAddr + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s clickhouse not ready on %s after %s\n%s", s.Engine, s.HTTPAddr, timeout, s.LogTail(30))
}

// Exited reports whether the server process has exited on its own (it was started and not
// stopped), with the end of its logs; tests call it to tell a dead server from a failing query.
func (s *Server) Exited() (bool, string) {
	if s.proc == nil {
		return false, ""
	}
	select {
	case <-s.proc.exited:
		return true, fmt.Sprintf("%s clickhouse exited: %v\n%s%s", s.Engine, s.proc.err, s.LogTail(30), s.CrashReport())
	default:
		return false, ""
	}
}

// LogTail returns the last n lines of the server's error log and of its stdout/stderr.
func (s *Server) LogTail(n int) string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(s.Dir, "log", "clickhouse-server.err.log"), s.stdoutLog()} {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", f, len(lines), bytes.Join(lines, []byte("\n")))
	}
	return b.String()
}

func (s *Server) stdoutLog() string { return filepath.Join(s.Dir, "log", "stdout.log") }

// Stop kills the server and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.exited
	s.proc = nil
}

// freePorts returns n ports that are free on loopback now, below the kernel's range of
// ephemeral ports (ephemeralLow): a server a test stops and starts again (Restart) keeps its
// ports, and while it was down a port of that range could be taken as the local port of any
// outgoing connection, by this process or another; TestScaleOutSurvivesKill9's ClickHouse then
// failed to come back ("Address already in use") on a busy machine. Ports below the range are
// never handed out so; they are picked at random, each checked by listening on it, and a clash
// with another process's pick in between is left to StartEngine's retries.
func freePorts(n int) ([]int, error) {
	const lowest = 10000
	high := ephemeralLow()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("find a free port from %d to %d: none in %d tries", lowest, high-1, tries)
		}
		l, err := net.Listen("tcp", addr(lowest+rand.IntN(high-lowest)))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow is the lowest port the kernel gives outgoing connections (Linux's
// net.ipv4.ip_local_port_range), 32768 where it cannot be read or is implausible.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < 20000 || low > 65535 {
		return fallback
	}
	return low
}
