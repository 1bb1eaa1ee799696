package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Health is the health state of a target.
type Health string

// Health states of a target.
const (
	// HealthInitial is a new target that has not yet passed HealthyThreshold
	// consecutive checks; it gets no traffic.
	HealthInitial Health = "initial"
	// HealthHealthy is a target that gets traffic.
	HealthHealthy Health = "healthy"
	// HealthUnhealthy is a target that failed UnhealthyThreshold consecutive
	// checks; it gets no traffic until it passes HealthyThreshold checks.
	HealthUnhealthy Health = "unhealthy"
	// HealthDraining is a target removed by a reload that still has
	// in-flight requests.
	HealthDraining Health = "draining"
)

// target is one backend, kept across reloads as long as its id and address
// stay the same, so that its health state and counters survive.
type target struct {
	id      string
	address string

	// up is the target's own connection pool, so that retiring the target
	// closes exactly its idle connections.
	up       *upstream
	inflight atomic.Int64
	retired  atomic.Bool // removed by a reload

	mu          sync.Mutex
	health      Health
	okCount     int
	failCount   int
	lastCheck   time.Time
	lastError   string
	stopHealth  context.CancelFunc
	healthDone  chan struct{}
	healthyFlag atomic.Bool // mirror of health == healthy, read per request
}

// dialError marks an upstream error where the TCP dial failed, so that
// nothing of the request was sent and it can be retried on another target.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func newTarget(id, address string) *target {
	return &target{id: id, address: address, up: newUpstream(address), health: HealthInitial}
}

func (t *target) healthy() bool { return t.healthyFlag.Load() }

// record applies one check result to the state machine.
func (t *target) record(now time.Time, err error, hc HealthCheck) (from, to Health) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from = t.health
	t.lastCheck = now
	if err == nil {
		t.lastError = ""
		t.okCount++
		t.failCount = 0
		if (t.health == HealthInitial || t.health == HealthUnhealthy) && t.okCount >= hc.HealthyThreshold {
			t.health = HealthHealthy
		}
	} else {
		t.lastError = err.Error()
		t.failCount++
		t.okCount = 0
		if (t.health == HealthHealthy || t.health == HealthInitial) && t.failCount >= hc.UnhealthyThreshold {
			t.health = HealthUnhealthy
		}
	}
	t.healthyFlag.Store(t.health == HealthHealthy)
	return from, t.health
}

// check performs one active health check.
func (t *target) check(ctx context.Context, client *http.Client, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout.Std())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.address+hc.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kiln-lb-health")
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return ue.Unwrap() // drop the "Get <url>:" prefix, the address is known
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// snapshot returns the target's state for /status.
func (t *target) snapshot(draining bool) TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TargetStatus{
		ID:              t.id,
		Address:         t.address,
		Health:          t.health,
		LastError:       t.lastError,
		ConsecutiveOK:   t.okCount,
		ConsecutiveFail: t.failCount,
		Inflight:        t.inflight.Load(),
	}
	if draining {
		st.Health = HealthDraining
	}
	if !t.lastCheck.IsZero() {
		st.LastCheck = t.lastCheck.UTC().Format(time.RFC3339Nano)
	}
	return st
}
