package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
)

// StatusClientClosedRequest is the (nginx) status logged when the client
// went away before the answer was ready.
const StatusClientClosedRequest = 499

// errorBody is the JSON body of every error response. A bad parameter
// (400) names it in Param and says what is wrong in Code, one of
// param.Codes.
type errorBody struct {
	Error string     `json:"error"`
	Param string     `json:"param,omitempty"`
	Code  param.Code `json:"code,omitempty"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = encodeJSON(w, v) // the client may have gone; nothing left to tell it
}

// encodeJSON writes v to w as encoding/json's Encoder with HTML escaping
// off would, newline included, but as it goes: encoding/json builds the
// whole answer in memory first, and growing that buffer was two thirds of
// the time encoding a 22 MiB broken-down funnel (go-json-experiment with
// the v1 options: 76 ms against 177). The answer reaches w in writes of
// 64 KiB: net/http sends every write of more than its own 4 KiB buffer as
// a chunk of its own, one system call each, which cost that answer ~60 ms.
func encodeJSON(w io.Writer, v any) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		writers.Put(bw)
	}()
	if err := jsonv2.MarshalWrite(bw, v, jsonv1.DefaultOptionsV1(), jsontext.EscapeForHTML(false)); err != nil {
		return err
	}
	if err := bw.WriteByte('\n'); err != nil {
		return err
	}
	return bw.Flush()
}

// writers holds the buffers encodeJSON writes answers through.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writeError answers err: bad input (a *param.Error, from the parser or
// the metric packages) is 400 naming the parameter and its code, an
// authentication failure 401/403, a deal or tenant of which nothing is
// stored 404, states derived with another ladder 409,
// a busy server 503 with Retry-After, a timeout 504, a cancelled request
// 499, and anything else 500 with a generic message (the detail goes to
// the log).
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var pe *param.Error
	var ae *authError
	var nf *deals.NotFoundError
	var be *busyError
	var le *metrics.LadderError
	switch {
	case errors.As(err, &pe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: pe.Reason, Param: pe.Param, Code: pe.Code})
	case errors.As(err, &ae):
		if ae.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="commitflow"`)
		}
		writeJSON(w, ae.status, errorBody{Error: ae.msg, Param: ae.param})
	case errors.As(err, &nf):
		writeJSON(w, http.StatusNotFound, errorBody{Error: nf.Error()})
	case errors.As(err, &le):
		writeJSON(w, http.StatusConflict, errorBody{Error: le.Error() + " (the tenant's ladder in force): a replay with it is under way if commitflow run started since the ladder changed, else run commitflow replay --tenant " + le.Tenant + " --ladder FILE (or --ladders DIR)"})
	case errors.As(err, &be):
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: be.Error() + "; retry later"})
	case errors.Is(err, context.DeadlineExceeded):
		logger.WarnContext(r.Context(), "request timed out", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "the query timed out"})
	case errors.Is(err, context.Canceled) || r.Context().Err() != nil:
		writeJSON(w, StatusClientClosedRequest, errorBody{Error: "request cancelled"})
	default:
		logger.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}
