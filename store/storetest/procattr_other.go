//go:build !linux

package storetest

import "syscall"

// serverProcAttr is nil where the kernel cannot tie a child's life to its parent's.
func serverProcAttr() *syscall.SysProcAttr { return nil }
