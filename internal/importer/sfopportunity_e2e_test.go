package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	derivepipe "github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// sfStages are the standard Sales Process's stages and a German org's
// closed won stage, which the default ladder does not know.
var sfStages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
	"Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost", "Gewonnen – unterzeichnet"}

// sfCurrencies are the currencies of the generated multi-currency org.
var sfCurrencies = []string{"USD", "EUR", "GBP"}

// csvLine writes cells as Data Export does: every cell quoted, CRLF.
func csvLine(b *bytes.Buffer, cells ...string) {
	for i, c := range cells {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strings.ReplaceAll(c, `"`, `""`) + `"`)
	}
	b.WriteString("\r\n")
}

// genSFOpportunities writes an Opportunity export of n deals (the shape
// of testdata/salesforce/Opportunity.csv) and an OpportunityContactRole
// export of their contacts: deal i is at stage i%11 of sfStages, in
// currency i%3, entered its stage i%5 days after its creation (at it for
// i%5 == 0), and has i%5 contacts with roles Economic Buyer, Business
// User, Champion and Technical Buyer in that order, two of them added at
// the same instant.
func genSFOpportunities(n int) (opps, roles []byte) {
	var o, r bytes.Buffer
	csvLine(&o, "Id", "IsDeleted", "AccountId", "Name", "StageName", "Amount", "Probability", "CloseDate", "IsClosed", "IsWon",
		"ForecastCategoryName", "CurrencyIsoCode", "OwnerId", "CreatedDate", "LastModifiedDate", "LastStageChangeDate")
	csvLine(&r, "Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "CreatedDate", "IsDeleted")
	base := time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	contactRoles := []string{"Economic Buyer", "Business User", "Champion", "Technical Buyer"}
	for i := range n {
		stage := sfStages[i%len(sfStages)]
		closed, won := i%len(sfStages) >= 8, i%len(sfStages) != 9
		prob, fc := strconv.Itoa(10*(i%len(sfStages)+1)), "Pipeline"
		switch {
		case closed && won:
			prob, fc = "100", "Closed"
		case closed:
			prob, fc = "0", "Omitted"
		}
		created := base.Add(time.Duration(i) * 7 * time.Hour)
		entered := created.Add(time.Duration(i%5) * 24 * time.Hour)
		id := fmt.Sprintf("0065g00000GEN%05d", i)
		csvLine(&o, id, "false", "0015g00000ACCT0001", fmt.Sprintf("Müller %d, \"phase\"\n%d", i, i%3), stage,
			fmt.Sprintf("%d.00", 1000*(i%7+1)), prob, entered.AddDate(0, 2, 0).Format(time.DateOnly),
			strconv.FormatBool(closed), strconv.FormatBool(closed && won), fc, sfCurrencies[i%3],
			fmt.Sprintf("0055g00000USER%04d", i%4), ts(created), ts(entered.Add(time.Hour)), ts(entered))
		for j := range i % 5 {
			csvLine(&r, fmt.Sprintf("00K5g00000G%05d%d", i, j), id, fmt.Sprintf("0035g00000C%05d%d", i, j), contactRoles[j],
				strconv.FormatBool(j == 0), ts(created.Add(time.Duration(j/2+1)*time.Hour)), "false")
		}
	}
	return o.Bytes(), r.Bytes()
}

// genSFFieldHistory writes an OpportunityFieldHistory export of n deals
// (the shape of testdata/salesforce/OpportunityFieldHistory.csv): each is
// created, then by o%4 goes Prospecting → Qualification → Needs Analysis
// → Closed Won, Prospecting → Qualification → Closed Lost, Prospecting →
// Value Proposition → Proposal/Price Quote, or Prospecting →
// Qualification with its amount cleared; the amount is set with the first
// move and raised with the second; every third deal moves from USD to EUR
// before; even deals change owner (a pair of rows); a description edit
// is skipped.
func genSFFieldHistory(n int) []byte {
	var b bytes.Buffer
	csvLine(&b, "Id", "IsDeleted", "OpportunityId", "CreatedById", "CreatedDate", "Field", "DataType", "OldValue", "NewValue")
	paths := [][]string{
		{"Prospecting", "Qualification", "Needs Analysis", "Closed Won"},
		{"Prospecting", "Qualification", "Closed Lost"},
		{"Prospecting", "Value Proposition", "Proposal/Price Quote"},
		{"Prospecting", "Qualification"},
	}
	base := time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC)
	row := 0
	for o := range n {
		opp := fmt.Sprintf("0065g00000FHG%05d", o)
		line := func(at time.Time, field, dataType, old, new string) {
			row++
			csvLine(&b, fmt.Sprintf("0175g00000G%07d", row), "false", opp, "0055g00000USER0001",
				at.Format("2006-01-02T15:04:05.000Z"), field, dataType, old, new)
		}
		t := base.Add(time.Duration(o) * 5 * time.Hour)
		line(t, "created", "Text", "", "")
		if o%3 == 1 {
			line(t.Add(time.Minute), "CurrencyIsoCode", "Picklist", "USD", "EUR")
		}
		path := paths[o%4]
		amount := 1000 * (o%5 + 1)
		for k := 1; k < len(path); k++ {
			t = t.Add(time.Duration(k) * 48 * time.Hour)
			line(t, "StageName", "DynamicEnum", path[k-1], path[k])
			switch {
			case k == 1:
				line(t, "Amount", "Currency", "", strconv.Itoa(amount))
			case k == 2:
				line(t, "Amount", "Currency", strconv.Itoa(amount), strconv.Itoa(amount+500))
			}
		}
		if o%4 == 3 {
			line(t.Add(time.Hour), "Amount", "Currency", strconv.Itoa(amount), "")
		}
		if o%2 == 0 {
			line(t.Add(2*time.Hour), "Owner", "EntityId", "0055g00000USER0001", "0055g00000USER0002")
			line(t.Add(2*time.Hour), "Owner", "Text", "Alice Smith", "Bob Jones")
		}
		line(t.Add(3*time.Hour), "Description", "TextArea", "", "SSO, SCIM\nand audit logs")
	}
	return b.Bytes()
}

// oracleDeal is what a file's rows say of one deal at the end: read
// straight from the CSV, not through the importer.
type oracleDeal struct {
	status, stage, currency, owner string
	amount                         float64
	highest                        int // highest ladder step reached
}

// readCSVRecords reads a UTF-8 or Windows-1252 CSV into maps by header.
func readCSVRecords(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	text, err := Decode(data, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]string, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

// oracleOpportunities is the oracle of an Opportunity export and its
// contact roles: the status of IsClosed/IsWon, the current stage, amount
// and currency, and as highest step the greatest of the stage's step,
// the won step for a win, and the consensus step for a deal with as many
// contacts in consensus roles as consensus needs.
func oracleOpportunities(t *testing.T, l *ladder.Ladder, opps, roles []byte) map[string]oracleDeal {
	out := map[string]oracleDeal{}
	for _, r := range readCSVRecords(t, opps) {
		d := oracleDeal{status: "open", stage: r["StageName"], currency: r["CurrencyIsoCode"], owner: r["OwnerId"]}
		d.amount, _ = strconv.ParseFloat(r["Amount"], 64)
		if step, known := l.StageStep("", d.stage); known {
			d.highest = step
		}
		if r["IsClosed"] == "true" {
			d.status = "lost"
			if r["IsWon"] == "true" {
				d.status = "won"
				d.highest = max(d.highest, l.Index(l.WonStep))
			}
		}
		out[r["Id"]] = d
	}
	engaged := map[string]int{}
	for _, r := range readCSVRecords(t, roles) {
		if l.IsConsensusRole(r["Role"]) {
			engaged[r["OpportunityId"]]++
		}
	}
	for id, n := range engaged {
		if d := out[id]; n >= l.Consensus.Stakeholders {
			d.highest = max(d.highest, l.Index(l.Consensus.Step))
			out[id] = d
		}
	}
	return out
}

// oracleFieldHistory is the oracle of an OpportunityFieldHistory export:
// each deal's rows in time order give its stages (the first OldValue, then
// every NewValue), its last stage, amount, currency and owner id, its
// status by the ladder's won and lost stages, and its highest step.
func oracleFieldHistory(t *testing.T, l *ladder.Ladder, data []byte, currency string) map[string]oracleDeal {
	recs := readCSVRecords(t, data)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i]["CreatedDate"] < recs[j]["CreatedDate"] })
	out := map[string]oracleDeal{}
	for _, r := range recs {
		d, ok := out[r["OpportunityId"]]
		if !ok {
			d = oracleDeal{status: "open", currency: currency}
		}
		switch r["Field"] {
		case "StageName":
			for _, s := range []string{r["OldValue"], r["NewValue"]} {
				if step, known := l.StageStep("", s); known {
					d.highest = max(d.highest, step)
				}
			}
			d.stage = r["NewValue"]
			switch {
			case l.IsWonStage(d.stage):
				d.status, d.highest = "won", max(d.highest, l.Index(l.WonStep))
			case l.IsLostStage(d.stage):
				d.status = "lost"
			}
		case "Amount":
			d.amount, _ = strconv.ParseFloat(r["NewValue"], 64)
		case "CurrencyIsoCode":
			d.currency = r["NewValue"]
		case "Owner":
			if r["DataType"] == "EntityId" {
				d.owner = r["NewValue"]
			}
		}
		out[r["OpportunityId"]] = d
	}
	return out
}

// TestSalesforceExportsEndToEnd imports generated Salesforce exports
// (an Opportunity export in Windows-1252 with its contact roles, and an
// OpportunityFieldHistory export) twice through NATS JetStream, with the
// ingest and derive workers writing to ClickHouse: every event is stored
// once, each deal's derived state (status, stage, amount, currency,
// owner, highest step reached) is what the file's rows say, and the
// funnel counts the deals that reached and converted from each step as
// the rows do.
func TestSalesforceExportsEndToEnd(t *testing.T) {
	ctx := t.Context()
	l := ladder.Default()
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	p := startDerivePipeline(t, l, now)

	opps, roles := genSFOpportunities(220)
	opps = to1252(t, string(opps))
	history := genSFFieldHistory(120)
	imports := []struct {
		tenant, format string
		parser         Parser
		data           []byte
	}{
		{"sfopp", "salesforce-opportunity", SalesforceOpportunity("sfopp", "", ""), opps},
		{"sfopp", "salesforce-contact-roles", SalesforceContactRoles("sfopp", ""), roles},
		{"sffh", "salesforce-field-history", SalesforceFieldHistory("sffh", "USD", ""), history},
	}
	want := map[string]int{}
	for _, im := range imports {
		rows, err := im.parser.Parse(im.data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Err != nil {
				t.Fatalf("%s line %d refused: %v", im.format, r.Line, r.Err)
			}
		}
		key := Key(im.data, im.format, im.tenant)
		cp := filepath.Join(t.TempDir(), "cp.json")
		for range 2 {
			sum, err := Run(ctx, rows, key, p.pub, Options{Checkpoint: cp, BatchSize: 500})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Events != countEvents(rows) {
				t.Fatalf("%s: %d events published, want %d", im.format, sum.Events, countEvents(rows))
			}
		}
		want[im.tenant] += countEvents(rows)
	}
	bustest.WaitDrained(t, p.js, e2ePartitions, 2*time.Minute)
	var total uint64
	for tenant, n := range want {
		_, stored, distinct := p.counts(t, tenant)
		if stored != uint64(n) || distinct != uint64(n) {
			t.Errorf("%s: %d rows and %d distinct events stored after importing twice, want %d", tenant, stored, distinct, n)
		}
		total += uint64(n)
	}
	if msgs, _, _ := p.counts(t, "sfopp"); msgs != total {
		t.Errorf("%d stream messages after importing twice, want %d", msgs, total)
	}

	for _, tc := range []struct {
		tenant string
		oracle map[string]oracleDeal
	}{
		{"sfopp", oracleOpportunities(t, l, opps, roles)},
		{"sffh", oracleFieldHistory(t, l, history, "USD")},
	} {
		got := derivedStates(t, p.st, tc.tenant)
		if len(got) != len(tc.oracle) {
			t.Errorf("%s: %d deals derived, want %d", tc.tenant, len(got), len(tc.oracle))
		}
		for id, w := range tc.oracle {
			if g := got[id]; g != w {
				t.Errorf("%s %s: derived %+v, the rows say %+v", tc.tenant, id, g, w)
			}
		}
		checkFunnel(t, p.st, l, tc.tenant, now, tc.oracle)
	}
	t.Logf("events stored once of each: %v", want)
}

// checkFunnel compares the funnel's reached and converted counts of every
// step, from the beginning of time to now, with the oracle's highest
// steps.
func checkFunnel(t *testing.T, st *store.Store, l *ladder.Ladder, tenant string, now time.Time, oracle map[string]oracleDeal) {
	t.Helper()
	keys := make([]string, l.Len())
	for i := range keys {
		keys[i] = l.Key(i + 1)
	}
	res, err := metrics.New(st.Conn()).Funnel(t.Context(), metrics.FunnelQuery{Tenant: tenant, AsOf: now,
		From: time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), To: now, Ladder: keys})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		var reached, converted int64
		for _, d := range oracle {
			if d.highest >= s.FromIndex {
				reached++
			}
			if d.highest >= s.ToIndex {
				converted++
			}
		}
		t.Logf("%s funnel %s→%s: reached %d, converted %d", tenant, s.FromStep, s.ToStep, s.Reached, s.Converted)
		if s.Reached != reached || s.Converted != converted {
			t.Errorf("%s funnel %s→%s: reached %d, converted %d; the rows say %d, %d", tenant, s.FromStep, s.ToStep,
				s.Reached, s.Converted, reached, converted)
		}
	}
}

// derivedStates reads each deal's derived state as of its last fact, and
// the highest step it reached, from opportunity_state.
func derivedStates(t *testing.T, st *store.Store, tenant string) map[string]oracleDeal {
	t.Helper()
	rows, err := st.Conn().Query(t.Context(), `SELECT opportunity_id, statuses[length(statuses)], stages[length(stages)],
		amounts[length(amounts)], currencies[length(currencies)], owners[length(owners)], reach
		FROM opportunity_state FINAL WHERE tenant = ?`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]oracleDeal{}
	for rows.Next() {
		var (
			id    string
			d     oracleDeal
			reach []time.Time
		)
		if err := rows.Scan(&id, &d.status, &d.stage, &d.amount, &d.currency, &d.owner, &reach); err != nil {
			t.Fatal(err)
		}
		for k, at := range reach {
			if at.Unix() > 0 {
				d.highest = k + 1
			}
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// startDerivePipeline is startPipeline with e2ePartitions partitions, a
// short AckWait and a derive worker with ladder l whose clock is now.
func startDerivePipeline(t *testing.T, l *ladder.Ladder, now time.Time) pipeline {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	_, js := bustest.Start(t, bus.Options{Partitions: e2ePartitions, AckWait: 5 * time.Second, DuplicateWindow: testWindow})
	st := storetest.OpenDSN(t, chtest.DSN(t), store.Options{Logger: quiet})
	ingesttest.Run(t, js, st, ingest.Config{BatchSize: 2000, MaxWait: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d, err := derivepipe.NewDeriver(ctx, js, st, l, derivepipe.Config{
		BatchSize: 2000, MaxWait: 100 * time.Millisecond, LeaseTTL: 15 * time.Second, Sweep: -1,
		Now: func() time.Time { return now }, Member: "importer-e2e",
	}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return pipeline{js: js, st: st, pub: bus.NewPublisher(js, e2ePartitions)}
}
