package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/report"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// cmdReport prints one metric: commitflow report NAME [flags]. Its flags
// are the API's query parameters (window_days becomes --window-days), read
// by the same parse functions as the API. It queries ClickHouse, or with
// --api asks a running server for the same answer.
func cmdReport(ctx context.Context, args []string, stdout io.Writer) error {
	eps := api.Endpoints()
	names := make([]string, len(eps))
	for i, e := range eps {
		names[i] = e.Name
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stdout, "usage: commitflow report %s [flags]\n\nRun \"commitflow report NAME -h\" for its flags.\n", strings.Join(names, "|"))
		if len(args) == 0 {
			return errors.New("report: which metric?")
		}
		return flag.ErrHelp
	}
	var ep *api.Endpoint
	for i := range eps {
		if eps[i].Name == args[0] {
			ep = &eps[i]
		}
	}
	if ep == nil {
		return fmt.Errorf("report: unknown metric %q (want %s)", args[0], strings.Join(names, ", "))
	}

	s := newSetup("report "+ep.Name, stdout, "").withCommon()
	fs, c := s.fs, &s.c
	fs.Lookup("clickhouse").Usage = "ClickHouse `DSN`; empty: the managed server of the commitflow run under --data, while it runs"
	ladderFile := fs.String("ladder", "", "ladder configuration `FILE` the states were derived with (of every tenant without its own in --ladders); empty with --ladders empty: the ladders of the commitflow run under --data while it runs, else the shipped default")
	laddersDir := fs.String("ladders", "", "`DIR`ectory of per-tenant ladders the states were derived with, <tenant>.yaml and optionally default.yaml")
	format := fs.String("format", "table", "output format: table, csv or json")
	only := fs.String("table", "", "print only this table ("+strings.Join(report.TableNames(ep.Name), ", ")+"); csv prints the first when none is given")
	timeout := fs.Duration("timeout", api.DefaultTimeout, "query timeout")
	apiURL := fs.String("api", "", "base `URL` of a running commitflow server to ask over HTTP instead of ClickHouse (e.g. https://commitflow.example.com): its data, ladders and rates answer, and --clickhouse, --data, --ladder, --ladders and --fx-rates are not used")
	token := fs.String("token", "", "bearer `token` for --api; the server answers for its tenant, which --tenant, when given, must be")
	fxRates, fxBase := fxFlags(fs)
	params := make(map[string]*string, len(ep.Params))
	for _, p := range ep.Params {
		params[p.Name] = fs.String(flagName(p.Name), "", p.Doc)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: commitflow report %s [flags]\n\n%s\n\nflags:\n", ep.Name, ep.Doc)
		fs.PrintDefaults()
	}
	if err := s.parse(ctx, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("report %s: unexpected argument %q", ep.Name, fs.Arg(0))
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return fmt.Errorf("report: --format: want table, csv or json, got %q", *format)
	}
	if *only != "" && !slices.Contains(report.TableNames(ep.Name), *only) {
		return fmt.Errorf("report: --table: want one of %s, got %q", strings.Join(report.TableNames(ep.Name), ", "), *only)
	}
	if !event.ValidToken(c.Tenant) && !(*apiURL != "" && *token != "" && c.Tenant == "") {
		return errors.New("report: --tenant (or COMMITFLOW_TENANT) must name a tenant")
	}

	// Only the flags given become parameters, so defaults are the API's.
	v := url.Values{}
	fs.Visit(func(f *flag.Flag) {
		for name, val := range params {
			if flagName(name) == f.Name {
				v.Set(name, *val)
			}
		}
	})
	if err := api.Check(ep.Name, v); err != nil {
		return fmt.Errorf("report %s: %w", ep.Name, cliParamError(err))
	}
	if *apiURL != "" {
		qctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, names, err := askAPI(qctx, *apiURL, *token, c.Tenant, *ep, v)
		if err != nil {
			return fmt.Errorf("report %s: %w", ep.Name, err)
		}
		return report.WriteNamed(stdout, ep.Name, res, *format, *only, names)
	}
	dsn, err := locateClickHouse(c.ClickHouse, c.Data)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	l, ladderFlags, ladderName, err := reportLadder(*ladderFile, *laddersDir, c.Data, c.Tenant)
	if err != nil {
		return err
	}
	rates, err := loadRates(*fxRates, *fxBase)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{Cluster: c.ClickHouseCluster, Logger: s.log})
	if err != nil {
		return err
	}
	defer st.Close()
	ok, err := st.Migrated(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("report: the ClickHouse schema is not migrated; run commitflow migrate")
	}
	qctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	pin := snapshot.New(st.Conn())
	res, err := api.Query(qctx, metrics.NewWithOptions(st.Conn(), metrics.Options{Pinner: pin, Rates: rates}), forecast.NewWithOptions(st.Conn(), forecast.Options{Pinner: pin, Rates: rates}), l, ep.Name, c.Tenant, v)
	var le *metrics.LadderError
	if errors.As(err, &le) {
		replay := "commitflow replay --tenant " + c.Tenant
		replay += ladderFlags
		return fmt.Errorf("report %s: %w (%s): pass the ladder file they were derived with, --ladder FILE, or replay them with this one: %s",
			ep.Name, err, ladderName, replay)
	}
	if err != nil {
		return fmt.Errorf("report %s: %w", ep.Name, cliParamError(err))
	}
	owners := map[string]string{}
	if *format == "table" {
		ps, err := people.New(st.Conn()).Lookup(qctx, c.Tenant, api.OwnerIDs(res))
		if err != nil {
			return fmt.Errorf("report %s: %w", ep.Name, err)
		}
		for id, p := range ps {
			owners[id] = p.Name
		}
	}
	return report.WriteNamed(stdout, ep.Name, res, *format, *only, owners)
}

// reportLadder loads the ladder of tenant report answers with: from the
// file and directory given, else from those of the `commitflow run` under
// data, else the shipped default. It returns the ladder, the flags that
// name it to replay ("" for the default) and how to name it in messages.
func reportLadder(file, dir, data, tenant string) (*ladder.Ladder, string, string, error) {
	run, src := "", ""
	if file == "" && dir == "" {
		info, err := readRunInfo(data)
		switch {
		case errors.Is(err, errNoRun) || err == nil && info.Ladder == "" && info.Ladders == "":
			return ladder.Default(), "", "the shipped default", nil
		case err != nil:
			return nil, "", "", fmt.Errorf("report: %w", err)
		}
		file, dir = info.Ladder, info.Ladders
		run, src = "the ladder of commitflow run, ", info.source(data)
	}
	ls, err := ladder.LoadSet(file, dir)
	if err != nil && src != "" {
		return nil, "", "", fmt.Errorf("report: the ladder of commitflow run (%s): %w", src, err)
	}
	if err != nil {
		return nil, "", "", err
	}
	var flags, name string
	if file != "" {
		flags, name = " --ladder "+file, file
	}
	if dir != "" {
		flags += " --ladders " + dir
		switch {
		case slices.Contains(ls.Tenants(), tenant):
			name = tenant + "'s ladder in " + dir
		case file == "":
			name = "the default ladder of " + dir
		}
	}
	return ls.For(tenant), flags, run + name, nil
}

// flagName turns a parameter name into its flag: window_days → window-days.
func flagName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// cliParamError names the flag of a parameter error (a *param.Error, from
// the API's parser, the metric packages or a server's 400).
func cliParamError(err error) error {
	if pe := param.As(err); pe != nil {
		return fmt.Errorf("--%s: %s", flagName(pe.Param), pe.Reason)
	}
	return err
}

// askAPI asks the commitflow server at base for the answer of ep with the
// parameters v, as tenant (sent when given; with a token the server
// answers for the token's tenant), and returns it with the names of the
// people it names by owner id. A refusal is an error saying what the
// server said: a bad parameter names its flag, 401 and 403 the token, 503
// when to retry.
func askAPI(ctx context.Context, base, token, tenant string, ep api.Endpoint, v url.Values) (any, map[string]string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("--api: want an http or https URL, got %q", base)
	}
	u = u.JoinPath(ep.Path)
	q := url.Values{}
	for name, vals := range v {
		q[name] = vals
	}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	q.Set("format", "json")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("ask %s: read the answer: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, apiRefusal(base, resp, body)
	}
	res, ps, err := api.DecodeAnswer(ep.Name, body)
	if err != nil {
		return nil, nil, fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	names := make(map[string]string, len(ps))
	for id, p := range ps {
		names[id] = p.Name
	}
	return res, names, nil
}

// apiRefusal says why the server at base did not answer: its error and,
// by status, what to do.
func apiRefusal(base string, resp *http.Response, body []byte) error {
	var e struct {
		Error string     `json:"error"`
		Param string     `json:"param"`
		Code  param.Code `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
		if len(e.Error) > 200 {
			e.Error = e.Error[:200] + "…"
		}
	}
	status := resp.Status
	switch resp.StatusCode {
	case http.StatusBadRequest:
		if e.Param != "" {
			return cliParamError(&param.Error{Param: e.Param, Code: e.Code, Reason: e.Error})
		}
	case http.StatusUnauthorized:
		return fmt.Errorf("the server at %s refused the request (%s): %s; pass its bearer token with --token (or COMMITFLOW_TOKEN)", base, status, e.Error)
	case http.StatusForbidden:
		return fmt.Errorf("the server at %s refused the request (%s): %s", base, status, e.Error)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if after := resp.Header.Get("Retry-After"); after != "" {
			return fmt.Errorf("the server at %s is busy (%s): %s; retry in %s seconds (Retry-After)", base, status, e.Error, after)
		}
	}
	return fmt.Errorf("the server at %s answered %s: %s", base, status, e.Error)
}
