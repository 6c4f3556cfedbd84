package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/people"
)

// Every answer of the metrics and deal endpoints ends with "people": the
// people it names by id (deal owners, owner breakdowns), by id, from
// Config.People; an id of no known person is left out, and the answer
// shows the id alone. They are looked up once per answer as it is written,
// outside the answer cache: people imported after an answer was stored
// show at once.

// OwnerIDs returns the owner ids res, an answer of a metrics or deal
// endpoint, names: the owner of each deal and, when the answer is broken
// down by owner, each group's key; for one deal, also every owner its
// timeline names (previous owners); sorted, without duplicates or "".
func OwnerIDs(res any) []string {
	var ids []string
	switch r := res.(type) {
	case *metrics.FunnelResult:
		if r.Definitions.By == "owner" {
			for _, st := range r.Steps {
				for _, g := range st.Groups {
					ids = append(ids, g.Key)
				}
			}
		}
	case *metrics.StallsResult:
		for _, d := range r.Deals {
			ids = append(ids, d.OwnerID)
		}
	case *metrics.MissedResult:
		for _, g := range r.ByOwner {
			ids = append(ids, g.Key)
		}
	case *metrics.CycleResult:
		if r.Definitions.By == "owner" {
			for _, g := range r.Groups {
				ids = append(ids, g.Key)
			}
		}
	case *metrics.StageHistoryResult:
		if r.Definitions.By == "owner" {
			for _, g := range r.Groups {
				ids = append(ids, g.Key)
			}
		}
	case *forecast.Result:
		for _, g := range r.Pipeline.ByOwner {
			ids = append(ids, g.Key)
		}
	case *deals.ListResult:
		ids = append(ids, r.Filter.OwnerID)
		for _, d := range r.Deals {
			ids = append(ids, d.OwnerID)
		}
	case *deals.WarningsResult:
		ids = append(ids, r.Filter.OwnerID)
		for _, g := range r.ByOwner {
			ids = append(ids, g.Key)
		}
		for _, d := range r.Deals {
			ids = append(ids, d.OwnerID)
		}
	case *deals.Deal:
		ids = append(ids, r.Facts.OwnerID)
		for _, t := range r.Timeline {
			ids = append(ids, t.Owners...)
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) > 0 && ids[0] == "" {
		ids = ids[1:]
	}
	return ids
}

// peopleOf looks up tenant's people among ids. Names only dress an
// answer: when they cannot be looked up (ClickHouse gone since the answer
// was computed, a schema before 0111) the answer goes without them, and
// the failure is logged.
func (s *server) peopleOf(ctx context.Context, tenant string, ids []string) map[string]people.Person {
	if s.cfg.People == nil || len(ids) == 0 {
		return map[string]people.Person{}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	found, err := s.cfg.People.Lookup(ctx, tenant, ids)
	if err != nil {
		s.logger.Warn("people not looked up: the answer names ids only", "tenant", tenant, "err", err)
		return map[string]people.Person{}
	}
	return found
}

// peopleMember is the end of an answer object after its last member:
// `,"people":{...}}` and a newline (no comma in an empty object).
func peopleMember(ps map[string]people.Person, empty bool) []byte {
	b, err := jsonv2.Marshal(ps, jsonv1.DefaultOptionsV1(), jsontext.EscapeForHTML(false), jsonv2.Deterministic(true))
	if err != nil { // strings only: cannot happen
		b = []byte("{}")
	}
	out := make([]byte, 0, len(b)+14)
	if !empty {
		out = append(out, ',')
	}
	out = append(out, `"people":`...)
	out = append(out, b...)
	return append(out, "}\n"...)
}

// writeNamed answers 200 with res and the people it names, encoding res
// as it goes (see encodeJSON).
func (s *server) writeNamed(w http.ResponseWriter, r *http.Request, tenant string, res any) {
	ps := s.peopleOf(r.Context(), tenant, OwnerIDs(res))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	hb := &holdBack{w: w}
	if err := encodeJSON(hb, res); err != nil {
		return // the client may have gone; nothing left to tell it
	}
	w.Write(peopleMember(ps, hb.written == 1))
}

// holdBack writes to w all but the last two bytes written to it, an
// encoded object's "}\n", so that a member can still be added.
type holdBack struct {
	w       io.Writer
	tail    []byte
	written int // bytes passed on to w
}

func (h *holdBack) Write(p []byte) (int, error) {
	h.tail = append(h.tail, p...)
	if n := len(h.tail) - 2; n > 0 {
		if _, err := h.w.Write(h.tail[:n]); err != nil {
			return 0, err
		}
		h.written += n
		h.tail = append(h.tail[:0], h.tail[n:]...)
	}
	return len(p), nil
}

// cachedBody is what the answer cache keeps of an answer: the owner ids
// it names as a JSON array, a newline, and the encoded answer.
func cachedBody(res any) ([]byte, error) {
	var buf bytes.Buffer
	ids, err := json.Marshal(OwnerIDs(res))
	if err != nil {
		return nil, err
	}
	buf.Write(ids)
	buf.WriteByte('\n')
	if err := encodeJSON(&buf, res); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// namedBody returns a body cachedBody made, with the people it names:
// the answer's parts and its end (see peopleMember), to be written in
// that order.
func (s *server) namedBody(ctx context.Context, tenant string, cached []byte) (answer, end []byte) {
	line, body, _ := bytes.Cut(cached, []byte("\n"))
	var ids []string
	if err := json.Unmarshal(line, &ids); err != nil {
		s.logger.Warn("cached answer without its owner ids", "tenant", tenant, "err", err)
	}
	body = body[:len(body)-2] // "}\n"
	return body, peopleMember(s.peopleOf(ctx, tenant, ids), len(body) == 1)
}
