package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// Concurrent is what API's concurrent mode measured: Clients clients
// replaying the dashboard's requests for Duration.
type Concurrent struct {
	Clients  int
	Duration time.Duration
	Cache    bool // served with the answer cache
	// Requests counts the answers of every kind; OK the 200s, Busy the
	// 503s (the server's bound), Errors the rest (other statuses and
	// failed requests).
	Requests, OK, Busy, Errors int
	// P50, P95, P99 and Max are of every answer, whatever its status;
	// OKP50, OKP95 and OKP99 of the 200s alone (a fast 503 is no answer).
	P50, P95, P99, Max  time.Duration
	OKP50, OKP95, OKP99 time.Duration
}

// dashboardQueries are the requests the dashboard's page makes for the
// metrics of one view (panels.js: funnel, trend, cycle time, stalls,
// missed, movement, CRM stages, forecast), on data ending at end.
func dashboardQueries(end time.Time) []apiQuery {
	from, to, asOf := end.AddDate(-1, 0, 0).Format(time.DateOnly), end.Format(time.DateOnly), end.Format(time.DateOnly)
	rng := "from=" + from + "&to=" + to + "&as_of=" + asOf
	return []apiQuery{
		{"funnel", rng},
		{"funnel", rng + "&interval=month"},
		{"cycle-time", rng},
		{"stalls", "as_of=" + asOf + "&page=1&page_size=20"},
		{"missed", rng},
		{"movement", rng},
		{"stage-history", "as_of=" + asOf},
		{"forecast", "as_of=" + asOf},
	}
}

// concurrent runs clients clients against base for d, each asking the
// dashboard's requests one after another, starting at a different one.
func concurrent(ctx context.Context, base string, clients int, d time.Duration, end time.Time) Concurrent {
	res := Concurrent{Clients: clients, Duration: d}
	qs := dashboardQueries(end)
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu      sync.Mutex
		lat, ok []time.Duration // every answer's, the 200s'
		wg      sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			var mine, mineOK []time.Duration
			var busy, errs int
			for i := c; ctx.Err() == nil; i++ {
				q := qs[i%len(qs)]
				t0 := time.Now()
				code := getStatus(ctx, client, base+"/v1/"+q.name+"?tenant="+tenant+"&"+q.query)
				if ctx.Err() != nil && code == 0 {
					break // cut off by the end of the run
				}
				took := time.Since(t0)
				mine = append(mine, took)
				switch code {
				case http.StatusOK:
					mineOK = append(mineOK, took)
				case http.StatusServiceUnavailable:
					busy++
				default:
					errs++
				}
			}
			mu.Lock()
			lat, ok = append(lat, mine...), append(ok, mineOK...)
			res.Busy, res.Errors = res.Busy+busy, res.Errors+errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Duration = time.Since(start)
	res.Requests, res.OK = len(lat), len(ok)
	res.P50, res.P95, res.P99 = quantile(lat, 50), quantile(lat, 95), quantile(lat, 99)
	res.OKP50, res.OKP95, res.OKP99 = quantile(ok, 50), quantile(ok, 95), quantile(ok, 99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res
}

// quantile sorts d and returns its p-th percentile, 0 when d is empty.
func quantile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

// getStatus fetches u, discarding the body, and returns the status code,
// 0 when the request failed.
func getStatus(ctx context.Context, client *http.Client, u string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}

// Write prints c as one line of a table with a header.
func (c Concurrent) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cache := "off"
	if c.Cache {
		cache = "on"
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Fprintf(tw, "clients\tseconds\tcache\trequests/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\t200\t503\terrors\t200s' p50/p95/p99 ms\t\n")
	fmt.Fprintf(tw, "%d\t%.0f\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%.0f/%.0f/%.0f\t\n", c.Clients, c.Duration.Seconds(), cache,
		float64(c.Requests)/c.Duration.Seconds(), ms(c.P50), ms(c.P95), ms(c.P99), ms(c.Max), c.OK, c.Busy, c.Errors,
		ms(c.OKP50), ms(c.OKP95), ms(c.OKP99))
	return tw.Flush()
}
