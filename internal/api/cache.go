package api

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/commitflow/commitflow/internal/answercache"
)

// The headers of a report's answer when the server has an answer cache
// (Config.Answers).
const (
	// HeaderComputedAt is when the answer's computation began (RFC 3339,
	// UTC, with milliseconds): it reflects the tenant's data stored then.
	HeaderComputedAt = "X-Commitflow-Computed-At"
	// HeaderCache says how the answer was found: hit (stored), miss
	// (computed for this request) or shared (computed once for this and
	// identical requests in flight).
	HeaderCache = "X-Commitflow-Cache"
)

// cached answers a report from s.cfg.Answers: a stored answer of the
// tenant's current data, the answer of an identical request in flight, or
// a new computation holding a query slot. The answer carries Age (whole
// seconds since its computation began) and HeaderComputedAt and
// HeaderCache, and the people it names, looked up as it is written; a CSV
// answer is made from the stored JSON.
func (s *server) cached(w http.ResponseWriter, r *http.Request, name, tenant string, v url.Values, rep representation) {
	l := s.cfg.Ladder.For(tenant)
	key := answercache.Key{
		Endpoint: name,
		Tenant:   tenant,
		Query:    answercache.Normalize(v, "tenant"),
		Ladder:   l.Version,
		Now:      v.Get("as_of") == "",
	}
	a, outcome, err := s.cfg.Answers.Do(r.Context(), key, func(ctx context.Context) ([]byte, error) {
		res, err := s.compute(ctx, name, tenant, v)
		if err != nil {
			return nil, err
		}
		return cachedBody(res)
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	h := w.Header()
	h.Set(HeaderComputedAt, a.ComputedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	h.Set(HeaderCache, string(outcome))
	h.Set("Age", strconv.Itoa(int(time.Since(a.ComputedAt)/time.Second)))
	if rep.csv {
		_, encoded, _ := bytes.Cut(a.Body, []byte("\n"))
		res, _, err := DecodeAnswer(name, encoded)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		s.writeCSV(w, r, name, tenant, res, rep)
		return
	}
	body, end := s.namedBody(r.Context(), tenant, a.Body)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+len(end)))
	w.WriteHeader(http.StatusOK)
	w.Write(body) // the client may have gone; nothing left to tell it
	w.Write(end)
}
