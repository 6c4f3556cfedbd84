package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent is the Go garbage collector's target percentage for the
// long-running commands, instead of Go's 100. The ingest process holds
// hundreds of MB that live for seconds (the batches in flight and, with
// NATS embedded, the duplicate-detection ids of the window), and the
// collector's marking work per event is proportional to 1/GCPercent: at 100
// it took about 40% of the process's CPU in a 1M-event drain.
const DefaultGCPercent = 400

// DefaultMemoryLimit is the soft limit of the process's Go memory when none
// is given, unless a quarter of the machine's (or container's) memory is
// less. At DefaultGCPercent the heap would grow to five times what is live:
// with NATS embedded, 2.4–2.8 GiB in a 1M-event drain (500–600 MiB live).
// Under this limit the collector runs more often as the heap nears it, for
// a few µs more CPU an event in that drain, and no more often where less
// is live (NATS apart, a quiet stream). Where memory is plenty, a higher
// --memory-limit buys that CPU back.
const DefaultMemoryLimit = 1 << 30

// GC holds the Go garbage collector settings of a long-running command.
type GC struct {
	// Percent is the collector's target percentage (Go's GOGC); a negative
	// value turns the collector off but for the memory limit.
	Percent int
	// MemoryLimit is the soft limit of the process's Go memory (Go's
	// GOMEMLIMIT): a size such as "4GiB", "off" for none, or empty for
	// DefaultMemoryLimit or a quarter of the machine's memory (or of its
	// container's limit), whichever is less.
	MemoryLimit string
}

// Register adds --gc-percent and --memory-limit to fs.
func (g *GC) Register(fs *flag.FlagSet) {
	fs.IntVar(&g.Percent, "gc-percent", DefaultGCPercent, "Go garbage collector target percentage; Go's GOGC, when set, wins")
	fs.StringVar(&g.MemoryLimit, "memory-limit", "", "soft limit of the process's Go memory, e.g. 4GiB, or off; empty: 1GiB, or a quarter of the machine's or container's memory if less; Go's GOMEMLIMIT, when set, wins")
}

// Apply sets the collector's percentage and memory limit, each unless the
// Go runtime's own GOGC or GOMEMLIMIT is set, and returns the settings in
// force: the percentage (negative: off) and the limit in bytes
// (math.MaxInt64: none).
func (g GC) Apply() (percent int, limit int64, err error) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(g.Percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		l, err := g.limit()
		if err != nil {
			return 0, 0, err
		}
		debug.SetMemoryLimit(l)
	}
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1), nil
}

// limit returns the memory limit in bytes that MemoryLimit asks for.
func (g GC) limit() (int64, error) {
	switch s := strings.TrimSpace(g.MemoryLimit); s {
	case "":
		total, ok := machineMemory()
		if !ok {
			return DefaultMemoryLimit, nil
		}
		return min(int64(total/4), DefaultMemoryLimit), nil
	case "off":
		return math.MaxInt64, nil
	default:
		n, err := ParseSize(s)
		if err != nil {
			return 0, fmt.Errorf("memory-limit: %w", err)
		}
		return n, nil
	}
}

// ParseSize parses a size in bytes written as GOMEMLIMIT takes it: a whole
// number with an optional unit B, KiB, MiB, GiB or TiB.
func ParseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "BKMGTi")
	unit := s[len(num):]
	mult, ok := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KiB, MiB, GiB or TiB)", s, unit)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive whole number of bytes, KiB, MiB, GiB or TiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}

// machineMemory returns the memory this process may use in bytes: the
// machine's, from /proc/meminfo, or its control group's limit when that is
// lower (a container's).
func machineMemory() (uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	total, err := memTotal(b)
	if err != nil {
		return 0, false
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(f); err == nil {
			if l, ok := cgroupLimit(b); ok && l < total {
				total = l
			}
		}
	}
	return total, true
}

// cgroupLimit reads a control group's memory limit file (memory.max or
// memory.limit_in_bytes); "max" means none.
func cgroupLimit(b []byte) (uint64, bool) {
	l, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return l, err == nil && l > 0
}

// memTotal reads MemTotal from the text of /proc/meminfo.
func memTotal(meminfo []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("meminfo: MemTotal: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("meminfo: no MemTotal")
}
