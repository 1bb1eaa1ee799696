package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnhq/kiln/backup/agentstatus"
	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// A table's lease lets exactly one agent work on it, however many instances
// and slots run kiln-backup. It needs nothing of the store but an atomic
// create (If-None-Match: * on S3, link(2) on file://): the lease is a
// sequence of generations _lease/<table>/<generation>.json, each written by
// creating the next one. Whoever creates generation g+1 holds the lease;
// renewing is creating the next generation again, so a holder that lost it
// learns so on its next renewal, and two agents racing for an expired lease
// cannot both win. Expiry is judged on each agent's own clock, never by
// comparing clocks: a standby takes over when the newest generation has not
// changed for its TTL since the standby first saw it, and the holder stops
// working TTL after it sent its last successful renewal — which is earlier.

// ErrLeaseLost is returned when another agent holds the lease now.
var ErrLeaseLost = errors.New("lease lost")

// keptGenerations is how many old generations stay in the store.
const keptGenerations = 10

// LeaseHolder says who holds, or wants, a lease.
type LeaseHolder = agentstatus.Holder

// LeaseRecord is one generation of a table's lease.
type LeaseRecord struct {
	Table      string      `json:"table"`
	Generation int64       `json:"generation"`
	Holder     LeaseHolder `json:"holder"`
	// Acquired is when the holder took the lease; Renewed when it wrote this
	// generation; Expires is Renewed+TTL by the holder's clock (for people:
	// agents judge expiry on their own clocks).
	Acquired   time.Time `json:"acquired"`
	Renewed    time.Time `json:"renewed"`
	Expires    time.Time `json:"expires"`
	TTLSeconds float64   `json:"ttlSeconds"`
	// Released is set by a holder that stopped (SIGTERM): the next agent
	// takes over at once instead of waiting for the TTL.
	Released bool `json:"released,omitempty"`
}

func (r LeaseRecord) ttl() time.Duration { return time.Duration(r.TTLSeconds * float64(time.Second)) }

func leasePrefix(table string) string { return "_lease/" + table + "/" }
func leaseKey(table string, gen int64) string {
	return fmt.Sprintf("%s%020d.json", leasePrefix(table), gen)
}

// Lease is one agent's view of a table's lease. It is safe for concurrent use.
type Lease struct {
	store store.Store
	table string
	me    LeaseHolder
	ttl   time.Duration
	clock clock.Clock

	mu       sync.Mutex
	held     bool
	gen      int64     // generation written last, while held
	acquired time.Time // when held
	deadline time.Time // the holder stops working then unless renewed
	seenGen  int64     // standby: newest generation seen, and since when
	seenAt   time.Time
	last     LeaseRecord // newest record read or written
}

// NewLease returns me's handle on table's lease in s.
func NewLease(s store.Store, table string, me LeaseHolder, ttl time.Duration, clk clock.Clock) *Lease {
	return &Lease{store: s, table: table, me: me, ttl: ttl, clock: clock.Or(clk), seenGen: -1}
}

// newest reads the newest generation; found is false when there is none.
func (l *Lease) newest(ctx context.Context) (rec LeaseRecord, gens []int64, found bool, err error) {
	for attempt := 0; ; attempt++ {
		gens, err = l.generations(ctx)
		if err != nil || len(gens) == 0 {
			return LeaseRecord{}, gens, false, err
		}
		found, err = getJSON(ctx, l.store, leaseKey(l.table, gens[len(gens)-1]), &rec)
		if err != nil || found || attempt == 2 {
			return rec, gens, found, err
		}
		// Collected between List and Get: a newer one exists; list again.
	}
}

// generations lists the lease's generations in increasing order.
func (l *Lease) generations(ctx context.Context) ([]int64, error) {
	keys, err := l.store.List(ctx, leasePrefix(l.table))
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", l.table, err)
	}
	var gens []int64
	for _, k := range keys {
		name := strings.TrimSuffix(strings.TrimPrefix(k, leasePrefix(l.table)), ".json")
		if g, err := strconv.ParseInt(name, 10, 64); err == nil && !strings.Contains(name, "/") {
			gens = append(gens, g)
		}
	}
	return gens, nil // List is sorted and names are zero-padded
}

// TryAcquire takes the lease if it is free, released or expired, and
// reports whether this agent holds it now.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.heldLocked() {
		return true, nil
	}
	l.held = false
	rec, _, found, err := l.newest(ctx)
	if err != nil {
		return false, err
	}
	now := l.clock.Now()
	next := int64(1)
	if found {
		l.last = rec
		next = rec.Generation + 1
		mine := rec.Holder.Instance == l.me.Instance && l.me.Instance != ""
		if !rec.Released && !mine {
			if rec.Generation != l.seenGen {
				l.seenGen, l.seenAt = rec.Generation, now
				return false, nil
			}
			if now.Sub(l.seenAt) < rec.ttl() {
				return false, nil
			}
		}
	}
	won, err := l.write(ctx, next, now, now, false)
	if err != nil || !won {
		l.seenGen = -1 // read the winner's record afresh next time
		return false, err
	}
	l.held, l.acquired = true, now
	return true, nil
}

// Renew extends a held lease by its TTL; ErrLeaseLost when another agent
// took it (or this holder's TTL ran out before it could renew).
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heldLocked() {
		l.held = false
		return ErrLeaseLost
	}
	won, err := l.write(ctx, l.gen+1, l.clock.Now(), l.acquired, false)
	if err != nil {
		return err
	}
	if !won {
		l.held = false
		return ErrLeaseLost
	}
	return nil
}

// Release gives a held lease up, so the next agent takes over without
// waiting for the TTL. Call it only once the work has stopped.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heldLocked() {
		return nil
	}
	l.held = false
	_, err := l.write(ctx, l.gen+1, l.clock.Now(), l.acquired, true)
	return err
}

// write creates generation gen; won is false when another agent created it
// (or anything newer) first. On success the holder's deadline moves to
// start+TTL: start is taken before the request, so it is earlier than any
// standby's first sight of the generation.
func (l *Lease) write(ctx context.Context, gen int64, start, acquired time.Time, released bool) (won bool, err error) {
	rec := LeaseRecord{Table: l.table, Generation: gen, Holder: l.me, Acquired: acquired.UTC(), Renewed: start.UTC(),
		Expires: start.Add(l.ttl).UTC(), TTLSeconds: l.ttl.Seconds(), Released: released}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	err = l.store.Create(ctx, leaseKey(l.table, gen), bytes.NewReader(append(b, '\n')))
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", l.table, err)
	}
	// A generation collected long ago can be created again by an agent that
	// read a stale listing: it holds nothing if a newer one exists.
	gens, err := l.generations(ctx)
	if err != nil {
		return false, err
	}
	if len(gens) == 0 || gens[len(gens)-1] != gen {
		return false, nil
	}
	l.gen, l.last, l.deadline = gen, rec, start.Add(l.ttl)
	for _, g := range gens[:max(len(gens)-keptGenerations, 0)] {
		l.store.Delete(ctx, leaseKey(l.table, g)) // best effort: only tidiness
	}
	return true, nil
}

func (l *Lease) heldLocked() bool { return l.held && l.clock.Now().Before(l.deadline) }

// Held reports whether this agent holds the lease and its TTL has not run out.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked()
}

// Keep renews the held lease every TTL/3 until ctx is done (it then returns
// ctx's error) or the lease is lost (ErrLeaseLost). Failed renewals are
// retried sooner; when the TTL is about to run out without one, Keep gives
// the lease up as lost so the work stops before a standby may take over.
func (l *Lease) Keep(ctx context.Context, onError func(error)) error {
	wait := l.ttl / 3
	for {
		if err := clock.Sleep(ctx, l.clock, wait); err != nil {
			return err
		}
		err := l.Renew(ctx)
		switch {
		case errors.Is(err, ErrLeaseLost):
			return err
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			onError(err)
			l.mu.Lock()
			left := l.deadline.Sub(l.clock.Now())
			if left < l.ttl/5 {
				l.held = false
				l.mu.Unlock()
				return fmt.Errorf("lease %s: no renewal within its TTL: %w", l.table, ErrLeaseLost)
			}
			l.mu.Unlock()
			wait = l.ttl / 10
		default:
			wait = l.ttl / 3
		}
	}
}

// LeaseStatus is what an agent reports about its table's lease.
type LeaseStatus = agentstatus.Lease

// Lease states.
const (
	LeaseActive  = agentstatus.Active
	LeaseStandby = agentstatus.Standby
)

// Status returns what this agent knows of the lease.
func (l *Lease) Status() LeaseStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LeaseStatus{Table: l.table, State: LeaseStandby, Holder: l.last.Holder, Generation: l.last.Generation,
		Renewed: l.last.Renewed, Expires: l.last.Expires, Released: l.last.Released}
	if l.heldLocked() {
		st.State = LeaseActive
	}
	return st
}

// writeLeaseMetrics writes st as Prometheus gauges: kiln status reads
// kiln_backup_lease_info from every instance to show who holds the lease.
func writeLeaseMetrics(w io.Writer, st LeaseStatus) {
	active := 0
	if st.State == LeaseActive {
		active = 1
	}
	fmt.Fprintf(w, "# HELP kiln_backup_lease_active 1 when this agent holds its table's lease and works, 0 on standby.\n# TYPE kiln_backup_lease_active gauge\n")
	fmt.Fprintf(w, "kiln_backup_lease_active{table=%q} %d\n", st.Table, active)
	fmt.Fprintf(w, "# HELP kiln_backup_lease_info The table's lease as this agent last saw it (value: its generation).\n# TYPE kiln_backup_lease_info gauge\n")
	fmt.Fprintf(w, "kiln_backup_lease_info{table=%q,state=%q,holder=%q,holder_host=%q,holder_release=%q,released=%q} %d\n",
		st.Table, st.State, st.Holder.Instance, st.Holder.Host, st.Holder.Release, strconv.FormatBool(st.Released), st.Generation)
	if !st.Expires.IsZero() {
		fmt.Fprintf(w, "# HELP kiln_backup_lease_expires_seconds When the lease lapses unless renewed (holder's clock, Unix seconds).\n# TYPE kiln_backup_lease_expires_seconds gauge\n")
		fmt.Fprintf(w, "kiln_backup_lease_expires_seconds{table=%q} %d\n", st.Table, st.Expires.Unix())
	}
}
