//go:build e2e

package stacks

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// openTestStack opens a stack in a fresh state directory against the Pulumi CLI kiln
// uses (found, or built once into the tools cache).
func openTestStack(t *testing.T) *Stack {
	t.Helper()
	root, err := pulumicli.Ensure(context.Background(), pulumicli.Options{Progress: os.Stderr})
	if err != nil {
		t.Fatalf("pulumi cli: %v", err)
	}
	s, err := Open(context.Background(), Options{StateDir: t.TempDir(), Stack: "test", PulumiRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type thing struct{ pulumi.ResourceState }

// things registers n component resources and exports their count.
func things(n int, secret bool) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		for i := range n {
			var r thing
			if err := ctx.RegisterComponentResource("kiln:test:Thing", "t"+string(rune('a'+i)), &r); err != nil {
				return err
			}
			if err := ctx.RegisterResourceOutputs(&r, pulumi.Map{}); err != nil {
				return err
			}
		}
		ctx.Export("count", pulumi.Int(n))
		ctx.Export("name", pulumi.String("things"))
		if secret {
			ctx.Export("key", pulumi.ToSecret(pulumi.String("hush")))
		}
		return nil
	}
}

type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op fleet.ResourceOp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op.Op+" "+op.Name+" "+op.Status)
}

func TestUpRunsTheProgramAndReturnsItsOutputs(t *testing.T) {
	s := openTestStack(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		program pulumi.RunFunc
		ops     []string
		count   float64
	}{
		{"create", things(2, false), []string{"create ta done", "create ta started", "create tb done", "create tb started"}, 2},
		{"unchanged", things(2, false), nil, 2},
		{"delete", things(1, false), []string{"delete tb done", "delete tb started"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log opLog
			outs, err := s.Up(ctx, tc.program, log.add)
			if err != nil {
				t.Fatal(err)
			}
			if got := outs["count"].Value; got != tc.count {
				t.Errorf("count = %v, want %v", got, tc.count)
			}
			if got := outs["name"].Value; got != "things" {
				t.Errorf("name = %v, want things", got)
			}
			// The engine runs independent steps in parallel.
			sort.Strings(log.ops)
			if strings.Join(log.ops, ",") != strings.Join(tc.ops, ",") {
				t.Errorf("ops = %q, want %q", log.ops, tc.ops)
			}
		})
	}
}

func TestUpTakesSecretOutputsFromTheBackend(t *testing.T) {
	s := openTestStack(t)
	outs, err := s.Up(context.Background(), things(1, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := outs["key"]; v.Value != "hush" || !v.Secret {
		t.Errorf("key = %+v, want the secret hush", v)
	}
}

func TestUpReportsTheProgramsError(t *testing.T) {
	s := openTestStack(t)
	_, err := s.Up(context.Background(), func(*pulumi.Context) error { return errors.New("no such slot: purple") }, nil)
	var ee *EngineError
	if !errors.As(err, &ee) || !strings.Contains(ee.Msg, "no such slot: purple") {
		t.Fatalf("err = %v, want an EngineError saying no such slot: purple", err)
	}
	if _, err := s.Up(context.Background(), things(1, false), nil); err != nil {
		t.Fatalf("up after a failed update: %v", err)
	}
}

func TestUpCancelledLeavesTheStackUsable(t *testing.T) {
	s := openTestStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := s.Up(ctx, func(pctx *pulumi.Context) error {
		cancel()
		<-pctx.Context().Done()
		return pctx.Context().Err()
	}, nil)
	if err == nil {
		t.Fatal("a cancelled update succeeded")
	}
	outs, err := s.Up(context.Background(), things(1, false), nil)
	if err != nil {
		t.Fatalf("up after a cancelled update: %v", err)
	}
	if outs["count"].Value != float64(1) {
		t.Errorf("count = %v, want 1", outs["count"].Value)
	}
}

func TestOutputsAreReadMaskedFirstAndSecretsOnlyWhenThereAreAny(t *testing.T) {
	s := openTestStack(t)
	ctx := context.Background()
	outs, err := s.Outputs(ctx)
	if err != nil || len(outs) != 0 {
		t.Fatalf("outputs of a new stack = %v, %v; want none", outs, err)
	}
	for _, secret := range []bool{false, true} {
		if _, err := s.Up(ctx, things(2, secret), nil); err != nil {
			t.Fatal(err)
		}
		outs, err := s.Outputs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if outs["count"].Value != float64(2) || outs["count"].Secret || outs["name"].Value != "things" {
			t.Errorf("secret=%v: outputs = %+v", secret, outs)
		}
		if k, ok := outs["key"]; secret && (k.Value != "hush" || !k.Secret) || !secret && ok {
			t.Errorf("secret=%v: key = %+v, %v", secret, k, ok)
		}
	}
}

func TestKnownOutputsAreTheLastUpdatesOrReadsAndUpdatedOnlyTheLastSuccessfulUpdates(t *testing.T) {
	s := openTestStack(t)
	ctx := context.Background()
	if outs := s.UpdatedOutputs(); outs != nil {
		t.Fatalf("updated outputs before any update: %v", outs)
	}
	if _, err := s.Up(ctx, things(2, false), nil); err != nil {
		t.Fatal(err)
	}
	if outs := s.UpdatedOutputs(); outs["count"].Value != float64(2) {
		t.Fatalf("updated outputs after an update: %v", outs)
	}
	if outs := s.Known(); outs["count"].Value != float64(2) {
		t.Fatalf("known outputs after an update: %v", outs)
	}
	// Read outputs are known, but not as this Stack's own update's.
	if _, err := s.Outputs(ctx); err != nil {
		t.Fatal(err)
	}
	if outs := s.UpdatedOutputs(); outs != nil {
		t.Fatalf("updated outputs after a read: %v", outs)
	}
	if outs, err := s.KnownOutputs(ctx); err != nil || outs["count"].Value != float64(2) {
		t.Fatalf("known outputs after a read = %v, %v", outs, err)
	}
	if _, err := s.Up(ctx, things(2, false), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Up(ctx, func(*pulumi.Context) error { return errors.New("boom") }, nil); err == nil {
		t.Fatal("a failing program's update succeeded")
	}
	if outs := s.UpdatedOutputs(); outs != nil {
		t.Fatalf("updated outputs after a failed update: %v", outs)
	}
	if outs := s.Known(); outs != nil {
		t.Fatalf("known outputs after a failed update: %v", outs)
	}
	// A second Stack of the same stack (another process) made no update: it reads.
	s2, err := Open(ctx, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	if outs := s2.UpdatedOutputs(); outs != nil {
		t.Fatalf("updated outputs of a Stack that made none: %v", outs)
	}
	if outs, err := s2.Outputs(ctx); err != nil || outs["count"].Value != float64(2) {
		t.Fatalf("outputs read again = %v, %v", outs, err)
	}
}

func TestAnExistingStackOpensWithoutSelectingAndUpdates(t *testing.T) {
	s := openTestStack(t)
	ctx := context.Background()
	if _, err := s.Up(ctx, things(1, false), nil); err != nil {
		t.Fatal(err)
	}
	fb, _ := fileBackendOf(s.opts.Backend)
	if !fb.hasStack(Project, s.opts.Stack) {
		t.Fatal("the file backend has no checkpoint of the stack it updated")
	}
	again, err := Open(ctx, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.ws.(selected); !ok {
		t.Errorf("an existing stack was opened through %T, not without selecting", again.ws)
	}
	outs, err := again.Up(ctx, things(2, false), nil)
	if err != nil || outs["count"].Value != float64(2) {
		t.Fatalf("update of the stack opened again = %v, %v", outs, err)
	}
	other := s.opts
	other.Stack = "other"
	if _, err := Open(ctx, other); err != nil {
		t.Fatalf("a new stack beside it: %v", err)
	}
	if !fb.hasStack(Project, "other") {
		t.Error("opening a new stack created no checkpoint")
	}
}

func TestStateListsPendingCreatesAndResourceIDs(t *testing.T) {
	s := openTestStack(t)
	ctx := context.Background()
	st, err := s.State(ctx)
	if err != nil || len(st.Resources) != 0 || len(st.PendingCreates()) != 0 {
		t.Fatalf("state of a new stack = %+v, %v", st, err)
	}
	if _, err := s.Up(ctx, things(2, false), nil); err != nil {
		t.Fatal(err)
	}
	st, err = s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var urns []string
	for _, r := range st.Resources {
		if r.Type == "kiln:test:Thing" {
			urns = append(urns, r.URN)
		}
	}
	if len(urns) != 2 || len(st.PendingCreates()) != 0 {
		t.Errorf("things in the state = %v, pending %v", urns, st.PendingCreates())
	}
	// Components have no IDs; the stack resource has none either.
	if ids := st.ResourceIDs("kiln:test:Thing"); len(ids) != 0 {
		t.Errorf("IDs of components = %v", ids)
	}
}
