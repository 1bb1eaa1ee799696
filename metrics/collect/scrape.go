package collect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Scrape fetches a local endpoint that serves Prometheus text (the app's /metrics,
// kiln-backup's progress) and re-exposes its families with a kiln_target label added to every
// sample, so two targets exposing the same series never collide. It also yields
// kiln_metrics_scrape_up and kiln_metrics_scrape_duration_seconds for the target.
type Scrape struct {
	// Target names the endpoint (the value of the kiln_target label).
	Target string
	// URL is the endpoint's address.
	URL string
	// Timeout bounds one scrape.
	Timeout time.Duration
	// MaxBytes bounds the response body; 0 means DefaultMaxFileBytes.
	MaxBytes int64
	// Client is the HTTP client; nil means a client without keep-alive pooling limits.
	Client *http.Client
	// Now is the clock for the duration metric; nil means time.Now.
	Now func() time.Time
	// Raw, when set, receives the families as the endpoint served them (without the added
	// label) after each successful scrape; the summary window reads the app's counters here.
	// It runs synchronously and must not retain fams.
	Raw func(at time.Time, fams []Family)
}

// Name implements Collector.
func (s *Scrape) Name() string { return "scrape:" + s.Target }

// Collect implements Collector.
func (s *Scrape) Collect(ctx context.Context, fams []Family) ([]Family, error) {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	got, err := s.fetch(ctx)
	took := now().Sub(start).Seconds()
	up := 1.0
	if err != nil {
		up = 0
		err = fmt.Errorf("scrape %s (%s): %w", s.Target, s.URL, err)
	} else {
		if s.Raw != nil {
			s.Raw(start, got)
		}
		target := Label{"kiln_target", s.Target}
		for i := range got {
			for j := range got[i].Samples {
				ls := got[i].Samples[j].Labels
				got[i].Samples[j].Labels = append(ls[:len(ls):len(ls)], target)
			}
		}
		fams = append(fams, got...)
	}
	labels := []Label{{"target", s.Target}}
	fams = append(fams,
		Family{Name: "kiln_metrics_scrape_up", Help: "1 if the last scrape of the target succeeded.", Type: Gauge,
			Samples: []Sample{{"kiln_metrics_scrape_up", labels, up}}},
		Family{Name: "kiln_metrics_scrape_duration_seconds", Help: "How long the last scrape of the target took.", Type: Gauge,
			Samples: []Sample{{"kiln_metrics_scrape_duration_seconds", labels, took}}})
	return fams, err
}

func (s *Scrape) fetch(ctx context.Context) ([]Family, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	max := s.MaxBytes
	if max <= 0 {
		max = DefaultMaxFileBytes
	}
	body := io.LimitReader(resp.Body, max+1)
	lr := &countingReader{r: body}
	fams, err := ParseText(lr)
	if err != nil {
		return nil, err
	}
	if lr.n > max {
		return nil, fmt.Errorf("response is over the %d byte limit", max)
	}
	return fams, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

// Read implements io.Reader.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
