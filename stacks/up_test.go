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
