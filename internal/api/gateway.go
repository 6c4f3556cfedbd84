package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/jsonpart"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/webhook"
)

// Publisher publishes events and returns once the stream has stored every
// one; *bus.Publisher is one. Publishing the same events again is harmless:
// each goes with its Nats-Msg-Id (bus.MsgID), which the stream keeps once.
type Publisher interface {
	PublishBatch(ctx context.Context, evs []event.Event) error
}

// GatewayConfig configures the doors events come in by over HTTP: POST
// /v1/events and the CRM webhooks.
type GatewayConfig struct {
	// Publisher stores the events; nil answers those routes 503.
	Publisher Publisher
	// MaxBody bounds a request body in bytes (413 past it); 0 means
	// DefaultMaxBody.
	MaxBody int64
	// HubSpotSecrets maps each tenant to the client secret of its HubSpot
	// app, which signs the app's webhooks (see ParseTenantSecrets).
	HubSpotSecrets map[string]string
	// PipedriveAuth maps each tenant to the "user:password" its Pipedrive
	// webhooks send with HTTP basic authentication.
	PipedriveAuth map[string]string
	// SalesforceSecrets maps each tenant to the secret its Salesforce
	// Change Data Capture relay signs requests with (X-Commitflow-Signature,
	// see webhook.SignSalesforce).
	SalesforceSecrets map[string]string
	// GongKeys maps each tenant to the key its Gong automation rule's
	// webhook URL carries as ?key= (Gong's "URL includes key").
	GongKeys map[string]string
	// DeadLetters stores the notifications the webhooks refuse in CF_DLQ;
	// nil only answers and logs them.
	DeadLetters *DeadLetters
	// PublicURL is scheme://host[:port] as the vendors call the server,
	// e.g. https://commitflow.example.com, which HubSpot's signature
	// covers. Empty: the request's Host, with https or http.
	PublicURL string
	// RateLimits bounds the requests of each tenant and each source
	// address (429 with Retry-After past them); zero: no limits.
	RateLimits RateLimits
}

// DefaultMaxBody is the body limit when GatewayConfig.MaxBody is 0: 16 MiB,
// some 15,000 call records or 50,000 CRM changes.
const DefaultMaxBody = 16 << 20

// ParseTenantSecrets parses "tenant=secret,tenant=secret" (the format of
// --hubspot-secrets and --pipedrive-auth) into a map from tenant to secret.
// A secret runs from the first '=' to the next ',' and may hold neither
// spaces nor commas. Blank entries are ignored.
func ParseTenantSecrets(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		tenant, secret, ok := strings.Cut(entry, "=")
		tenant, secret = strings.TrimSpace(tenant), strings.TrimSpace(secret)
		switch {
		case !ok || secret == "":
			return nil, fmt.Errorf("entry %d: want tenant=secret", i+1)
		case !event.ValidToken(tenant):
			return nil, fmt.Errorf("entry %d: invalid tenant %q", i+1, tenant)
		case strings.ContainsAny(secret, " \t"):
			return nil, fmt.Errorf("entry %d (tenant %s): the secret has a space", i+1, tenant)
		}
		if _, dup := out[tenant]; dup {
			return nil, fmt.Errorf("entry %d: tenant %s given twice", i+1, tenant)
		}
		out[tenant] = secret
	}
	return out, nil
}

// ParsePipedriveAuth parses "tenant=user:password,..." (the format of
// --pipedrive-auth) as ParseTenantSecrets does, each secret a user and a
// password, neither empty.
func ParsePipedriveAuth(s string) (map[string]string, error) {
	creds, err := ParseTenantSecrets(s)
	if err != nil {
		return nil, err
	}
	for tenant, c := range creds {
		if user, pass, ok := strings.Cut(c, ":"); !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("tenant %s: want user:password", tenant)
		}
	}
	return creds, nil
}

// gateway serves the routes that take events in.
type gateway struct {
	cfg     GatewayConfig
	logger  *slog.Logger
	events  *prometheus.CounterVec
	ignored *prometheus.CounterVec
	limits  *rateLimits
}

// gatewayRoutes lists the routes of the gateway.
func (s *server) gatewayRoutes() []route {
	reg, logger := s.cfg.Registry, s.logger
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &gateway{
		cfg:    s.cfg.Gateway,
		logger: logger,
		events: register(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_gateway_events_total",
			Help: "Events received over HTTP by door (events, hubspot, pipedrive, salesforce, gong, calls) and result (accepted, duplicate, rejected).",
		}, []string{"door", "result"})),
		ignored: register(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_webhook_ignored_total",
			Help: "Parts of webhook payloads that map to no event, by vendor and what they were (property:NAME, field:NAME, subscription:TYPE, entity:NAME, ...).",
		}, []string{"vendor", "what"})),
	}
	if g.cfg.MaxBody <= 0 {
		g.cfg.MaxBody = DefaultMaxBody
	}
	g.limits = newRateLimits(g.cfg.RateLimits, reg, logger)
	rts := []route{
		{"POST /v1/events", s.authed(g.postEvents)},
		{"POST /v1/webhooks/hubspot", g.webhook(door{webhook.HubSpotSource, g.cfg.HubSpotSecrets, nil, g.verifyHubSpot, webhook.HubSpot})},
		{"POST /v1/webhooks/pipedrive", g.webhook(door{webhook.PipedriveSource, g.cfg.PipedriveAuth, nil, g.verifyPipedrive, webhook.Pipedrive})},
		{"POST /v1/webhooks/salesforce", g.webhook(door{webhook.SalesforceSource, g.cfg.SalesforceSecrets, nil, verifySalesforce, webhook.Salesforce})},
		{"POST /v1/webhooks/gong", g.webhook(door{webhook.GongSource, g.cfg.GongKeys, []Param{{Name: "key"}}, verifyGong, webhook.Gong})},
		{"POST /v1/webhooks/calls", s.authed(g.postCalls)},
	}
	for i, rt := range rts { // each door's name is its last path segment
		rts[i].handler = g.limitIP(path.Base(rt.pattern), rt.handler)
	}
	return rts
}

// gatewayError is an answer of the gateway other than its result.
type gatewayError struct {
	status     int
	msg        string
	param      string
	retryAfter time.Duration // of a 429
}

func (e *gatewayError) Error() string { return e.msg }

// fail answers err: a *gatewayError with its status, anything else as
// writeError does.
func (g *gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ge *gatewayError
	if !errors.As(err, &ge) {
		writeError(w, r, g.logger, err)
		return
	}
	switch ge.status {
	case http.StatusUnauthorized:
		if r.URL.Path == "/v1/webhooks/pipedrive" {
			w.Header().Set("WWW-Authenticate", `Basic realm="commitflow"`)
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(ge.retryAfter))
	}
	writeJSON(w, ge.status, errorBody{Error: ge.msg, Param: ge.param})
}

// admit takes a request of tenant's events from source in: there is a
// publisher, the tenant is within its rate, and the body (returned) is
// within MaxBody. When not, it has answered the request.
func (g *gateway) admit(w http.ResponseWriter, r *http.Request, source, tenant string) ([]byte, bool) {
	if g.cfg.Publisher == nil {
		g.fail(w, r, errNoPublisher)
		return nil, false
	}
	if err := g.limitTenant(source, tenant); err != nil {
		g.fail(w, r, err)
		return nil, false
	}
	body, err := g.read(w, r)
	if err != nil {
		g.fail(w, r, err)
		return nil, false
	}
	return body, true
}

// read reads the request body, refusing one over MaxBody with 413.
func (g *gateway) read(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &gatewayError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the body is over the limit of %d bytes: split it into several requests", mbe.Limit)}
	case err != nil:
		return nil, fmt.Errorf("read body: %w", err)
	}
	return buf.Bytes(), nil
}

// publish stores evs, or returns a 503 telling the client to retry.
func (g *gateway) publish(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := g.cfg.Publisher.PublishBatch(ctx, evs); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.logger.WarnContext(ctx, "events not stored", "events", len(evs), "err", err)
		return &gatewayError{status: http.StatusServiceUnavailable,
			msg: "the event stream did not store every event; retry the same request (events are de-duplicated by id)"}
	}
	return nil
}

// errNoPublisher answers the gateway's routes on a server without one.
var errNoPublisher = &gatewayError{status: http.StatusServiceUnavailable, msg: "this server takes no events (it has no event stream)"}

// EventsResult is the answer of POST /v1/events.
type EventsResult struct {
	// Accepted counts the events stored, Duplicated the lines repeating
	// an earlier line's event (tenant, source and id; stored once), and
	// Rejected the lines refused.
	Accepted   int `json:"accepted"`
	Duplicated int `json:"duplicated"`
	Rejected   int `json:"rejected"`
	// Lines says what became of each line (array element), in order.
	Lines []LineResult `json:"lines"`
}

// LineResult is what became of one line of POST /v1/events.
type LineResult struct {
	// Line is the line of the body the event starts on, from 1; Index is
	// its position among the events, from 1.
	Line  int    `json:"line"`
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"`
	// Status is accepted, duplicate, rejected, or not_published: valid,
	// but not stored because the request was refused as a whole.
	Status string `json:"status"`
	// Field and Error say why a line was rejected: the field at fault
	// (payload.to, tenant, body, ...) and what is wrong with it.
	Field string `json:"field,omitempty"`
	Error string `json:"error,omitempty"`
	code  int    // the status a request of only such lines is answered with
}

// postEvents serves POST /v1/events: canonical events as NDJSON or a JSON
// array, for the tenant of the token.
func (g *gateway) postEvents(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	p := newParser(v, []Param{{Name: "atomic"}})
	atomic := p.enum("atomic", "false", "true", "false") == "true"
	if p.err != nil {
		writeError(w, r, g.logger, p.err)
		return
	}
	body, ok := g.admit(w, r, "events", tenant)
	if !ok {
		return
	}
	items, err := splitEvents(body)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if len(items) == 0 {
		g.fail(w, r, &gatewayError{status: http.StatusBadRequest, msg: "no events in the body (want NDJSON, one event a line, or a JSON array of events)", param: "body"})
		return
	}
	res, evs := g.check(tenant, items, time.Now().UTC())
	status := http.StatusAccepted
	if res.Rejected > 0 && (atomic || len(evs) == 0) {
		status = refusalStatus(res.Lines)
		for i := range res.Lines {
			if res.Lines[i].Status != "rejected" {
				res.Lines[i].Status = "not_published"
			}
		}
		res.Accepted, res.Duplicated, evs = 0, 0, nil
	}
	if err := g.publish(r.Context(), evs); err != nil {
		g.fail(w, r, err)
		return
	}
	if letters := rejectedLetters(tenant, items, res.Lines); len(letters) > 0 {
		if err := g.deadLetter(r.Context(), letters); err != nil {
			g.fail(w, r, err)
			return
		}
	}
	g.events.WithLabelValues("events", "accepted").Add(float64(res.Accepted))
	g.events.WithLabelValues("events", "duplicate").Add(float64(res.Duplicated))
	g.events.WithLabelValues("events", "rejected").Add(float64(res.Rejected))
	writeJSON(w, status, res)
}

// rejectedLetters are the dead letters of the rejected lines of a POST
// /v1/events body, on the subject cf.events.<tenant>.http.rejected.0 with
// the line's reason: the caller is told in the answer, and the operator
// finds in CF_DLQ what was refused (an event type newer than this
// version, a field out of range) instead of it being gone. A line naming
// another tenant is not the token's tenant's to keep and is only answered.
func rejectedLetters(tenant string, items []item, lines []LineResult) []letter {
	var out []letter
	for i, l := range lines {
		if l.Status != "rejected" || l.code == http.StatusForbidden {
			continue
		}
		reason := fmt.Sprintf("line %d: %s", l.Line, l.Error)
		if l.Field != "" {
			reason = fmt.Sprintf("line %d: %s: %s", l.Line, l.Field, l.Error)
		}
		out = append(out, letter{subject: bus.EventsPrefix + tenant + ".http.rejected.0", data: items[i].data, reason: reason})
	}
	return out
}

// item is one event's bytes in a POST /v1/events body.
type item struct {
	line int
	data []byte
}

// splitEvents splits a body into its events: the elements of a JSON array
// when the body starts with '[', else its non-blank lines. A body that is
// an array but not valid JSON is a 400 naming the line.
func splitEvents(body []byte) ([]item, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var items []item
	if len(trimmed) == 0 || trimmed[0] != '[' {
		line := 0
		for rest := body; len(rest) > 0; {
			line++
			var l []byte
			l, rest, _ = bytes.Cut(rest, []byte("\n"))
			if l = bytes.TrimSpace(l); len(l) > 0 {
				items = append(items, item{line, l})
			}
		}
		return items, nil
	}
	dec := jsonpart.NewDecoder(body)
	syntax := func(err error) error {
		var se *jsontext.SyntacticError
		off := dec.InputOffset()
		if errors.As(err, &se) {
			off = se.ByteOffset
		}
		return &gatewayError{status: http.StatusBadRequest, param: "body",
			msg: fmt.Sprintf("line %d: the JSON array is not valid JSON (%v); nothing was published", dec.Line(off), err)}
	}
	parts, err := dec.ReadArray()
	if err != nil {
		return nil, syntax(err)
	}
	if _, err := dec.ReadToken(); err == nil {
		return nil, syntax(errors.New("more after the array's end"))
	}
	for _, p := range parts {
		items = append(items, item{p.Line, p.Data})
	}
	return items, nil
}

// check parses and validates each item as an event of tenant, returning
// the result of every line and the events to store, each id once.
func (g *gateway) check(tenant string, items []item, now time.Time) (EventsResult, []event.Event) {
	res := EventsResult{Lines: make([]LineResult, len(items))}
	var evs []event.Event
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		lr := &res.Lines[i]
		lr.Line, lr.Index = it.line, i+1
		ev, code, err := parseEvent(it.data, tenant, now)
		lr.ID = ev.ID
		switch {
		case err != nil:
			res.Rejected++
			lr.Status, lr.code = "rejected", code
			var fe *event.FieldError
			if errors.As(err, &fe) {
				lr.Field, lr.Error = fe.Field, fe.Reason
			} else {
				lr.Error = err.Error()
			}
		case seen[bus.MsgID(ev)]:
			res.Duplicated++
			lr.Status = "duplicate"
		default:
			seen[bus.MsgID(ev)] = true
			res.Accepted++
			lr.Status = "accepted"
			evs = append(evs, ev)
		}
	}
	return res, evs
}

// parseEvent decodes one event for tenant: an event without a tenant gets
// it, one naming another is refused; received_at defaults to now. Then it
// is validated (event.Validate); every error is an *event.FieldError, and
// code is the status a request of only such errors gets: 403 for another
// tenant, 422 for an unknown event type, else 400.
func parseEvent(data []byte, tenant string, now time.Time) (ev event.Event, code int, err error) {
	if len(data) > event.MaxEventSize {
		ev, err = event.Parse(data) // refused for its size, naming it
		return ev, http.StatusBadRequest, err
	}
	if err := ev.UnmarshalJSON(data); err != nil {
		code = http.StatusBadRequest
		var fe *event.FieldError
		if errors.As(err, &fe) && fe.Field == "type" && ev.Type != "" && event.NewPayload(ev.Type) == nil {
			code = http.StatusUnprocessableEntity
		}
		if _, perr := event.Parse(data); perr != nil {
			err = perr // the same error, with the byte of a syntax error
		}
		return ev, code, err
	}
	switch {
	case ev.Tenant == "":
		ev.Tenant = tenant
	case ev.Tenant != tenant:
		return ev, http.StatusForbidden, &event.FieldError{Field: "tenant", Reason: fmt.Sprintf("%q is not the tenant of the token (%q)", ev.Tenant, tenant)}
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	if err := ev.Validate(); err != nil {
		return ev, http.StatusBadRequest, err
	}
	return ev, 0, nil
}

// refusalStatus is the status of a request refused for its rejected
// lines: theirs when they all have the same (403 for another tenant, 422
// for an unknown event type), else 400.
func refusalStatus(lines []LineResult) int {
	code := 0
	for _, l := range lines {
		switch {
		case l.Status != "rejected":
		case code == 0:
			code = l.code
		case code != l.code:
			return http.StatusBadRequest
		}
	}
	return code
}

// WebhookResult is the answer of a webhook: the events stored, the
// notifications refused with the reason, and what was ignored (by kind,
// as commitflow_webhook_ignored_total counts it).
type WebhookResult struct {
	Accepted int               `json:"accepted"`
	Refused  []webhook.Refusal `json:"refused"`
	Ignored  map[string]int    `json:"ignored"`
}

// door is a vendor's webhook route.
type door struct {
	vendor string
	// secrets maps each tenant to what authenticates its requests.
	secrets map[string]string
	// query are the query parameters the route takes besides tenant.
	query  []Param
	verify func(r *http.Request, body []byte, secret string) error
	parse  func(tenant string, body []byte, now time.Time) (webhook.Result, error)
}

// webhook serves a vendor's webhook: the tenant from ?tenant= (or the only
// tenant configured for the vendor), the request verified with its secret,
// the payload mapped notification by notification (the elements of an
// array body, else the body) and the events stored before the answer.
// A notification refused by the mapping, and one whose event fails
// validation, is answered as refused and dead-lettered (see deadLetters),
// not retried: the vendor would send it again unchanged.
func (g *gateway) webhook(d door) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, secret, err := webhookTenant(r, d.vendor, d.secrets, d.query)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		setTenant(r.Context(), tenant)
		body, err := g.read(w, r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		if err := d.verify(r, body, secret); err != nil {
			g.logger.WarnContext(r.Context(), "webhook refused", "vendor", d.vendor, "tenant", tenant, "err", err)
			g.fail(w, r, err)
			return
		}
		if err := g.limitTenant(d.vendor, tenant); err != nil {
			g.fail(w, r, err)
			return
		}
		if g.cfg.Publisher == nil {
			g.fail(w, r, errNoPublisher)
			return
		}
		g.store(w, r, d, tenant, body)
	})
}

// store maps body, the notifications of a webhook of tenant, with d,
// stores the valid events, dead-letters the notifications refused and
// answers the WebhookResult, counting the events accepted and rejected
// and what was ignored.
func (g *gateway) store(w http.ResponseWriter, r *http.Request, d door, tenant string, body []byte) {
	res, evs, letters, err := mapNotifications(d, tenant, body, time.Now())
	if err != nil {
		g.fail(w, r, &gatewayError{status: http.StatusBadRequest, msg: err.Error(), param: "body"})
		return
	}
	if err := g.publish(r.Context(), evs); err != nil {
		g.fail(w, r, err)
		return
	}
	if len(letters) > 0 {
		g.logger.WarnContext(r.Context(), "webhook notifications refused", "vendor", d.vendor, "tenant", tenant, "refused", res.Refused)
		if err := g.deadLetter(r.Context(), letters); err != nil {
			g.fail(w, r, err)
			return
		}
	}
	g.events.WithLabelValues(d.vendor, "accepted").Add(float64(res.Accepted))
	g.events.WithLabelValues(d.vendor, "rejected").Add(float64(len(res.Refused)))
	for what, n := range res.Ignored {
		g.ignored.WithLabelValues(d.vendor, what).Add(float64(n))
	}
	writeJSON(w, http.StatusOK, res)
}

// mapNotifications maps a webhook body notification by notification: each
// element of an array body on its own (as a one-element array), or the
// whole body. It returns the answer, the valid events to store and the
// dead letters of the notifications refused: by the mapping (on the
// subject cf.events.<tenant>.<vendor>.unmapped.0, as no event says where
// it belongs) or for an event that fails validation (on that event's
// subject, the reason naming the field). A body the mapping cannot read
// is the error.
func mapNotifications(d door, tenant string, body []byte, now time.Time) (WebhookResult, []event.Event, []letter, error) {
	res := WebhookResult{Refused: []webhook.Refusal{}, Ignored: map[string]int{}}
	notes, whole := notifications(body)
	var evs []event.Event
	var letters []letter
	for i, note := range notes {
		part := body
		if !whole {
			part = append(append([]byte("["), note...), ']')
		}
		m, err := d.parse(tenant, part, now)
		if err != nil {
			if !whole {
				err = fmt.Errorf("notification %d: %w", i, err)
			}
			return WebhookResult{}, nil, nil, err
		}
		for _, rf := range m.Refused {
			if !whole {
				rf.Index = i
			}
			res.Refused = append(res.Refused, rf)
			letters = append(letters, letter{
				subject: bus.EventsPrefix + tenant + "." + d.vendor + ".unmapped.0",
				data:    note, reason: rf.Reason,
			})
		}
		for what, n := range m.Ignored {
			res.Ignored[what] += n
		}
		for _, ev := range m.Events {
			if err := ev.Validate(); err != nil {
				reason := ev.ID + ": " + err.Error()
				res.Refused = append(res.Refused, webhook.Refusal{Index: i, Reason: reason})
				letters = append(letters, letter{event: &ev, data: note, reason: reason})
				continue
			}
			evs = append(evs, ev)
		}
	}
	res.Accepted = len(evs)
	return res, evs, letters, nil
}

// notifications splits a webhook body into its notifications: the
// elements of a JSON array, or the body itself (whole) when it is not an
// array whose elements can be told apart.
func notifications(body []byte) (notes []json.RawMessage, whole bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(body, &notes); err == nil {
			return notes, false
		}
	}
	return []json.RawMessage{body}, true
}

// webhookTenant returns the tenant a webhook is for and its secret.
func webhookTenant(r *http.Request, vendor string, secrets map[string]string, params []Param) (string, string, error) {
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return "", "", err
	}
	if err := newParser(v, params).err; err != nil {
		return "", "", err
	}
	if tenant := v.Get("tenant"); tenant != "" {
		secret, ok := secrets[tenant]
		if !ok {
			return "", "", &gatewayError{status: http.StatusUnauthorized, msg: fmt.Sprintf("no %s webhook secret is configured for this tenant", vendor)}
		}
		return tenant, secret, nil
	}
	switch len(secrets) {
	case 0:
		return "", "", &gatewayError{status: http.StatusUnauthorized, msg: fmt.Sprintf("no %s webhook secret is configured", vendor)}
	case 1:
		for tenant, secret := range secrets {
			return tenant, secret, nil
		}
	}
	tenants := make([]string, 0, len(secrets))
	for t := range secrets {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	return "", "", param.Errorf("tenant", param.Required, "required: %d tenants have a %s webhook secret; add ?tenant= to the URL the %s webhook calls", len(tenants), vendor, vendor)
}

// verifyHubSpot checks the request's v3 signature against the URL HubSpot
// called: PublicURL and the request URI, or without PublicURL the
// request's Host with https, then http.
func (g *gateway) verifyHubSpot(r *http.Request, body []byte, secret string) error {
	bases := []string{"https://" + r.Host, "http://" + r.Host}
	if g.cfg.PublicURL != "" {
		bases = []string{strings.TrimSuffix(g.cfg.PublicURL, "/")}
	}
	ts, sig := r.Header.Get(webhook.HubSpotTimestampHeader), r.Header.Get(webhook.HubSpotSignatureHeader)
	var err error
	for _, base := range bases {
		if err = webhook.VerifyHubSpot(secret, r.Method, base+r.URL.RequestURI(), body, ts, sig, time.Now()); err == nil {
			return nil
		}
	}
	if errors.Is(err, webhook.ErrStale) {
		return &gatewayError{status: http.StatusUnauthorized, msg: webhook.HubSpotTimestampHeader + " is missing or more than 5 minutes from now"}
	}
	return &gatewayError{status: http.StatusUnauthorized, msg: webhook.HubSpotSignatureHeader + " is missing or does not match the body and the tenant's client secret"}
}

// verifyPipedrive checks the request's basic authentication against the
// tenant's user:password, in time independent of the secret.
func (g *gateway) verifyPipedrive(r *http.Request, _ []byte, cred string) error {
	user, pass, ok := r.BasicAuth()
	got := sha256.Sum256([]byte(user + ":" + pass))
	want := sha256.Sum256([]byte(cred))
	if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return &gatewayError{status: http.StatusUnauthorized, msg: "missing or wrong basic authentication (the webhook's http_auth_user and http_auth_password)"}
	}
	return nil
}

// verifySalesforce checks the X-Commitflow-Signature of a relayed
// Salesforce CDC request against the tenant's secret.
func verifySalesforce(r *http.Request, body []byte, secret string) error {
	if webhook.VerifySalesforce(secret, body, r.Header.Get(webhook.SalesforceSignatureHeader)) != nil {
		return &gatewayError{status: http.StatusUnauthorized,
			msg: webhook.SalesforceSignatureHeader + " is missing or does not match the body and the tenant's secret (want sha256=<hex HMAC-SHA256 of the body>)"}
	}
	return nil
}

// verifyGong checks the ?key= of a Gong automation rule's webhook URL
// against the tenant's key, in time independent of the key.
func verifyGong(r *http.Request, _ []byte, key string) error {
	got := sha256.Sum256([]byte(r.URL.Query().Get("key")))
	want := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return &gatewayError{status: http.StatusUnauthorized, msg: "missing or wrong key: the Gong rule's webhook URL must carry ?key=<the tenant's key> (authentication method \"URL includes key\")"}
	}
	return nil
}
