package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backup/agentstatus"
	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/internal/testpeers"
)

// leaseStores are both store kinds, S3 being gofakes3 over HTTP.
func leaseStores(t *testing.T) map[string]store.Store {
	t.Helper()
	awsEnv(t)
	s3s, err := store.Open(context.Background(), "s3://kiln-leases/fleet", store.Options{S3Endpoint: testpeers.S3(t), S3PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]store.Store{"file": dirStore(t), "s3": s3s}
}

// TestLeaseRaces runs 100 rounds of acquire, renew, expire, steal and
// release races among six agents on each store; after every race exactly
// one agent holds the lease (none after a release).
func TestLeaseRaces(t *testing.T) {
	const agents, rounds, ttl = 6, 100, 30 * time.Second
	for name, s := range leaseStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewFake(time.Unix(1_000_000_000, 0))
			leases := make([]*Lease, agents)
			for i := range leases {
				leases[i] = NewLease(s, "orders", LeaseHolder{Instance: fmt.Sprintf("i-%d", i), Host: "h", Release: "1.0.0"}, ttl, clk)
			}
			// race runs f for every agent at once; the results say who holds.
			race := func(f func(i int) error) {
				var wg sync.WaitGroup
				for i := range leases {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := f(i); err != nil && !errors.Is(err, ErrLeaseLost) {
							t.Errorf("agent %d: %v", i, err)
						}
					}()
				}
				wg.Wait()
			}
			acquire := func(i int) error { _, err := leases[i].TryAcquire(ctx); return err }
			holder := func(round int, what string) int {
				t.Helper()
				var hs []int
				for i, l := range leases {
					if l.Held() {
						hs = append(hs, i)
					}
				}
				if len(hs) != 1 {
					t.Fatalf("round %d, after %s: holders %v, want exactly one", round, what, hs)
				}
				return hs[0]
			}
			for round := range rounds {
				race(acquire)
				h := holder(round, "acquire")
				// Renewing races standbys trying to take a live lease.
				race(func(i int) error {
					if i == h {
						return leases[i].Renew(ctx)
					}
					return acquire(i)
				})
				if got := holder(round, "renew"); got != h {
					t.Fatalf("round %d: agent %d took a live lease from %d", round, got, h)
				}
				// The holder stops renewing (killed). Standbys see the newest
				// generation, the TTL passes, and all race for it.
				race(acquire)
				holder(round, "standby")
				clk.Advance(ttl + time.Second)
				if leases[h].Held() {
					t.Fatalf("round %d: holder %d still holds after its TTL", round, h)
				}
				race(acquire)
				w := holder(round, "steal")
				race(func(i int) error {
					if i == w {
						return nil
					}
					if err := leases[i].Renew(ctx); !errors.Is(err, ErrLeaseLost) {
						return fmt.Errorf("renew by a non-holder: %v, want ErrLeaseLost", err)
					}
					return nil
				})
				if got := holder(round, "stale renewals"); got != w {
					t.Fatalf("round %d: holder changed to %d by stale renewals", round, got)
				}
				if st := leases[(w+1)%agents].Status(); st.State != LeaseStandby || st.Holder.Instance != fmt.Sprintf("i-%d", w) {
					// The standby's view is from its last read, which was
					// before the steal: refresh it.
					acquire((w + 1) % agents)
					if st = leases[(w+1)%agents].Status(); st.State != LeaseStandby || st.Holder.Instance != fmt.Sprintf("i-%d", w) {
						t.Fatalf("round %d: standby reports %+v, want holder i-%d", round, st, w)
					}
				}
				// A stopping holder releases: the next round's acquire race
				// does not wait for the TTL.
				if err := leases[w].Release(ctx); err != nil {
					t.Fatal(err)
				}
				for i, l := range leases {
					if l.Held() {
						t.Fatalf("round %d: agent %d holds after the release", round, i)
					}
				}
			}
			gens, err := leases[0].generations(ctx)
			if err != nil || len(gens) > keptGenerations || len(gens) == 0 {
				t.Fatalf("old generations are not collected: %d kept (%v)", len(gens), err)
			}
		})
	}
}

// TestLeaseStaleGeneration: an agent that creates a generation collected
// long ago (from a stale listing) does not hold the lease.
func TestLeaseStaleGeneration(t *testing.T) {
	ctx := context.Background()
	s := dirStore(t)
	clk := clock.NewFake(time.Unix(1_000_000_000, 0))
	a := NewLease(s, "t", LeaseHolder{Instance: "a"}, time.Minute, clk)
	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for range keptGenerations + 5 {
		if err := a.Renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b := NewLease(s, "t", LeaseHolder{Instance: "b"}, time.Minute, clk)
	if won, err := b.write(ctx, 1, clk.Now(), clk.Now(), false); won || err != nil {
		t.Fatalf("re-creating generation 1: won=%v err=%v, want a loss", won, err)
	}
	if !a.Held() || b.Held() {
		t.Fatal("the stale write changed who holds the lease")
	}
}

// TestLeaseOnTheStatusEndpoint: the agent's metrics port says whether it
// works or stands by, and who holds the lease, in /metrics and /v1/lease.
func TestLeaseOnTheStatusEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := dirStore(t)
	clk := clock.NewFake(time.Now())
	me := LeaseHolder{Instance: "shop-blue-0", Host: "h1", Release: "2.0.0"}
	holder, standby := NewLease(s, "orders", me, time.Minute, clk), NewLease(s, "orders", LeaseHolder{Instance: "shop-blue-1"}, time.Minute, clk)
	for _, l := range []*Lease{holder, standby} {
		if _, err := l.TryAcquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		lease  *Lease
		state  string
		active string
	}{{holder, LeaseActive, "1"}, {standby, LeaseStandby, "0"}} {
		p := newProgress("agent")
		p.Lease.Store(tc.lease)
		addr, err := p.ServeMetrics(ctx, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		st, err := agentstatus.Fetch(ctx, http.DefaultClient, addr)
		if err != nil || st.State != tc.state || st.Holder != me || st.Table != "orders" {
			t.Fatalf("/v1/lease: %+v, %v; want %s held by %+v", st, err, tc.state, me)
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`kiln_backup_lease_active{table="orders"} ` + tc.active + "\n",
			`kiln_backup_lease_info{table="orders",state="` + tc.state + `",holder="shop-blue-0",holder_host="h1",holder_release="2.0.0",released="false"} 1`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %q:\n%s", want, b)
			}
		}
	}
}
