// Package loadgen sends a bounded stream of requests through a load balancer and counts
// what came back: the proof that traffic never saw a bad slot.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound the load. Every bound is required: a load loop never runs unbounded.
type Options struct {
	URL      string
	Workers  int
	MaxTotal int64
	MaxTime  time.Duration
	// Pause between two requests of one worker.
	Pause time.Duration
	// VersionHeader names the response header that carries the serving release.
	VersionHeader string
}

// Report is what the load saw.
type Report struct {
	Sent     int64
	Failed   int64
	Versions map[string]int64
	// Errors holds the first few failures, for the message.
	Errors  []string
	Elapsed time.Duration
}

// String says it in one line.
func (r Report) String() string {
	var vs []string
	for v, n := range r.Versions {
		vs = append(vs, fmt.Sprintf("%s: %d", v, n))
	}
	sort.Strings(vs)
	return fmt.Sprintf("%d requests sent, %d failed (served by version %s)", r.Sent, r.Failed, strings.Join(vs, ", "))
}

// Run is a running load.
type Run struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	rep    Report
	start  time.Time
	sent   atomic.Int64
}

// Start sends requests until Stop, ctx's end, MaxTotal requests or MaxTime.
func Start(ctx context.Context, o Options) (*Run, error) {
	if o.Workers <= 0 || o.MaxTotal <= 0 || o.MaxTime <= 0 {
		return nil, fmt.Errorf("loadgen: workers, max total and max time must all be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime)
	r := &Run{cancel: cancel, done: make(chan struct{}), start: time.Now(), rep: Report{Versions: map[string]int64{}}}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Workers}}
	var wg sync.WaitGroup
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if r.sent.Add(1) > o.MaxTotal {
					return
				}
				r.one(ctx, client, o)
				if o.Pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(o.Pause):
					}
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		client.CloseIdleConnections()
		r.mu.Lock()
		r.rep.Elapsed = time.Since(r.start)
		r.mu.Unlock()
		close(r.done)
	}()
	return r, nil
}

func (r *Run) one(ctx context.Context, client *http.Client, o Options) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		r.record("", err.Error())
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			r.sent.Add(-1) // stopped by us, not failed by the service
			return
		}
		r.record("", err.Error())
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil && ctx.Err() != nil:
		r.sent.Add(-1)
	case err != nil:
		r.record("", "read body: "+err.Error())
	case resp.StatusCode != http.StatusOK:
		r.record("", fmt.Sprintf("HTTP %d", resp.StatusCode))
	default:
		r.record(resp.Header.Get(o.VersionHeader), "")
	}
}

func (r *Run) record(version, failure string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Sent++
	if failure != "" {
		r.rep.Failed++
		if len(r.rep.Errors) < 5 {
			r.rep.Errors = append(r.rep.Errors, failure)
		}
		return
	}
	r.rep.Versions[version]++
}

// Stop ends the load and returns what it saw.
func (r *Run) Stop() Report {
	r.cancel()
	<-r.done
	return r.Report()
}

// Report returns what the load saw so far.
func (r *Run) Report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	rep.Versions = map[string]int64{}
	for k, v := range r.rep.Versions {
		rep.Versions[k] = v
	}
	rep.Errors = append([]string(nil), r.rep.Errors...)
	return rep
}
