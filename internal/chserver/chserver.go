// Package chserver runs a managed local clickhouse-server: the ClickHouse
// that commitflow starts under its data directory when no --clickhouse DSN
// is given, and that tests start when no server is provided.
//
// The server listens on free loopback ports, keeps its data, logs and
// configuration under one directory, and dies with the process that started
// it (on Linux). Stop and Restart let tests simulate a ClickHouse outage.
package chserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/retry"
)

// ErrNotInstalled is returned by Start when no clickhouse-server binary can
// be found. Its message says how to install one.
var ErrNotInstalled = errors.New("clickhouse-server not found on PATH (nor /usr/bin, /usr/sbin): " +
	"install it with `sudo apt-get install -y clickhouse-server` (Debian/Ubuntu), " +
	"or point --clickhouse (env COMMITFLOW_CLICKHOUSE) at an existing server")

// How long Start waits for the server to answer, and how long Stop waits
// for a graceful exit before SIGKILL.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// Server is a clickhouse-server child process. Its methods are safe for
// concurrent use.
type Server struct {
	bin      string   // binary to run
	args     []string // arguments before --config-file
	dir      string
	tcpPort  int
	httpPort int
	logger   *slog.Logger

	mu   sync.Mutex
	proc *process // nil while stopped

	restarts atomic.Int64 // by Supervise
}

// process is one run of the server binary.
type process struct {
	pid  int
	done chan struct{} // closed when the process has exited
	err  error         // the Wait result, set before done closes
}

// Start starts clickhouse-server with its configuration, data and logs
// under dir (created if needed), listening on free ports on 127.0.0.1, and
// returns once it answers a native-protocol ping. A nil logger discards.
// Start returns an error wrapping ErrNotInstalled when there is no
// clickhouse-server binary.
func Start(ctx context.Context, dir string, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin, args, err := lookBinary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("clickhouse-server: data directory: %w", err)
	}
	s := &Server{bin: bin, args: args, dir: dir, logger: logger}
	// A free port can be taken between picking it and the server binding
	// it; try again with fresh ports when that happens.
	for attempt := 1; ; attempt++ {
		if s.tcpPort, s.httpPort, err = freePorts(); err != nil {
			return nil, err
		}
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
		logger.Warn("clickhouse-server port taken, retrying", "err", err)
	}
}

// DSN is the clickhouse-go DSN of the server's default database.
func (s *Server) DSN() string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/default", s.tcpPort)
}

// TCPPort is the native-protocol port.
func (s *Server) TCPPort() int { return s.tcpPort }

// HTTPPort is the HTTP interface port.
func (s *Server) HTTPPort() int { return s.httpPort }

// Dir is the directory holding the server's configuration, data and logs
// (log/server.log, log/err.log, log/stdout.log).
func (s *Server) Dir() string { return s.dir }

// PID is the process id of the running server, 0 while it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}

// Signal sends sig to the running server's process group: SIGSTOP and
// SIGCONT freeze and thaw it, SIGKILL kills it (Restart then starts it
// again on the same ports). Fault tests use it.
func (s *Server) Signal(sig syscall.Signal) error {
	pid := s.PID()
	if pid == 0 {
		return errors.New("clickhouse-server: not running")
	}
	if err := signalGroup(pid, sig); err != nil {
		return fmt.Errorf("clickhouse-server: signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Stop asks the server to shut down (SIGTERM to its process group) and
// waits for it to exit; if it has not exited when ctx ends or after 20s, it
// is killed. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := signalGroup(p.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.logger.Warn("clickhouse-server: SIGTERM failed", "pid", p.pid, "err", err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		s.logger.Info("clickhouse-server stopped", "pid", p.pid)
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	s.logger.Warn("clickhouse-server did not stop in time, killing it", "pid", p.pid)
	if err := signalGroup(p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("clickhouse-server: kill %d: %w", p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("clickhouse-server: process %d did not exit after SIGKILL", p.pid)
	}
}

// Restart stops the server if it runs and starts it again on the same
// ports with the same data, returning once it answers.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.launch(ctx)
}

// launch writes the configuration, starts the process and waits until it
// answers a ping.
func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("clickhouse-server: already running")
	}
	if err := checkFlock(filepath.Join(s.dir, "data", "status")); err != nil {
		return err
	}
	cfg, err := s.writeConfig()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("clickhouse-server: %w", err)
	}
	defer out.Close() // the child keeps its own descriptor

	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process: keep this goroutine on one thread for the child's
		// whole life. The thread is discarded when the goroutine returns.
		runtime.LockOSThread()
		cmd := exec.Command(s.bin, append(s.args, "--config-file="+cfg)...)
		cmd.Dir = s.dir
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("clickhouse-server: start %s: %w", s.bin, err)
	}
	s.logger.Info("clickhouse-server starting", "pid", p.pid, "dir", s.dir, "tcp_port", s.tcpPort, "http_port", s.httpPort)
	if err := s.waitReady(ctx, p); err != nil {
		_ = signalGroup(p.pid, syscall.SIGKILL)
		<-p.done
		return err
	}
	s.proc = p
	return nil
}

// waitReady pings the server until it answers, the process exits, ctx ends
// or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{fmt.Sprintf("127.0.0.1:%d", s.tcpPort)},
		DialTimeout: time.Second,
	})
	if err != nil {
		return fmt.Errorf("clickhouse-server: %w", err)
	}
	defer conn.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		last = conn.Ping(pctx)
		pcancel()
		if last == nil {
			s.logger.Info("clickhouse-server ready", "pid", p.pid, "dsn", s.DSN())
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("clickhouse-server exited during start (%v); %s", p.err, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("clickhouse-server did not answer on port %d within %s (last error: %v); %s",
				s.tcpPort, readyTimeout, last, s.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the end of the server's error log and stdout, for error
// messages.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"err.log", "stdout.log"} {
		path := filepath.Join(s.dir, "log", name)
		data, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "tail of %s:\n%s\n", path, strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return "no server log output (see " + filepath.Join(s.dir, "log") + ")"
	}
	return b.String()
}

// writeConfig writes config.xml and users.xml under dir and creates the
// directories they name. The root element <yandex> is read by 18.x and by
// current servers alike. A short poll_interval and shutdown_wait_unfinished
// let the server stop in about a second even with idle client connections
// open (the defaults make it wait 10s). The answers read through the cache
// of decompressed blocks (snapshot.QueryContext); 1 GiB of it holds the
// columns they read at 10M raw events.
func (s *Server) writeConfig() (string, error) {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return "", fmt.Errorf("clickhouse-server: %w", err)
		}
	}
	d := s.dir
	config := fmt.Sprintf(`<?xml version="1.0"?>
<!-- Written by commitflow (internal/chserver); rewritten at every start. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>%[1]s/log/server.log</log>
    <errorlog>%[1]s/log/err.log</errorlog>
    <size>100M</size>
    <count>3</count>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <shutdown_wait_unfinished>1</shutdown_wait_unfinished>
</yandex>
`, d, s.tcpPort, s.httpPort)
	users := `<?xml version="1.0"?>
<!-- Written by commitflow (internal/chserver): one passwordless user, loopback only. -->
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><poll_interval>1</poll_interval></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`
	cfg := filepath.Join(d, "config.xml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return "", fmt.Errorf("clickhouse-server: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d, "users.xml"), []byte(users), 0o644); err != nil {
		return "", fmt.Errorf("clickhouse-server: %w", err)
	}
	return cfg, nil
}

// lookBinary finds clickhouse-server on PATH or where the Debian package
// puts it, or else the single `clickhouse` binary with its server command.
func lookBinary() (string, []string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil, nil
	}
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return p, []string{"server"}, nil
	}
	return "", nil, ErrNotInstalled
}

// freePorts returns two distinct TCP ports on 127.0.0.1 that were free a
// moment ago.
func freePorts() (tcp, http int, err error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	// Below the kernel's ephemeral range (32768 and up on Linux), so that a
	// client connection's local port cannot take the port while the server
	// restarts on it.
	for tries := 0; len(ls) < 2 && tries < 200; tries++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err == nil {
			ls = append(ls, l)
		}
	}
	if len(ls) < 2 {
		return 0, 0, errors.New("clickhouse-server: no free port between 20000 and 32000 on 127.0.0.1")
	}
	return ls[0].Addr().(*net.TCPAddr).Port, ls[1].Addr().(*net.TCPAddr).Port, nil
}

// Installed reports whether a clickhouse-server binary can be found.
func Installed() bool {
	_, _, err := lookBinary()
	return err == nil
}

// Restarts is how many times Supervise has restarted the server after it
// died.
func (s *Server) Restarts() int64 { return s.restarts.Load() }

// Supervise restarts the server, on the same ports with the same data,
// whenever its process exits without Stop or Restart having been called,
// until ctx is done. Each such exit is logged at ERROR with the exit status
// and the tail of the server's logs; a failed restart is logged and retried
// with exponential back-off (1s up to 30s). While the server is stopped on
// purpose, Supervise waits for it to be started again.
func (s *Server) Supervise(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		p := s.proc
		s.mu.Unlock()
		if p == nil { // stopped on purpose, or between Stop and launch
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.done:
		}
		s.mu.Lock()
		died := s.proc == p
		if died {
			s.proc = nil
		}
		s.mu.Unlock()
		if !died {
			continue
		}
		down := time.Now()
		s.logger.Error("clickhouse-server died; restarting it", "pid", p.pid, "exit", p.err, "log", s.logTail())
		// The first restart is attempted at once, a failed one retried
		// after 1s, doubling up to 30s, for as long as it takes.
		for r := (retry.Policy{Initial: time.Second, Max: 30 * time.Second}).Start(); ; {
			err := s.launch(ctx)
			if err == nil {
				s.restarts.Add(1)
				s.logger.Info("clickhouse-server restarted", "pid", s.PID(), "down_for", time.Since(down).Round(time.Millisecond))
				break
			}
			if ctx.Err() != nil {
				return
			}
			wait, _ := r.Next()
			s.logger.Error("clickhouse-server restart failed; retrying", "err", err, "in", wait)
			if retry.Sleep(ctx, wait) != nil {
				return
			}
		}
	}
}

// Ensure returns dsn unchanged, a nil server and a stop function that
// does nothing, when dsn is not empty. Otherwise it starts a managed server
// under dir, supervised (see Supervise) until stop is called, and returns
// it, its DSN and a stop function that ends the supervision and stops it.
// This is how commands honour an empty --clickhouse flag.
func Ensure(ctx context.Context, dsn, dir string, logger *slog.Logger) (*Server, string, func(context.Context) error, error) {
	if dsn != "" {
		return nil, dsn, func(context.Context) error { return nil }, nil
	}
	s, err := Start(ctx, dir, logger)
	if err != nil {
		return nil, "", nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.Supervise(sctx) })
	stop := func(ctx context.Context) error {
		cancel()
		wg.Wait()
		return s.Stop(ctx)
	}
	return s, s.DSN(), stop, nil
}

// Running returns the DSN of the managed server of dir if one is running:
// the one a command such as `commitflow run` started there and has not
// stopped. It reads the port from the configuration Start wrote and checks
// that something accepts connections on it.
func Running(dir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "config.xml"))
	if err != nil {
		return "", false
	}
	port, ok := tcpPortOf(b)
	if !ok {
		return "", false
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", false
	}
	c.Close()
	return fmt.Sprintf("clickhouse://%s/default", addr), true
}

// tcpPortOf reads <tcp_port> from a configuration Start wrote.
func tcpPortOf(config []byte) (int, bool) {
	_, rest, ok := bytes.Cut(config, []byte("<tcp_port>"))
	if !ok {
		return 0, false
	}
	v, _, ok := bytes.Cut(rest, []byte("</tcp_port>"))
	if !ok {
		return 0, false
	}
	port, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	return port, err == nil && port > 0 && port < 65536
}
