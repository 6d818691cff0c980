package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"unsafe"
)

// TestFirstSignalEndsACommandBlockedWriting: a command with nothing to finish (here `help serve`)
// ends, status 1, saying it stopped, within queryGrace of the first SIGINT, even while it is
// blocked writing its output to a pipe nobody reads (tester 28's F3: `waymark dropoff --csv |
// slow-consumer` heard the first signal only once the pipe took its output).
func TestFirstSignalEndsACommandBlockedWriting(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // never read until the end: the pipe stays full
	// The pipe's buffer at its least, a page: the help of serve (over 6 KB) fills it.
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), syscall.F_SETPIPE_SZ, 4096); errno != 0 {
		t.Fatalf("F_SETPIPE_SZ: %v", errno)
	}
	cmd := exec.Command(binary, "help", "serve")
	cmd.Stdout = w
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	exited := started(t, cmd)
	w.Close() // the child's now
	// Full: the command is blocked writing (it catches signals from before it writes).
	waitFor(t, "the pipe to fill", func() bool {
		var n int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, r.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		return errno == 0 && n >= 4096
	})
	// The guard is far over queryGrace.
	endsOnSIGINT(t, cmd, exited, 1, &stderr, "waymark: stopped (interrupt signal received)")
}

// TestFirstSignalEndsAReplayWaitingForInput: replay reading standard input (or a named pipe)
// whose writer sends nothing more ends on the first SIGINT, status 1 (tester 50's F1: it heard the
// signal only once input came or ended, and a second signal was needed).
func TestFirstSignalEndsAReplayWaitingForInput(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // never closed before the end: replay waits for more
	defer r.Close() // the test's copy of the child's end, to see it read
	cmd := exec.Command(binary, "replay", "--format", "segment", "--file", "-", "--dev-broker-addr", "127.0.0.1:1")
	cmd.Stdin = r
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	exited := started(t, cmd)
	if _, err := w.WriteString(`{"type":"track","userId":"sig","event":"E","timestamp":"2025-05-01T10:00:00Z"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	// Read: replay is past catching signals, waiting for the next line.
	waitFor(t, "replay to read its first line", func() bool {
		var n int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, r.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		return errno == 0 && n == 0
	})
	endsOnSIGINT(t, cmd, exited, 1, &stderr, "interrupt signal received")
}
