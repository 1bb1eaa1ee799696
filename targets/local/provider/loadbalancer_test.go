package provider

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/kilnhq/kiln/targets/local/schema"
)

// TestMain lets this test binary stand in for kiln-lb when started under that name (a
// link beside it, where the provider looks), so that the balancer's daemon is real without
// building kiln.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "kiln-lb" {
		os.Exit(lb.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

func TestBalancerRestartsOnItsAddressOnlyForListenerBounds(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(self), "kiln-lb")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	ctx := context.Background()
	var p lbProps
	p.LoadBalancer = schema.LoadBalancer[string]{Service: "shop", RunDir: t.TempDir(), Listen: "127.0.0.1:0", DrainTimeout: lb.Duration(time.Second),
		Health: lb.HealthCheck{Path: "/healthz", Interval: lb.Duration(time.Second), Timeout: lb.Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1},
		Groups: []schema.Group[string]{{Name: "blue", Weight: 0, Targets: []schema.Target[string]{}}}}
	inputs, err := encode(p)
	if err != nil {
		t.Fatal(err)
	}
	id, state, err := lbKind{}.create(ctx, inputs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := (lbKind{}).delete(context.Background(), id, state); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	var first lbProps
	if err := decode(state, &first); err != nil {
		t.Fatal(err)
	}

	update := func(change func(*lbProps)) lbProps {
		t.Helper()
		next := p
		change(&next)
		news, err := encode(next)
		if err != nil {
			t.Fatal(err)
		}
		if state, err = (lbKind{}).update(ctx, id, state, news); err != nil {
			t.Fatal(err)
		}
		var got lbProps
		if err := decode(state, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// A per-request bound reloads the running daemon.
	got := update(func(n *lbProps) { n.Proxy.RequestTimeout = lb.Duration(5 * time.Second) })
	if got.Process.PID != first.Process.PID || got.Address != first.Address || got.Generation != 2 {
		t.Fatalf("after a requestTimeout change: pid %d address %s generation %d, want the same daemon (pid %d, %s) at generation 2",
			got.Process.PID, got.Address, got.Generation, first.Process.PID, first.Address)
	}
	// A listener bound restarts it where clients know it.
	got = update(func(n *lbProps) { n.Proxy.IdleTimeout = lb.Duration(5 * time.Second) })
	if got.Process.PID == first.Process.PID || got.Address != first.Address || !got.Process.alive() {
		t.Fatalf("after an idleTimeout change: pid %d (was %d) address %s (was %s) alive %v, want a new daemon on the same address",
			got.Process.PID, first.Process.PID, got.Address, first.Address, got.Process.alive())
	}
	if first.Process.alive() {
		t.Errorf("the old daemon (pid %d) is still running", first.Process.PID)
	}
}
