//go:build !unix

package storetest

import (
	"errors"
	"os"
)

// lockFile cannot lock files here: InstallBinary then builds each binary where it is needed.
func lockFile(*os.File) error { return errors.ErrUnsupported }
