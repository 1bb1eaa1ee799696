package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
		err = fmt.Errorf("scrape %s (%s): %w", s.Target, Redacted(s.URL), err)
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
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	max := s.MaxBytes
	if max <= 0 {
		max = DefaultMaxFileBytes
	}
	return Fetch(ctx, client, s.URL, max)
}

// Fetch GETs rawURL, an endpoint serving Prometheus text, and parses the body. A status other
// than 200 is an error, and so is a body over maxBytes (reported as such, not as the parse
// error of its cut end). The errors never quote the URL, which may hold a password: callers
// name the endpoint, with Redacted.
func Fetch(ctx context.Context, client *http.Client, rawURL string, maxBytes int64) ([]Family, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, errors.New("invalid URL") // err quotes it whole
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the caller names the URL
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: maxBytes}
	fams, err := ParseText(body)
	if body.exceeded {
		return nil, fmt.Errorf("response larger than the %d byte limit", maxBytes)
	}
	return fams, err
}

// Redacted returns rawURL with its password, if any, replaced by "xxxxx", for messages and
// logs.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// limitedReader is io.LimitReader that remembers whether the limit was hit, so an oversized
// body is reported as such rather than as a truncated-text parse error.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

// Read implements io.Reader.
func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.exceeded = true
			return 0, errors.New("body too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
