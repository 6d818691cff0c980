package storetest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// binDir is the folder, in the repository's .local (which git ignores), where InstallBinary keeps
// the binaries it builds.
func binDir() string { return filepath.Join(repoRoot(), ".local", "storetest-bin") }

// Binaries the harness builds from this tree.
const (
	// ChdbServerPkg is the chdbserver launcher of the chdb engine.
	ChdbServerPkg = "./store/storetest/chdbserver"
	// WaymarkPkg is the waymark command (the chdb engine's waymark_funnel UDF runs it).
	WaymarkPkg = "./cmd/waymark"
)

// InstallBinary puts at dst a binary of this tree's package pkg (a path from the repository's top:
// ChdbServerPkg, WaymarkPkg). It is built once into a folder of the repository's .local: go build
// leaves a binary whose build ID says it is up to date as it is, so later calls, in this test
// binary or in another (deploy/test.sh runs packages side by side), only check it, for a fraction
// of a second of CPU instead of the seconds a link takes. A file lock keeps two test binaries from
// writing it at once. dst becomes a hard link to the built file (a copy across file systems), so
// a rebuild after a change of the sources never touches a binary a server already runs.
func InstallBinary(pkg, dst string) error {
	name := filepath.Base(pkg)
	built := filepath.Join(binDir(), name)
	if err := buildLocked(pkg, built); err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		return build(pkg, dst) // no file lock here: no shared copy
	}
	// Linked (or copied) beside dst, then renamed over it: a server of dst's folder may still run
	// an older dst (TestEngineThatDiesFailsFast starts a second server in the folder of a first).
	tmp := dst + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install %s: %w", name, err)
	}
	if err := os.Link(built, tmp); err != nil {
		if err := copyFile(built, tmp); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	return nil
}

// buildLocked builds pkg into out while it holds the lock file of out's folder; it returns an
// error wrapping errors.ErrUnsupported where files cannot be locked.
func buildLocked(pkg, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	f, err := os.OpenFile(filepath.Join(filepath.Dir(out), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	defer f.Close() // closing releases the lock
	if err := lockFile(f); err != nil {
		return fmt.Errorf("build %s: lock %s: %w", pkg, f.Name(), err)
	}
	return build(pkg, out)
}

// build runs go build on pkg, from the repository's top, writing out.
func build(pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
