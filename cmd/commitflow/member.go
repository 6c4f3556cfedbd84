package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/segmentio/ksuid"
)

// memberLockFile is the file under --data that a run holds locked (flock)
// while it runs, to claim its stable lease member name.
const memberLockFile = "member.lock"

// claimMember returns the name under which this run holds the ingest and
// derive leases, and a function that gives it up. While no other process
// holds data's member lock, the name is stable for the host and data
// directory ("host-<hostname>-<hash of the directory>", the host name's
// characters other than letters and digits as _; a valid
// bus.ValidMember), so that a run
// restarted after kill -9 takes its leases back at once instead of waiting
// for them to expire: the lock, released by the kernel when its holder
// dies, proves the previous holder of the name is gone. When another live
// process holds the lock (two runs sharing --data against external
// servers), or the lock cannot be taken, the name is a new ksuid, as before.
func claimMember(data string) (name string, release func(), err error) {
	random := func() (string, func(), error) { return ksuid.New().String(), func() {}, nil }
	abs, err := filepath.Abs(data)
	if err != nil {
		return random()
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", nil, fmt.Errorf("member lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(abs, memberLockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", nil, fmt.Errorf("member lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return random()
		}
		return "", nil, fmt.Errorf("member lock %s: %w", f.Name(), err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	sum := sha256.Sum256([]byte(abs))
	clean := []byte(host)
	for i, c := range clean {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			clean[i] = '_'
		}
	}
	return "host-" + string(clean) + "-" + hex.EncodeToString(sum[:6]), func() { f.Close() }, nil
}
