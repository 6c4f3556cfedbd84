package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// StatusClientClosedRequest is the (nginx) status logged when the client
// went away before the answer was ready.
const StatusClientClosedRequest = 499

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may have gone; nothing left to tell it
}

// writeError answers err: bad input is 400 naming the parameter, an
// authentication failure 401/403, a timeout 504, a cancelled request 499,
// and anything else 500 with a generic message (the detail goes to the log).
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var pe *ParamError
	var ae *authError
	var ie inputError
	switch {
	case errors.As(err, &pe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: pe.Reason, Param: pe.Param})
	case errors.As(err, &ae):
		if ae.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="commitflow"`)
		}
		writeJSON(w, ae.status, errorBody{Error: ae.msg, Param: ae.param})
	case asInputError(err, &ie):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: ie.reason, Param: ie.param})
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
