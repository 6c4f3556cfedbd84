package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// The timeouts of NewServer's servers.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request; the API's requests are
	// GETs, so this only cuts off a client trickling a body.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds a request from the end of its headers to the last
	// byte of its answer. It must exceed the longest a report may take
	// (DefaultQueueTimeout + DefaultTimeout = 40 s; a forecast at 10M
	// events takes 1–2 s) plus the time to send the largest answer (a
	// broken-down funnel of 22 MiB: 80 s leave it 2.3 Mbit/s).
	WriteTimeout = 2 * time.Minute
	// IdleTimeout closes a keep-alive connection that has had no request
	// for this long.
	IdleTimeout = 60 * time.Second
)

// NewServer returns an http.Server for h with the timeouts above, so that
// neither a slow client nor an idle one holds a connection forever. The
// API listener and the admin listener both use it.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
}

// Servers are the HTTP servers of a serving command (run or gateway): a
// handler on its address and, when set apart, the operator's endpoints
// (Admin) on another.
type Servers struct {
	servers   []*http.Server
	listeners []net.Listener
}

// Listen listens on addr for h and, when adminAddr is set, on it for
// admin. Nothing is served until Serve.
func Listen(addr string, h http.Handler, adminAddr string, admin http.Handler, log *slog.Logger) (*Servers, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Servers{servers: []*http.Server{NewServer(h)}, listeners: []net.Listener{ln}}
	if adminAddr == "" {
		return s, nil
	}
	aln, err := net.Listen("tcp", adminAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", adminAddr, err)
	}
	s.servers, s.listeners = append(s.servers, NewServer(admin)), append(s.listeners, aln)
	log.Info("metrics and probes served apart from the API", "metrics", "http://"+aln.Addr().String()+"/metrics")
	return s, nil
}

// URL is the base URL of the first server, with a trailing slash.
func (s *Servers) URL() string {
	return "http://" + s.listeners[0].Addr().String() + "/"
}

// Serve serves every server in its own goroutine, calling failed with the
// error that stops one.
func (s *Servers) Serve(failed func(error)) {
	for i, srv := range s.servers {
		go func() {
			if err := srv.Serve(s.listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed(fmt.Errorf("http %s: %w", s.listeners[i].Addr(), err))
			}
		}()
	}
}

// Shutdown stops the servers, letting the requests in progress finish
// until ctx is done, and closes the listeners of servers never served.
func (s *Servers) Shutdown(ctx context.Context) error {
	var errs []error
	for i, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http %s: %w", s.listeners[i].Addr(), err))
		}
	}
	for _, ln := range s.listeners {
		ln.Close() // already closed by Shutdown when served
	}
	return errors.Join(errs...)
}
