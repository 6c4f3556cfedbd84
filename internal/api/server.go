package api

import (
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
