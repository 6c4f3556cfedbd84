package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
)

// statusTimeout bounds GET /v1/status's reads of the stream and consumers.
const statusTimeout = 5 * time.Second

// pipelineLag is the answer of GET /v1/status: how many events ingest and
// derive have yet to process, over every tenant.
type pipelineLag struct {
	// IngestPending are events not yet stored in ClickHouse: not yet
	// delivered to the ingest consumer, or delivered and not acknowledged.
	IngestPending uint64 `json:"ingest_pending"`
	// DerivePending are the same for the derive consumers of every
	// partition.
	DerivePending uint64 `json:"derive_pending"`
	// Behind is the larger of the two: the events whose derived numbers
	// the metrics do not show yet.
	Behind uint64 `json:"behind"`
}

// status serves GET /v1/status from the event stream's consumers; 503 when
// the server has no event stream.
func (s *server) status(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	if err := newParser(v, nil).err; err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if s.cfg.Bus == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "this server has no event stream to report on"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	st, err := bus.ReadStatus(ctx, s.cfg.Bus)
	if err != nil {
		writeError(w, r, s.logger, fmt.Errorf("pipeline status: %w", err))
		return
	}
	var lag pipelineLag
	if st.Ingest != nil {
		lag.IngestPending = st.Ingest.Pending + uint64(st.Ingest.AckPending)
	}
	lag.DerivePending = st.Derive.Pending + uint64(st.Derive.AckPending)
	lag.Behind = max(lag.IngestPending, lag.DerivePending)
	writeJSON(w, http.StatusOK, lag)
}
