package storetest

import "syscall"

// serverProcAttr makes the kernel kill a test's ClickHouse server when the test process dies,
// including when `go test -timeout` ends it, which runs no cleanup: without it the server would
// keep running, holding its ports and memory.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
