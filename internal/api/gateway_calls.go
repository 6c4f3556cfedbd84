package api

import (
	"bytes"
	"net/http"
	"net/url"

	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/webhook"
)

// postCalls serves POST /v1/webhooks/calls: generic call records
// (schemas/calls/call_record.schema.json) for the tenant of the bearer
// token, from recorders and dialers Gong does not cover. seller_domains=
// names the seller's e-mail domains, which decide the side of a
// participant or next step whose record gives none. As the vendor
// webhooks do, it stores the valid events before answering, and answers
// and dead-letters each record refused (by the mapping, naming the field,
// or by validation) rather than failing the request.
func (g *gateway) postCalls(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	p := newParser(v, []Param{{Name: "seller_domains"}})
	sellers, err := webhook.ParseSellerDomains(p.str("seller_domains"))
	if err != nil {
		p.fail("seller_domains", param.Invalid, "%v", err)
	}
	if p.err != nil {
		writeError(w, r, g.logger, p.err)
		return
	}
	body, ok := g.admit(w, r, webhook.CallsSource, tenant)
	if !ok {
		return
	}
	// Each record is a notification of its own, with its own index and
	// bytes in the answer and in its dead letter, whatever the shape of
	// the body (a record, an array, NDJSON).
	parts, err := webhook.CallParts(body)
	if err != nil {
		g.fail(w, r, &gatewayError{status: http.StatusBadRequest, msg: err.Error(), param: "body"})
		return
	}
	records := make([][]byte, len(parts))
	for i, part := range parts {
		records[i] = part.Data
	}
	array := append(append([]byte("["), bytes.Join(records, []byte(","))...), ']')
	g.store(w, r, door{vendor: webhook.CallsSource, parse: webhook.CallRecords{SellerDomains: sellers}.Map}, tenant, array)
}
