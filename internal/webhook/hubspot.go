package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// HubSpotSource is the source of the events made of HubSpot webhooks.
const HubSpotSource = "hubspot"

// The headers of HubSpot's v3 request signature.
const (
	HubSpotSignatureHeader = "X-HubSpot-Signature-v3"
	HubSpotTimestampHeader = "X-HubSpot-Request-Timestamp"
)

// HubSpotMaxAge is how far a request's X-HubSpot-Request-Timestamp may be
// from now, either way, for its signature to be accepted: HubSpot's "reject
// the request if the timestamp is older than 5 minutes".
const HubSpotMaxAge = 5 * time.Minute

// ErrSignature is the error of a request whose signature is missing or
// does not match; ErrStale of one whose timestamp is too far from now.
var (
	ErrSignature = errors.New("signature missing or not valid")
	ErrStale     = errors.New("request timestamp missing or more than 5 minutes from now")
)

// VerifyHubSpot checks a request's X-HubSpot-Signature-v3 as HubSpot's
// "Validating requests" documents it
// (https://developers.hubspot.com/docs/api/webhooks/validating-requests,
// "Validate the v3 request signature"): the base64 HMAC SHA-256, keyed
// with the app's client secret, of method + URI + body + timestamp, the
// timestamp (X-HubSpot-Request-Timestamp, Unix milliseconds) no more than
// HubSpotMaxAge from now. uri is the full URL HubSpot called,
// https://host/path?query; the characters HubSpot's table lists are
// compared decoded (see hubspotURI). The comparison takes the same time
// whatever the signature.
func VerifyHubSpot(secret, method, uri string, body []byte, timestamp, signature string, now time.Time) error {
	ms, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return ErrStale
	}
	if d := now.Sub(time.UnixMilli(ms)); d > HubSpotMaxAge || d < -HubSpotMaxAge {
		return ErrStale
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil || secret == "" {
		return ErrSignature
	}
	if !hmac.Equal(got, SignHubSpot(secret, method, uri, body, timestamp)) {
		return ErrSignature
	}
	return nil
}

// SignHubSpot returns the raw v3 signature of a request (base64-encode it
// for the header): what HubSpot sends and VerifyHubSpot expects.
func SignHubSpot(secret, method, uri string, body []byte, timestamp string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(method))
	m.Write([]byte(hubspotURI(uri)))
	m.Write(body)
	m.Write([]byte(timestamp))
	return m.Sum(nil)
}

// hubspotDecoded are the URL-encoded characters HubSpot decodes in the
// URI it signs (the table of "Validate the v3 request signature").
var hubspotDecoded = strings.NewReplacer(
	"%3A", ":", "%3a", ":", "%2F", "/", "%2f", "/", "%3F", "?", "%3f", "?",
	"%40", "@", "%21", "!", "%24", "$", "%27", "'", "%28", "(", "%29", ")",
	"%2A", "*", "%2a", "*", "%2C", ",", "%2c", ",", "%3B", ";", "%3b", ";",
)

// hubspotURI is uri with the characters HubSpot decodes decoded.
func hubspotURI(uri string) string { return hubspotDecoded.Replace(uri) }

// hubspotEvent is one notification of a HubSpot webhooks body, a JSON
// array of up to 100 of them, as "Webhooks API" documents the payload
// (https://developers.hubspot.com/docs/api/webhooks, "Webhook payloads"):
// every field but propertyName and propertyValue is in every notification;
// those two are in property changes only, the value always a string.
// Fields HubSpot adds later are ignored.
type hubspotEvent struct {
	EventID          int64      `json:"eventId"`
	SubscriptionID   int64      `json:"subscriptionId"`
	PortalID         int64      `json:"portalId"`
	AppID            int64      `json:"appId"`
	OccurredAt       int64      `json:"occurredAt"` // Unix milliseconds
	SubscriptionType string     `json:"subscriptionType"`
	AttemptNumber    int        `json:"attemptNumber"` // 0 first, then each retry
	ObjectID         int64      `json:"objectId"`
	ObjectTypeID     string     `json:"objectTypeId"` // "0-3" for deals, in object.* subscriptions
	ChangeSource     string     `json:"changeSource"`
	PropertyName     string     `json:"propertyName"`
	PropertyValue    flexString `json:"propertyValue"`
}

// hubspotDealType is HubSpot's object type id of deals, which the generic
// object.* subscriptions of the new developer platform name.
const hubspotDealType = "0-3"

// subscription returns the notification's subscription type with a deal
// named generically (object.propertyChange of type 0-3) named as a deal.
func (h *hubspotEvent) subscription() string {
	if rest, ok := strings.CutPrefix(h.SubscriptionType, "object."); ok && h.ObjectTypeID == hubspotDealType {
		return "deal." + rest
	}
	return h.SubscriptionType
}

// HubSpot maps a HubSpot webhooks body to tenant's events: deal.creation
// to opportunity.created and deal.propertyChange of
//
//	dealstage                      opportunity.stage_changed (to the stage id; the ladder's won and lost stages close the deal)
//	amount                         opportunity.amount_changed (HubSpot sends no currency with it)
//	deal_currency_code             opportunity.updated with the currency
//	closedate                      opportunity.close_date_changed (a cleared date is ignored)
//	hubspot_owner_id               opportunity.owner_changed (a cleared owner is ignored)
//	pipeline, dealname             opportunity.updated
//	hs_manual_forecast_category    opportunity.forecast_category_changed
//	closed_lost_reason             opportunity.closed_lost with the reason
//	closed_won_reason              opportunity.closed_won with the reason
//
// Any other property or subscription is counted in Result.Ignored. An
// event's id is the deal id, occurredAt, eventId and property of its
// notification, which a retry repeats (HubSpot's eventId alone is "not
// guaranteed to be unique"). The error is for a body that is not a JSON
// array of notifications.
func HubSpot(tenant string, body []byte, now time.Time) (Result, error) {
	var notes []hubspotEvent
	if err := json.Unmarshal(body, &notes); err != nil {
		return Result{}, fmt.Errorf("hubspot: want a JSON array of notifications: %w", err)
	}
	var res Result
	for i := range notes {
		h := &notes[i]
		sub := h.subscription()
		switch sub {
		case "deal.creation", "deal.propertyChange":
		default:
			res.ignore("subscription:" + sub)
			continue
		}
		ev := event.Event{
			ID:            fmt.Sprintf("deal-%d-%d-%d", h.ObjectID, h.OccurredAt, h.EventID),
			Tenant:        tenant,
			Source:        HubSpotSource,
			OccurredAt:    time.UnixMilli(h.OccurredAt).UTC(),
			ReceivedAt:    now.UTC(),
			OpportunityID: strconv.FormatInt(h.ObjectID, 10),
		}
		if sub == "deal.creation" {
			ev.ID += "-created"
			ev.Type, ev.Payload = event.OpportunityCreated, &event.Opportunity{}
			res.Events = append(res.Events, ev)
			continue
		}
		ev.ID += "-" + h.PropertyName
		v := strings.TrimSpace(string(h.PropertyValue))
		var (
			known bool
			err   error
		)
		ev.Type, ev.Payload, known, err = hubspotProperty(h.PropertyName, v)
		switch {
		case err != nil:
			res.refuse(i, "deal %d property %s: %v", h.ObjectID, h.PropertyName, err)
		case !known:
			res.ignore("property:" + h.PropertyName)
		case ev.Payload == nil:
			res.ignore("cleared:" + h.PropertyName)
		default:
			res.Events = append(res.Events, ev)
		}
	}
	return res, nil
}

// hubspotProperty maps a deal property's new value to an event. known
// says whether the property is one of those mapped; a known property with
// a nil payload was cleared to a value that maps to no event.
func hubspotProperty(name, v string) (typ event.Type, p event.Payload, known bool, err error) {
	switch name {
	case "dealstage":
		if v != "" {
			return event.StageChanged, &event.StageChange{To: v}, true, nil
		}
	case "amount":
		a, err := amount(v)
		if err != nil {
			return "", nil, true, err
		}
		return event.AmountChanged, &event.AmountChange{To: a}, true, nil
	case "deal_currency_code":
		if v != "" {
			return event.OpportunityUpdated, &event.Opportunity{Currency: strings.ToUpper(v)}, true, nil
		}
	case "closedate":
		if v != "" {
			d, err := date(v)
			if err != nil {
				return "", nil, true, err
			}
			return event.CloseDateChanged, &event.CloseDateChange{To: d}, true, nil
		}
	case "hubspot_owner_id":
		if v != "" {
			return event.OwnerChanged, &event.OwnerChange{To: v}, true, nil
		}
	case "pipeline":
		if v != "" {
			return event.OpportunityUpdated, &event.Opportunity{Pipeline: v}, true, nil
		}
	case "dealname":
		if v != "" {
			return event.OpportunityUpdated, &event.Opportunity{Name: v}, true, nil
		}
	case "hs_manual_forecast_category":
		if v != "" {
			return event.ForecastCategoryChanged, &event.ForecastCategoryChange{To: v}, true, nil
		}
	case "closed_lost_reason":
		if v != "" {
			return event.ClosedLost, &event.Lost{Reason: v}, true, nil
		}
	case "closed_won_reason":
		if v != "" {
			return event.ClosedWon, &event.Won{Reason: v}, true, nil
		}
	default:
		return "", nil, false, nil
	}
	return "", nil, true, nil
}
