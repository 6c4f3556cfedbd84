package gen

import (
	"bytes"
	"fmt"
	"time"
)

// SalesforceHistory returns a Salesforce OpportunityHistory export (the
// Data Export CSV commitflow import reads) of n rows: opportunities of
// five rows each (created, qualified, amount changed in the same stage,
// proposal with a new close date, won or lost; a third lost), their rows
// interleaved as in an export in date order. The same n gives the same
// bytes.
func SalesforceHistory(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`"Id","OpportunityId","CreatedById","CreatedDate","StageName","Amount","ExpectedRevenue","CloseDate","Probability","ForecastCategory","IsDeleted","SystemModstamp"` + "\r\n")
	opps := (n + 4) / 5
	base := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	for i := range n {
		o, k := i%opps, i/opps // row k of opportunity o
		at := base.Add(time.Duration(o)*time.Minute + time.Duration(k)*72*time.Hour)
		stage, amount, closeDate, prob, fc := "Prospecting", 1000+o%50*100, "2024-06-30", 10, "Pipeline"
		switch k {
		case 1:
			stage = "Qualification"
		case 2:
			stage, amount = "Qualification", amount+500
		case 3:
			stage, amount, closeDate, prob, fc = "Proposal/Price Quote", amount+500, "2024-07-31", 75, "BestCase"
		default:
			if k >= 4 {
				stage, amount, closeDate, prob, fc = "Closed Won", amount+500, at.Format(time.DateOnly), 100, "Closed"
				if o%3 == 0 {
					stage, prob, fc = "Closed Lost", 0, "Omitted"
				}
			}
		}
		ts := at.Format("2006-01-02T15:04:05.000Z")
		fmt.Fprintf(&b, `"008%015d","006%015d","0055g00000USER%03d","%s","%s","%d.00","%d.00","%s","%d","%s","false","%s"`+"\r\n",
			i, o, o%20, ts, stage, amount, amount*prob/100, closeDate, prob, fc, ts)
	}
	return b.Bytes()
}
