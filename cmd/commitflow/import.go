package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/importer"
	"github.com/commitflow/commitflow/internal/webhook"
)

// runImport is the import command; it writes progress to stderr.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "auto", "file format: ndjson (canonical events), salesforce-history (OpportunityHistory CSV), salesforce-field-history (OpportunityFieldHistory CSV), salesforce-opportunity (Opportunity CSV, current state), salesforce-contact-roles (OpportunityContactRole CSV), csv (with --mapping), gong-json (a Gong /v2/calls/extensive response), calls-json (generic call records, schemas/calls), users (a users/owners export: people's names, written to ClickHouse), hubspot-deals (a HubSpot deals export with its date entered/exited stage columns), pipedrive-deals (a Pipedrive deals export), or auto: csv with --mapping, ndjson for .ndjson/.jsonl/.json, else salesforce-history")
	pipelines := fs.String("pipelines", "", "with --format hubspot-deals: the deal pipelines `file`, the JSON HubSpot's GET /crm/v3/pipelines/deals answers: stage ids become their labels, and entering a closed stage closes the deal (won at probability 1.0, else lost)")
	timezone := fs.String("timezone", "UTC", "with --format hubspot-deals or pipedrive-deals: the time `zone` (an IANA name, e.g. Europe/Berlin) of the export's times written without an offset, the CRM account's time zone")
	mapping := fs.String("mapping", "", "YAML column-mapping `file` of a generic CSV export: one row per change (shape: history) or one row per deal (shape: deals)")
	tenant := fs.String("tenant", "demo", "tenant the CSV rows belong to; with NDJSON, when given, an event of another tenant is refused")
	currency := fs.String("currency", "", "currency of the amounts when the file has no currency column, e.g. USD")
	encoding := fs.String("encoding", "auto", "CSV text encoding: utf-8, windows-1252, or auto (UTF-8 if valid, else Windows-1252)")
	strict := fs.Bool("strict", false, "import nothing when a row is refused, naming it; without it refused rows are reported and the others imported")
	batch := fs.Int("batch", 5000, "events published and acknowledged at a time; the checkpoint advances after each batch")
	natsURL := fs.String("nats", "", "NATS `URL`; empty: the embedded server of the commitflow run under --data, while it runs")
	data := fs.String("data", config.DefaultDataDir(), "data `directory` of commitflow run: where its embedded NATS is found and the import checkpoints are kept")
	clickhouse := fs.String("clickhouse", "", "with --format users: ClickHouse `DSN`; empty: the managed server of the commitflow run under --data, while it runs")
	cluster := fs.String("clickhouse-cluster", "", "with --format users: the ClickHouse cluster `name` of the tables, as given to commitflow run")
	sellers := fs.String("seller-domains", "", "with --format calls-json: the seller's e-mail domains, comma-separated (acme.com,acme.io); a participant or next step whose record gives no side is the seller's when its e-mail is in one of them (or a subdomain), else the buyer's")
	retry := fs.Duration("publish-retry", bus.DefaultRetryFor, "how long a batch keeps retrying while NATS acknowledges none of its events before import fails (the import resumes when run again)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: commitflow import [--format F] [--mapping FILE.yaml] [--tenant T] [flags] FILE")
		fs.PrintDefaults()
	}
	if err := config.Parse(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import: want one file")
	}
	if *retry <= 0 {
		return fmt.Errorf("import: --publish-retry %s: want a positive duration", *retry)
	}
	// NDJSON events keep their tenants unless one is given (on the
	// command line or in COMMITFLOW_TENANT: config.Parse sets the flag).
	ndjsonTenant := ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "tenant" {
			ndjsonTenant = *tenant
		}
	})
	path := fs.Arg(0)
	if *format == "users" {
		content, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		return importUsers(ctx, usersImport{path: path, content: content, tenant: *tenant, encoding: *encoding, strict: *strict,
			clickhouse: *clickhouse, cluster: *cluster, data: *data}, stdout)
	}
	sellerDomains, err := webhook.ParseSellerDomains(*sellers)
	if err != nil {
		return fmt.Errorf("import: --seller-domains: %w", err)
	}
	in, key, err := openImport(path, *format, *mapping, *tenant, ndjsonTenant, *currency, *encoding, sellerDomains, dealsOptions{pipelines: *pipelines, timezone: *timezone})
	if err != nil {
		return fmt.Errorf("import: %s: %w", path, err)
	}
	if c, ok := in.(io.Closer); ok {
		defer c.Close()
	}

	log := newLogger("warn")
	url, from, err := locateNATS(*natsURL, *data)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	pub, drain, err := publisher(ctx, url, from, *retry, log)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer drain()
	sum, err := importer.Run(ctx, in, key, pub, importer.Options{
		Checkpoint: importer.CheckpointPath(*data, key), Strict: *strict, BatchSize: *batch, Progress: stderr,
	})
	printImportSummary(stdout, path, sum)
	if err != nil {
		return fmt.Errorf("%w (run the same command again to resume)", err)
	}
	return nil
}

// openImport opens the file at path in the format asked for and returns
// its rows and the key of its checkpoint. A CSV or NDJSON file is read
// deal by deal from the file (importer.File, importer.NDJSONFile), which
// must be closed; JSON of calls is parsed in memory. ndjsonTenant is the tenant NDJSON events must have;
// empty for any. sellers are the seller's e-mail domains of calls-json;
// deals the options of hubspot-deals and pipedrive-deals.
func openImport(path, format, mapping, tenant, ndjsonTenant, currency, encoding string, sellers []string, deals dealsOptions) (importer.Input, string, error) {
	if format == "auto" {
		switch ext := strings.ToLower(filepath.Ext(path)); {
		case mapping != "":
			format = "csv"
		case ext == ".ndjson" || ext == ".jsonl" || ext == ".json":
			format = "ndjson"
		default:
			format = "salesforce-history"
		}
	}
	if mapping != "" && format != "csv" {
		return nil, "", fmt.Errorf("--mapping is for --format csv, not %s", format)
	}
	if deals.pipelines != "" && format != "hubspot-deals" {
		return nil, "", fmt.Errorf("--pipelines is for --format hubspot-deals, not %s", format)
	}
	var (
		open  func(path string) (*importer.File, error)
		parts = []string{format, tenant, currency, encoding}
	)
	switch format {
	case "salesforce-history":
		h := importer.SalesforceHistory(tenant, currency)
		h.Encoding = encoding
		open = h.Open
	case "salesforce-field-history":
		open = importer.SalesforceFieldHistory(tenant, currency, encoding).Open
	case "salesforce-opportunity":
		open = importer.SalesforceOpportunity(tenant, currency, encoding).Open
	case "salesforce-contact-roles":
		open = importer.SalesforceContactRoles(tenant, encoding).Open
	case "hubspot-deals", "pipedrive-deals":
		var err error
		if open, parts, err = dealsExport(format, tenant, currency, deals); err != nil {
			return nil, "", err
		}
	case "ndjson":
		f, err := importer.OpenNDJSON(path, ndjsonTenant)
		if err != nil {
			return nil, "", err
		}
		return f, importer.DigestKey(f.Digest(), format, ndjsonTenant), nil
	case "csv":
		if mapping == "" {
			return nil, "", errors.New("--format csv needs --mapping FILE.yaml")
		}
		m, err := os.ReadFile(mapping)
		if err != nil {
			return nil, "", err
		}
		p, err := importer.ParseMapping(m, tenant, currency, encoding)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", mapping, err)
		}
		open, parts = p.Open, append(parts, string(m))
	default:
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		rows, key, err := parseImport(content, format, tenant, sellers)
		return rows, key, err
	}
	f, err := open(path)
	if err != nil {
		return nil, "", err
	}
	return f, importer.DigestKey(f.Digest(), parts...), nil
}

// parseImport parses content, a file in format but a CSV or NDJSON, and
// returns its rows and the key of its checkpoint.
func parseImport(content []byte, format, tenant string, sellers []string) (importer.Rows, string, error) {
	switch format {
	case "gong-json":
		rows, err := gongRows(content, tenant)
		return rows, importer.Key(content, format, tenant), err
	case "calls-json":
		rows, err := callRows(content, tenant, sellers)
		return rows, importer.Key(content, format, tenant, strings.Join(sellers, ",")), err
	}
	return nil, "", fmt.Errorf("--format %q: want ndjson, salesforce-history, salesforce-field-history, salesforce-opportunity, salesforce-contact-roles, csv, gong-json, calls-json, hubspot-deals, pipedrive-deals or auto", format)
}

// dealsOptions are the options of the CRMs' deals exports.
type dealsOptions struct{ pipelines, timezone string }

// dealsExport returns how to open a HubSpot (with its pipelines file, if
// given) or Pipedrive deals export, its times without an offset in
// o.timezone, and the parts of its checkpoint's key.
func dealsExport(format, tenant, currency string, o dealsOptions) (func(string) (*importer.File, error), []string, error) {
	loc, err := time.LoadLocation(o.timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("--timezone: %w", err)
	}
	if format == "pipedrive-deals" {
		return importer.PipedriveDeals{Tenant: tenant, Currency: currency, Location: loc}.Open, []string{format, tenant, currency, loc.String()}, nil
	}
	p := importer.HubSpotDeals{Tenant: tenant, Currency: currency, Location: loc}
	var pl []byte
	if o.pipelines != "" {
		if pl, err = os.ReadFile(o.pipelines); err != nil {
			return nil, nil, err
		}
		if p.Pipelines, err = importer.ParseHubSpotPipelines(pl); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", o.pipelines, err)
		}
	}
	return p.Open, []string{format, tenant, currency, loc.String(), string(pl)}, nil
}

// gongRows maps the calls of Gong call data (webhook.GongCalls) to rows,
// one a call on the line it starts on, refused with the reason the
// mapping or event validation gives.
func gongRows(content []byte, tenant string) (importer.Rows, error) {
	calls, err := webhook.GongCalls(content)
	if err != nil {
		return nil, err
	}
	rows := make(importer.Rows, len(calls))
	for i, c := range calls {
		res, err := webhook.Gong(tenant, c.Data, time.Time{})
		rows[i] = mappedRow(c.Line, res, err)
	}
	return rows, nil
}

// callRows maps generic call records (webhook.CallParts) to rows, one a
// record on the line it starts on, refused with the reason the mapping or
// event validation gives.
func callRows(content []byte, tenant string, sellers []string) (importer.Rows, error) {
	parts, err := webhook.CallParts(content)
	if err != nil {
		return nil, err
	}
	calls := webhook.CallRecords{SellerDomains: sellers}
	rows := make(importer.Rows, len(parts))
	for i, p := range parts {
		res, err := calls.Map(tenant, p.Data, time.Time{})
		rows[i] = mappedRow(p.Line, res, err)
	}
	return rows, nil
}

// mappedRow is the row of line from a webhook mapping's result: its
// events, or refused with the mapping's error, its first refusal's reason
// or the first event's validation error.
func mappedRow(line int, res webhook.Result, err error) importer.Row {
	r := importer.Row{Line: line, Events: res.Events, Err: err}
	if len(res.Refused) > 0 {
		r.Events, r.Err = nil, errors.New(res.Refused[0].Reason)
	}
	for _, ev := range r.Events {
		if err := ev.Validate(); err != nil {
			return importer.Row{Line: line, Err: fmt.Errorf("%s: %w", ev.ID, err)}
		}
	}
	return r
}

// printImportSummary writes what an import did, and every refused row by
// line.
func printImportSummary(w io.Writer, path string, s importer.Summary) {
	fmt.Fprintf(w, "%s: %d rows read, %d events published", path, s.Rows, s.Events)
	if s.Resumed > 0 {
		fmt.Fprintf(w, " (resumed after %d rows published before)", s.Resumed)
	}
	fmt.Fprintf(w, ", %d rows refused\n", len(s.Refused))
	refused := slices.Clone(s.Refused)
	slices.SortStableFunc(refused, func(a, b importer.Refusal) int { return cmp.Compare(a.Line, b.Line) })
	for _, r := range refused {
		fmt.Fprintf(w, "  line %s: %s\n", strconv.Itoa(r.Line), r.Reason)
	}
}
