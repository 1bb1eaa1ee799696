package testpeers

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// ConsumedUnits returns the capacity units a DynamoDB JSON response body
// reports in ConsumedCapacity (one object, or a list as BatchWriteItem
// answers), 0 when it reports none.
func ConsumedUnits(body []byte) float64 {
	var parsed struct{ ConsumedCapacity json.RawMessage }
	if json.Unmarshal(body, &parsed) != nil || parsed.ConsumedCapacity == nil {
		return 0
	}
	var one struct{ CapacityUnits float64 }
	if json.Unmarshal(parsed.ConsumedCapacity, &one) == nil {
		return one.CapacityUnits
	}
	var many []struct{ CapacityUnits float64 }
	json.Unmarshal(parsed.ConsumedCapacity, &many)
	units := 0.0
	for _, c := range many {
		units += c.CapacityUnits
	}
	return units
}

// CapacityLog records consumed capacity with the time it was reported.
type CapacityLog struct {
	mu     sync.Mutex
	events []capacityEvent
}

type capacityEvent struct {
	at    time.Time
	units float64
}

// Record adds units consumed at at.
func (l *CapacityLog) Record(at time.Time, units float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, capacityEvent{at, units})
}

// MaxWindow returns the most capacity consumed in any window of length d
// (windows start at a recorded event), the total, and the time from the
// first to the last event.
func (l *CapacityLog) MaxWindow(d time.Duration) (peak, total float64, span time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.events {
		sum := 0.0
		for _, f := range l.events[i:] {
			if f.at.Sub(e.at) >= d {
				break
			}
			sum += f.units
		}
		peak = max(peak, sum)
		total += e.units
	}
	if n := len(l.events); n > 1 {
		span = l.events[n-1].at.Sub(l.events[0].at)
	}
	return peak, total, span
}

// CapacityMeter is a proxy in front of a DynamoDB endpoint that records the
// capacity every answer reports consumed, whoever the client is: the
// budget of several processes is measured where they all meet.
type CapacityMeter struct {
	URL string
	CapacityLog
	target string
}

// NewCapacityMeter starts a meter on 127.0.0.1 forwarding to target; it is
// stopped on t.Cleanup.
func NewCapacityMeter(t TB, target string) *CapacityMeter {
	m := &CapacityMeter{target: target}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// ServeHTTP forwards one request and records its consumed capacity.
func (m *CapacityMeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, m.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if units := ConsumedUnits(out); units > 0 {
		m.Record(time.Now(), units)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// Sum returns the capacity consumed in the window [from, from+d).
func (l *CapacityLog) Sum(from time.Time, d time.Duration) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	sum := 0.0
	for _, e := range l.events {
		if !e.at.Before(from) && e.at.Sub(from) < d {
			sum += e.units
		}
	}
	return sum
}
