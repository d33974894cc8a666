package mixload

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of the proxy's /metrics: each sample's series (the
// name with its labels, as Prometheus prints them) and value. The run
// checks the proxy from outside, as an operator would: the connections it
// counted must be the ones the clients made, and its goroutines and file
// descriptors must come back to where they were once the sessions are
// gone.
type Metrics map[string]float64

// Scrape reads http://adminAddr/metrics.
func Scrape(ctx context.Context, adminAddr string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", adminAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", adminAddr, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format (samples without
// timestamps, as client_golang writes them).
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Sum adds the samples of metric name whose labels include every one of
// labels (each written name="value"). A labelled counter that never moved
// is absent, and counts 0.
func (m Metrics) Sum(name string, labels ...string) float64 {
	var total float64
	for series, v := range m {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || rest != "" && rest[0] != '{' {
			continue
		}
		all := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				all = false
				break
			}
		}
		if all {
			total += v
		}
	}
	return total
}

const ns = "rds_iam_proxy_"

// ConnectionChecks compare what the proxy counted for one upstream between
// two scrapes with what the run did: every connection the run made was
// accepted, the only ones refused were its cancel requests, and none is
// open any more. (In a run that already failed on an error the counts may
// be off by one per error: pgconn sends a cancel request of its own when
// it abandons a broken connection.)
func ConnectionChecks(before, after Metrics, upstream string, rep *Report) []Check {
	up := fmt.Sprintf("upstream=%q", upstream)
	delta := func(name string, labels ...string) int64 {
		return int64(after.Sum(name, labels...) - before.Sum(name, labels...))
	}
	accepted := delta(ns+"connections_total", up)
	cancels := delta(ns+"connections_failed_total", up, `reason="cancel_request"`)
	refused := delta(ns+"connections_failed_total", up) - cancels
	open := int64(after.Sum(ns+"connections_open", up))
	check := func(name string, got, want int64) Check {
		return Check{Name: name, Got: fmt.Sprint(got), Want: fmt.Sprint(want), OK: got == want}
	}
	return []Check{
		check("proxy: connections accepted = made", accepted, rep.Connections),
		check("proxy: cancel requests counted = sent", cancels, rep.CancelRequests),
		check("proxy: connections refused for any other reason", refused, 0),
		check("proxy: connections open at the end", open, 0),
	}
}

// Slack for Settle: what may legitimately differ from the baseline once
// every session is gone. The proxy's AWS SDK clients keep idle keep-alive
// connections to STS or IMDS (an fd and two goroutines each) that come and
// go with credential refreshes, whatever the sessions did.
const (
	goroutineSlack = 4
	fdSlack        = 2
)

// Settle waits (up to limit) until the proxy has no connection open and
// its goroutines and open fds are back to baseline, and returns the checks
// with the last scrape. Leaks of one goroutine or fd per session show up
// as hundreds over a run, far above the slack.
func Settle(ctx context.Context, adminAddr string, baseline Metrics, limit time.Duration) (Metrics, []Check) {
	deadline := time.Now().Add(limit)
	var m Metrics
	var err error
	for {
		m, err = Scrape(ctx, adminAddr)
		if err == nil && m.Sum(ns+"connections_open") == 0 &&
			m.Sum("go_goroutines") <= baseline.Sum("go_goroutines")+goroutineSlack &&
			m.Sum("process_open_fds") <= baseline.Sum("process_open_fds")+fdSlack {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, []Check{{Name: "proxy: metrics after the run", Got: err.Error(), Want: "a scrape", OK: false}}
	}
	within := func(name string, slack float64) Check {
		got, base := m.Sum(name), baseline.Sum(name)
		return Check{Name: "proxy: " + name + " after / before", Got: fmt.Sprintf("%.0f / %.0f", got, base),
			Want: fmt.Sprintf("<= before + %.0f", slack), OK: got <= base+slack}
	}
	return m, []Check{
		{Name: "proxy: connections open, all upstreams", Got: fmt.Sprint(m.Sum(ns + "connections_open")), Want: "0", OK: m.Sum(ns+"connections_open") == 0},
		within("go_goroutines", goroutineSlack),
		within("process_open_fds", fdSlack),
	}
}

// WaitIdle waits until the proxy has no connection open (the run's setup
// session is gone), then returns a scrape to use as the baseline.
func WaitIdle(ctx context.Context, adminAddr string, limit time.Duration) (Metrics, error) {
	deadline := time.Now().Add(limit)
	for {
		m, err := Scrape(ctx, adminAddr)
		if err == nil && m.Sum(ns+"connections_open") == 0 {
			return m, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%v connections still open after %s", m.Sum(ns+"connections_open"), limit)
			}
			return nil, fmt.Errorf("proxy baseline: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
