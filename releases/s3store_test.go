package releases_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/internal/testpeers"
	"github.com/kilnhq/kiln/releases"
)

// s3Stores opens the same stack's store in one S3-compatible server (gofakes3) as seen
// from each named host.
func s3Stores(t *testing.T, endpoint string, lease time.Duration, hosts ...string) []*releases.S3Store {
	t.Helper()
	b, err := backend.Parse("s3://team-state/kiln?region=us-east-1&endpoint=" + endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	client, err := releases.S3Client(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	var out []*releases.S3Store
	for _, h := range hosts {
		s, err := releases.OpenS3Store(releases.S3Options{Client: client, Bucket: b.Bucket, Prefix: b.Prefix, Lease: lease, Host: h}, "shop")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func holder(host string, pid int) releases.Holder {
	return releases.Holder{Host: host, PID: pid, User: "ci", Command: "kiln rollout", Since: time.Now().UTC().Round(0)}
}

// Two machines take the lock at the same instant, 100 times: each time exactly one
// holds it and the other is told who, from which host, and until when its lease runs.
func TestS3LockTwoHostsRaceExactlyOneWins(t *testing.T) {
	stores := s3Stores(t, testpeers.S3(t), time.Minute, "host-a", "host-b")
	for round := range 100 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		unlocks := make([]func() error, 2)
		errs := make([]error, 2)
		for i, s := range stores {
			wg.Go(func() {
				<-start
				unlocks[i], errs[i] = s.Lock(context.Background(), holder([]string{"host-a", "host-b"}[i], 100+i))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i := range stores {
			if errs[i] == nil {
				won++
				continue
			}
			var le *releases.LockedError
			if !errors.As(errs[i], &le) {
				t.Fatalf("round %d: host %d: %v, want a LockedError", round, i, errs[i])
			}
			if !le.OtherHost || le.Stale || le.Expires.IsZero() || le.Holder.Host == []string{"host-a", "host-b"}[i] {
				t.Fatalf("round %d: the loser was told %+v", round, le)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d hosts hold the lock, want exactly 1 (errors %v)", round, won, errs)
		}
		for _, u := range unlocks {
			if u != nil {
				if err := u(); err != nil {
					t.Fatalf("round %d: unlock: %v", round, err)
				}
			}
		}
	}
}

// A holder on another host is stale only once its lease has expired: until then
// --break-lock refuses; after, the lock can be broken and taken, and the old holder's
// next checkpoint fails with ErrLockLost instead of overwriting the new holder's.
func TestS3LeaseFreshThenExpired(t *testing.T) {
	ep := testpeers.S3(t)
	stores := s3Stores(t, ep, time.Minute, "host-a", "host-b")
	a, b := stores[0], stores[1]
	ha := holder("host-a", 4242)
	if _, err := a.Lock(context.Background(), ha); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveState(releases.State{ID: "r1", Phase: "deploy"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Lock(context.Background(), holder("host-b", 1))
	var le *releases.LockedError
	if !errors.As(err, &le) || le.Stale || !le.OtherHost {
		t.Fatalf("lock from host-b while the lease is fresh: %v", err)
	}
	if err := b.BreakLock(le.Holder); !errors.Is(err, releases.ErrHolderAlive) {
		t.Fatalf("break of a fresh lease: %v, want ErrHolderAlive", err)
	}
	// Host-b's clock two minutes on: the lease (1m, not renewed by then) has expired.
	b.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	_, err = b.Lock(context.Background(), holder("host-b", 1))
	if !errors.As(err, &le) || !le.Stale {
		t.Fatalf("lock from host-b after the lease expired: %v, want a stale LockedError", err)
	}
	if want := "lease expired"; !strings.Contains(le.Error(), want) {
		t.Errorf("message %q does not say %q", le.Error(), want)
	}
	if err := b.BreakLock(le.Holder); err != nil {
		t.Fatalf("break of an expired lease: %v", err)
	}
	unlockB, err := b.Lock(context.Background(), holder("host-b", 1))
	if err != nil {
		t.Fatalf("lock after the break: %v", err)
	}
	defer unlockB()
	st, ok, err := b.LoadState()
	if err != nil || !ok || st.ID != "r1" {
		t.Fatalf("host-b reads the checkpoint host-a left: %+v %v %v", st, ok, err)
	}
	if err := a.SaveState(releases.State{ID: "r1", Phase: "step"}); !errors.Is(err, releases.ErrLockLost) {
		t.Fatalf("host-a's checkpoint after its lock was broken: %v, want ErrLockLost", err)
	}
	if st, _, _ := b.LoadState(); st.Phase != "deploy" {
		t.Fatalf("the checkpoint was overwritten by the old holder: %+v", st)
	}
}

// While a holder works, its lease moves forward: another host never finds it expired.
func TestS3LeaseIsRenewedWhileHeld(t *testing.T) {
	stores := s3Stores(t, testpeers.S3(t), 3*time.Second, "host-a", "host-b")
	unlock, err := stores[0].Lock(context.Background(), holder("host-a", 7))
	if err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for i := range 3 {
		_, err := stores[1].Lock(context.Background(), holder("host-b", 8))
		var le *releases.LockedError
		if !errors.As(err, &le) || le.Stale {
			t.Fatalf("check %d: %v, want a fresh lease", i, err)
		}
		if i == 0 {
			first = le.Expires
		} else if i == 2 && !le.Expires.After(first) {
			t.Fatalf("the lease did not move forward: %s then %s", first, le.Expires)
		}
		time.Sleep(2 * time.Second)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	u, err := stores[1].Lock(context.Background(), holder("host-b", 8))
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	u()
}

// History written from two machines, and read from a third that never rolled anything
// out, is complete: conditional writes lose no record.
func TestS3HistoryFromEveryHostIsComplete(t *testing.T) {
	stores := s3Stores(t, testpeers.S3(t), time.Minute, "host-a", "host-b", "host-c")
	var wg sync.WaitGroup
	for i, s := range stores[:2] {
		wg.Go(func() {
			for n := range 20 {
				r := releases.Record{ID: fmt.Sprintf("%d-%d", i, n), Version: fmt.Sprintf("1.%d.%d", i, n), Outcome: "promoted",
					Started: time.Now(), User: "u", Host: []string{"host-a", "host-b"}[i]}
				if err := s.Record(r); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	h, err := stores[2].History()
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 40 {
		t.Fatalf("history from host-c has %d records, want all 40", len(h))
	}
}

// An unreachable backend is an error that says so, at once; never a hang.
func TestS3UnreachableBackendFailsClearly(t *testing.T) {
	stores := s3Stores(t, "http://127.0.0.1:1", time.Minute, "host-a")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := stores[0].Lock(ctx, holder("host-a", 1))
	var le *releases.LockedError
	if err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "lock stack shop") {
		t.Fatalf("lock on an unreachable backend: %v", err)
	}
	if _, err := stores[0].History(); err == nil {
		t.Fatal("history of an unreachable backend succeeded")
	}
}

// Secrets set from two hosts at once are all kept, each update under a new version.
func TestS3SecretsFromEveryHostAreKept(t *testing.T) {
	stores := s3Stores(t, testpeers.S3(t), time.Minute, "host-a", "host-b", "host-c")
	empty, err := stores[2].LoadSecrets()
	if err != nil || empty.Version != "" || len(empty.Values) != 0 {
		t.Fatalf("before any set: %+v, %v", empty, err)
	}
	var wg sync.WaitGroup
	for i, s := range stores[:2] {
		wg.Go(func() {
			for n := range 5 {
				if _, err := s.UpdateSecrets(func(d *releases.Secrets) error {
					d.Values[fmt.Sprintf("S%d_%d", i, n)] = releases.Secret{Ciphertext: "v1:c"}
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	doc, err := stores[2].LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Values) != 10 || doc.Version == "" {
		t.Fatalf("host-c sees %d secrets (version %q), want all 10 under a version", len(doc.Values), doc.Version)
	}
	boom := errors.New("boom")
	if _, err := stores[0].UpdateSecrets(func(d *releases.Secrets) error { d.Values = nil; return boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing change: %v, want boom", err)
	}
	if again, _ := stores[1].LoadSecrets(); again.Version != doc.Version || len(again.Values) != 10 {
		t.Fatalf("a failing change saved something: %+v", again)
	}
}

// A backend that stops answering gives an error within the store's timeout, never a
// hang, and never a half-written checkpoint: the last one saved is the one read back.
func TestS3SlowBackendFailsInTimeAndKeepsTheLastCheckpoint(t *testing.T) {
	real := testpeers.S3(t)
	target, _ := url.Parse(real)
	var slow atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b, err := backend.Parse("s3://team-state/kiln?region=us-east-1&endpoint=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	client, err := releases.S3Client(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := releases.OpenS3Store(releases.S3Options{Client: client, Bucket: b.Bucket, Prefix: b.Prefix, Host: "host-a",
		Timeout: 500 * time.Millisecond}, "shop")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), holder("host-a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState(releases.State{ID: "r1", Phase: "deploy"}); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	start := time.Now()
	if err := s.SaveState(releases.State{ID: "r1", Phase: "step"}); err == nil {
		t.Fatal("a checkpoint was reported saved to a backend that did not answer")
	}
	if _, err := s.History(); err == nil {
		t.Fatal("history was read from a backend that did not answer")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("two calls to a silent backend took %s: the timeout did not hold", took)
	}
	slow.Store(false)
	st, ok, err := s.LoadState()
	if err != nil || !ok || st.Phase != "deploy" {
		t.Fatalf("after the slow spell the checkpoint reads %+v (%v, %v), want the last one saved, deploy", st, ok, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}
