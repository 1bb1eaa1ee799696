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

// maxPageUnits is what the biggest Scan page (1 MB) costs, eventually
// consistent; strongly consistent pages cost twice as much.
const maxPageUnits = 128

// pageSizer sizes a segment's Scan pages under a budget: it estimates a
// page's cost before reading it, from the cost per item seen so far (at
// first from the table's size and item count), and caps the page's Limit
// so that one page costs about the bucket's burst. Without it every
// segment's first page is a full 1 MB (128 RCU) read that the bucket only
// learns the cost of afterwards, and a starting dump overshoots its budget.
type pageSizer struct {
	target   float64 // units a page may cost; 0: unthrottled, pages are not capped
	perItem  float64 // estimated units per item; 0: unknown yet
	maxUnits float64 // cost of a full page
	limit    int32   // the user's --page-limit (0: none)
	last     float64 // cost of the last page (unthrottled estimates)
}

// probeItems is the first page's Limit when nothing is known of item sizes.
const probeItems = 16

func newPageSizer(budget *Bucket, s Schema, consistent bool, limit int32) *pageSizer {
	p := &pageSizer{maxUnits: maxPageUnits, limit: limit, last: 1}
	unit := 0.5 // RCU per 4 KB read, eventually consistent
	if consistent {
		unit, p.maxUnits = 1, 2*maxPageUnits
	}
	if budget.rate > 0 {
		p.target = max(budget.burst, unit)
	}
	if s.ItemCountEstimate > 0 && s.SizeBytesEstimate > 0 {
		p.perItem = float64(s.SizeBytesEstimate) / float64(s.ItemCountEstimate) / 4096 * unit
	}
	return p
}

// next returns the next page's Limit (0: none) and its estimated cost.
func (p *pageSizer) next() (limit int32, estimate float64) {
	if p.target <= 0 {
		return p.limit, max(p.last, 0.5)
	}
	n := int64(probeItems)
	if p.perItem > 0 {
		n = max(int64(p.target/p.perItem), 1)
	}
	if p.limit > 0 {
		n = min(n, int64(p.limit))
	}
	n = min(n, 1<<30)
	estimate = p.target
	if p.perItem > 0 {
		estimate = float64(n) * p.perItem
	}
	return int32(n), min(estimate, p.maxUnits)
}

// observe learns from a page of items that cost used units.
func (p *pageSizer) observe(items int, used float64) {
	p.last = used
	if items == 0 {
		return
	}
	per := used / float64(items)
	if p.perItem == 0 {
		p.perItem = per
		return
	}
	p.perItem = (p.perItem + per) / 2 // follow drifting item sizes, smoothly
}
