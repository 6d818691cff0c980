package storetest

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashReportNamesTheQuery crashes a real 18.16 server in the middle of a query (a
// segmentation fault sent to the thread running it) and checks that the server's death is
// reported with the signal and, with the server logging queries (QueryLoggingEnv), with that
// query's text, which 18.16's own report lacks.
func TestCrashReportNamesTheQuery(t *testing.T) {
	FirstPassOnly(t)
	dir := t.TempDir()
	if err := writeQueryLogging(dir); err != nil {
		t.Fatal(err)
	}
	s, err := StartEngine(Debian, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if r := s.CrashReport(); r != "" {
		t.Fatalf("a running server has a crash report:\n%s", r)
	}
	pid := s.proc.cmd.Process.Pid
	const marker = "the query that crashed it"
	deadline := time.Now().Add(2 * time.Minute)
	for crashed := false; !crashed; {
		if time.Now().After(deadline) {
			t.Fatal("no thread of the server was seen sleeping in the query")
		}
		go func() { // it sleeps 3 s on the thread the signal is sent to; its answer is not read
			resp, err := http.Post("http://"+s.HTTPAddr+"/", "text/plain", strings.NewReader("SELECT sleep(3), '"+marker+"'"))
			if err == nil {
				resp.Body.Close()
			}
		}()
		for end := time.Now().Add(3 * time.Second); !crashed && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if tid := sleepingThread(t, pid); tid != 0 {
				if err := syscall.Tgkill(pid, tid, syscall.SIGSEGV); err != nil {
					t.Fatal(err)
				}
				crashed = true
			}
		}
	}
	select {
	case <-s.proc.exited:
	case <-time.After(time.Minute):
		t.Fatal("the server did not exit after a segmentation fault")
	}
	died, why := s.Exited()
	if !died {
		t.Fatal("Exited says the crashed server did not exit")
	}
	for _, want := range []string{"Received signal Segmentation fault", "executeQuery: (from", marker} {
		if !strings.Contains(why, want) {
			t.Errorf("the report of the crash lacks %q:\n%s", want, why)
		}
	}
}

// sleepingThread returns the id of a thread of process pid that answers HTTP and sleeps in
// nanosleep (the query's sleep), or 0. The server's background threads sleep too.
func sleepingThread(t *testing.T, pid int) int {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		wchan, err := os.ReadFile(filepath.Join(task, "wchan"))
		if err != nil || !strings.Contains(string(wchan), "nanosleep") {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join(task, "comm")); err != nil || !strings.HasPrefix(string(comm), "HTTPHandler") {
			continue
		}
		if tid, err := strconv.Atoi(filepath.Base(task)); err == nil {
			return tid
		}
	}
	return 0
}
