// Package storetest starts a real ClickHouse server for tests: Debian's clickhouse-server on
// loopback, with its data in a temporary folder, configured from deploy/clickhouse/local-config.xml.
package storetest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Server is a running ClickHouse server.
type Server struct {
	Addr     string // native protocol host:port
	HTTPAddr string // HTTP interface host:port
	Dir      string
	bin      string
	conf     string
	cmd      *exec.Cmd
	done     chan error
}

// Binary returns the path of the clickhouse-server executable, or an error saying how to get it.
func Binary() (string, error) {
	for _, name := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("clickhouse-server not found: run deploy/test.sh, which installs Debian's clickhouse-server")
}

// ConfigTemplate returns the path of the config template in the repository.
func ConfigTemplate() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "clickhouse", "local-config.xml")
}

// Start starts a server whose files live in dir and waits until it answers.
func Start(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	tmpl, err := os.ReadFile(ConfigTemplate())
	if err != nil {
		return nil, fmt.Errorf("read clickhouse config template: %w", err)
	}
	conf := strings.NewReplacer("__DIR__", dir, "__TCP_PORT__", strconv.Itoa(ports[0]), "__HTTP_PORT__", strconv.Itoa(ports[1])).Replace(string(tmpl))
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return nil, fmt.Errorf("create clickhouse dir: %w", err)
	}
	confPath := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write clickhouse config: %w", err)
	}
	s := &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		Dir:      dir,
		bin:      bin,
		conf:     confPath,
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs the server process and waits until it answers.
func (s *Server) start() error {
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create clickhouse log: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(s.bin, "--config-file="+s.conf)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start clickhouse-server: %w", err)
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// Restart starts a stopped server again, on the same ports with the same data.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "log", "clickhouse-server.err.log"))
			return fmt.Errorf("clickhouse-server exited before it was ready: %v\n%s", err, log)
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
	return fmt.Errorf("clickhouse-server not ready on %s after %s", s.HTTPAddr, timeout)
}

// Stop kills the server and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
