//go:build unix

package chserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkFlock tries the lock clickhouse-server takes on <path>/status while
// it runs. A missing file means no server has run there yet.
func checkFlock(statusFile string) error {
	f, err := os.Open(statusFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clickhouse-server: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("clickhouse-server: another server is already running in %s (it holds %s); stop it or use another --data directory",
				filepath.Dir(filepath.Dir(statusFile)), statusFile)
		}
		return fmt.Errorf("clickhouse-server: lock %s: %w", statusFile, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
