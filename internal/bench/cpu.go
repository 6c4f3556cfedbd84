package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuSample is the CPU time (user + system) used so far by this process,
// by the clickhouse-server processes of this machine and by an external
// nats-server, read from /proc. ok is false where /proc cannot be read
// (not Linux); ch is zero when no local clickhouse-server runs (a remote
// --clickhouse); natsOK is false without an external nats-server.
type cpuSample struct {
	self, ch, nats time.Duration
	chProcs        int
	natsPid        int
	natsOK, ok     bool
}

// sampleCPU reads the CPU time of this process, of every local
// clickhouse-server process and, when natsPid is not 0, of the
// nats-server process natsPid.
func sampleCPU(natsPid int) cpuSample {
	self, ok := procCPU("/proc/self/stat")
	if !ok {
		return cpuSample{}
	}
	s := cpuSample{self: self, natsPid: natsPid, ok: true}
	if natsPid != 0 {
		s.nats, s.natsOK = procCPU(filepath.Join("/proc", strconv.Itoa(natsPid), "stat"))
	}
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		name, err := os.ReadFile(c)
		// The kernel truncates command names to 15 bytes.
		if err != nil || !bytes.HasPrefix(name, []byte("clickhouse-serv")) {
			continue
		}
		if t, ok := procCPU(filepath.Join(filepath.Dir(c), "stat")); ok {
			s.ch += t
			s.chProcs++
		}
	}
	return s
}

// procCPU returns utime + stime from a /proc/<pid>/stat file.
func procCPU(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis (field 3 on).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// Cost is the CPU time per event (or row) of one phase of a benchmark, in
// microseconds: of this process (with the embedded NATS server, if any),
// of the local ClickHouse server and of an external nats-server. A field
// is negative when it could not be measured or there is no such process.
type Cost struct{ Self, ClickHouse, NATS float64 }

// costSince returns the CPU per event of n events processed since start.
func costSince(start cpuSample, n int) Cost {
	c := Cost{-1, -1, -1}
	end := sampleCPU(start.natsPid)
	if !start.ok || !end.ok || n <= 0 {
		return c
	}
	c.Self = float64((end.self - start.self).Microseconds()) / float64(n)
	if start.chProcs > 0 && end.chProcs == start.chProcs {
		c.ClickHouse = float64((end.ch - start.ch).Microseconds()) / float64(n)
	}
	if start.natsOK && end.natsOK {
		c.NATS = float64((end.nats - start.nats).Microseconds()) / float64(n)
	}
	return c
}

// formatCost formats a CPU cost in µs, "n/a" if it was not measured.
func formatCost(us float64) string {
	if us < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(us, 'f', 1, 64)
}
