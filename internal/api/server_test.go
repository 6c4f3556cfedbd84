package api

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestNewServerTimeouts: the servers' timeouts are all set, and a report
// that waits its longest for a slot and then runs its longest still has
// time to be sent.
func TestNewServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %s, read %s, write %s, idle %s; want all set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if srv.IdleTimeout >= 75*time.Second {
		t.Errorf("idle timeout %s: idle connections stay open past 75 s", srv.IdleTimeout)
	}
	if longest := DefaultQueueTimeout + DefaultTimeout; srv.WriteTimeout < longest+30*time.Second {
		t.Errorf("write timeout %s leaves a report that took %s too little time to be sent", srv.WriteTimeout, longest)
	}
}

// TestIdleConnectionsClosed: keep-alive connections that stay idle past the
// idle timeout are closed by the server; one in use is not cut.
func TestIdleConnectionsClosed(t *testing.T) {
	srv := NewServer(New(Config{Open: true}, nil, nil, nil))
	srv.IdleTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	// request sends one keep-alive GET /healthz on c and reads the answer.
	request := func(c net.Conn, r *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 || resp.Close {
			return errors.New("answered " + resp.Status + " or asked to close")
		}
		return nil
	}
	const idle = 20
	conns := make([]net.Conn, idle)
	readers := make([]*bufio.Reader, idle)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i], readers[i] = c, bufio.NewReader(c)
		if err := request(c, readers[i]); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// A busy connection, a request every 100 ms, stays open.
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyReader := bufio.NewReader(busy)
	start := time.Now()
	for time.Since(start) < time.Second {
		if err := request(busy, busyReader); err != nil {
			t.Fatalf("a connection in use, after %s: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// By now (1 s) the idle ones are closed: a read sees EOF at once.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := readers[i].ReadByte()
		if !errors.Is(err, io.EOF) {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("idle connection %d still open after %s", i, time.Since(start))
			} else {
				t.Errorf("idle connection %d: %v, want EOF", i, err)
			}
		}
	}
}
