package backup

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kilnhq/kiln/internal/clock"
)

// Bucket is a token bucket of capacity units (RCU or WCU). Requests reserve
// an estimate before they are sent and settle the difference with the
// consumed capacity DynamoDB reports, so parallel requests see each other's
// spending. The balance may go negative (a page cost more than estimated,
// or more than the bucket holds): the next request then waits until it is
// paid back. Over any window of W
// seconds the spending is at most Rate*W + Burst plus one estimate error.
type Bucket struct {
	rate  float64 // units per second; <= 0 means unlimited
	burst float64
	clock clock.Clock

	mu     sync.Mutex
	tokens float64
	last   time.Time
	spent  float64
}

// NewBucket returns a bucket refilled at rate units/s holding at most burst
// units (default: a quarter second's worth, so no window of a few seconds
// sees much more than the budget). It starts empty: a starting dump does
// not open with a burst. rate <= 0 disables throttling (spending is still
// counted).
func NewBucket(rate, burst float64, clk clock.Clock) *Bucket {
	clk = clock.Or(clk)
	if burst <= 0 {
		burst = rate / 4
	}
	return &Bucket{rate: rate, burst: burst, clock: clk, last: clk.Now()}
}

func (b *Bucket) refill() {
	now := b.clock.Now()
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.last = now
}

// Reserve waits until the balance covers estimate (or a full bucket, for
// requests costing more than the bucket holds) and then takes it.
func (b *Bucket) Reserve(ctx context.Context, estimate float64) error {
	if b.rate <= 0 {
		return ctx.Err()
	}
	need := min(estimate, b.burst)
	for {
		b.mu.Lock()
		b.refill()
		if b.tokens >= need {
			b.tokens -= estimate
			b.mu.Unlock()
			return nil
		}
		wait := time.Duration((need-b.tokens)/b.rate*float64(time.Second)) + time.Millisecond
		b.mu.Unlock()
		if err := clock.Sleep(ctx, b.clock, wait); err != nil {
			return err
		}
	}
}

// Settle records that a request reserved estimate units and consumed actual.
func (b *Bucket) Settle(estimate, actual float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spent += actual
	if b.rate <= 0 {
		return
	}
	b.refill()
	b.tokens -= actual - estimate
}

// Spent returns the units consumed so far.
func (b *Bucket) Spent() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// Backoff computes waits with full jitter: a random duration in
// [0, min(Max, Base*2^attempt)].
type Backoff struct {
	Base, Max time.Duration
}

// Wait returns the wait before retry number attempt (0-based).
func (b Backoff) Wait(attempt int) time.Duration {
	d := b.Base << min(attempt, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}
