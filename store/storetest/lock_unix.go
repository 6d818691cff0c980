//go:build unix

package storetest

import (
	"os"
	"syscall"
)

// lockFile waits for an exclusive lock on f, which closing f releases (flock(2): the kernel
// releases it too when the process dies).
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
