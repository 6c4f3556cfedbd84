package gongsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/retry"
	"github.com/commitflow/commitflow/internal/webhook"
)

// callsPath is the endpoint polled: Gong API reference, "Retrieve
// detailed call data by various filters (/v2/calls/extensive)".
const callsPath = "/v2/calls/extensive"

// maxPageBytes bounds a response body read: Gong pages hold at most 100
// calls.
const maxPageBytes = 64 << 20

// maxRetryAfter bounds one wait for a 429's Retry-After, against a value
// no one meant.
const maxRetryAfter = time.Hour

// request is the body of POST /v2/calls/extensive: the calls that started
// in [fromDateTime, toDateTime), the page after cursor, with the parties,
// the action items and the CRM objects the call is linked to.
type request struct {
	Cursor          string          `json:"cursor,omitempty"`
	Filter          filter          `json:"filter"`
	ContentSelector contentSelector `json:"contentSelector"`
}

type filter struct {
	FromDateTime string `json:"fromDateTime"`
	ToDateTime   string `json:"toDateTime"`
}

// contentSelector asks for what the mapping reads: context "Basic" adds
// the CRM objects (objectType, objectId) without their fields.
type contentSelector struct {
	Context       string `json:"context"`
	ExposedFields struct {
		Parties bool `json:"parties"`
		Content struct {
			PointsOfInterest bool `json:"pointsOfInterest"`
		} `json:"content"`
	} `json:"exposedFields"`
}

// page is one answer of /v2/calls/extensive: its calls, and the cursor of
// the next page ("" on the last).
type page struct {
	Cursor string
	Calls  []webhook.GongCall
}

// parsePage reads a 200 answer: {"requestId", "records": {...,
// "cursor"}, "calls": [...]}.
func parsePage(body []byte) (page, error) {
	var head struct {
		Records struct {
			Cursor string `json:"cursor"`
		} `json:"records"`
		Calls json.RawMessage `json:"calls"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return page{}, fmt.Errorf("gong answer: %w", err)
	}
	if len(head.Calls) == 0 || string(head.Calls) == "null" {
		return page{Cursor: head.Records.Cursor}, nil
	}
	calls, err := webhook.GongCalls(body)
	if err != nil {
		return page{}, err
	}
	return page{Cursor: head.Records.Cursor, Calls: calls}, nil
}

// errCursorRejected is a 400 to a request with a cursor: Gong's cursors
// expire, and the window is then polled again from its start.
var errCursorRejected = errors.New("gong refused the page cursor")

// fetch asks for the page of calls that started in [from, to) after
// cursor. A 429 waits as Retry-After says (1 s without it) and asks again,
// as often as Gong says so; a 5xx or a failed connection is asked again
// after a back-off from RetryBase doubling to 30 s, at most ServerRetries
// times. Gong answers a window without calls with a 404 "No calls found
// corresponding to the provided filters": an empty page.
func (s *Syncer) fetch(ctx context.Context, from, to time.Time, cursor string) (page, error) {
	req := request{Cursor: cursor, Filter: filter{FromDateTime: from.UTC().Format(time.RFC3339), ToDateTime: to.UTC().Format(time.RFC3339)}}
	req.ContentSelector.Context = "Basic"
	req.ContentSelector.ExposedFields.Parties = true
	req.ContentSelector.ExposedFields.Content.PointsOfInterest = true
	body, err := json.Marshal(req)
	if err != nil {
		return page{}, err
	}
	// 5xx and failed connections: a bounded back-off. (A 429 waits as
	// Gong says and is not counted.)
	r := retry.Policy{Initial: s.cfg.RetryBase, Max: 30 * time.Second, Retries: s.cfg.ServerRetries}.Start()
	for {
		status, header, answer, err := s.post(ctx, body)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return page{}, ctx.Err()
		case err != nil || status >= 500:
			if err == nil {
				err = fmt.Errorf("gong answered %d: %s", status, snippet(answer))
			}
			var ok bool
			if wait, ok = r.Next(); !ok {
				return page{}, fmt.Errorf("%s: %d attempts failed: %w", callsPath, r.Retries()+1, err)
			}
			s.log.Warn("gong request failed; retrying", "attempt", r.Retries(), "retry_in", wait, "err", err)
		case status == http.StatusTooManyRequests:
			wait = retryAfter(header.Get("Retry-After"), s.cfg.Now())
			s.log.Info("gong rate limit; waiting as Retry-After says", "retry_in", wait)
		case status == http.StatusOK:
			return parsePage(answer)
		case status == http.StatusNotFound && bytes.Contains(answer, []byte("No calls found")):
			return page{}, nil
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return page{}, fmt.Errorf("gong refused the credentials (%d: %s): check --access-key and --access-key-secret, and that the key may read extensive call data (scope api:calls:read:extensive)", status, snippet(answer))
		case status == http.StatusBadRequest && cursor != "":
			return page{}, fmt.Errorf("%w (%s)", errCursorRejected, snippet(answer))
		default:
			return page{}, fmt.Errorf("%s: gong answered %d: %s", callsPath, status, snippet(answer))
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return page{}, err
		}
	}
}

// post sends one request and reads the answer.
func (s *Syncer) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.BaseURL+callsPath, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth(s.cfg.AccessKey, s.cfg.AccessKeySecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read gong answer: %w", err)
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// retryAfter is the wait a Retry-After value asks for, in seconds or as
// an HTTP date; 1 s when absent or unreadable, at most maxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	d := time.Second
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	}
	return min(d, maxRetryAfter)
}

// snippet is the start of an answer, for errors.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
