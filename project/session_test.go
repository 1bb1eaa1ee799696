package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
	"github.com/kilnhq/kiln/targets"
)

// fakeTarget is the engine's fake target with what a session adds to it: publishing is
// the image directory, as on the local target, and image collection is recorded.
type fakeTarget struct {
	*rollouttest.Target
	mu        sync.Mutex
	published []string
	collected [][]fleet.Image
}

var _ targets.Target = (*fakeTarget)(nil)

func (f *fakeTarget) Publish(_ context.Context, img *images.Image) (fleet.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, img.Digest)
	return fleet.Image{Digest: img.Digest, Location: img.Dir}, nil
}

func (f *fakeTarget) CollectImages(_ context.Context, keep int, inUse []fleet.Image) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.collected = append(f.collected, inUse)
	return nil, nil
}

// testProject writes a manifest of version whose app is a prebuilt binary, and a bin dir
// holding a kiln-boot, and loads it.
func testProject(t *testing.T, dir, version string) *Project {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	if err := os.WriteFile(filepath.Join(bin, images.InitName), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/sh\necho "+version+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`apiVersion: kiln/v1
service: shop
version: %s
app: {binary: ./app}
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}
rollout:
  progressDeadline: 1m
  drainTimeout: 1s
  scaleDownDelay: 0s
target:
  local: {listen: 127.0.0.1:0}
images: {keep: 2}
`, version)
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(Options{File: filepath.Join(dir, "kiln.yaml"), BinDir: bin, StateDir: filepath.Join(dir, ".kiln")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// collect is a sink that keeps every event.
func collect(into *[]rollout.Event) Sink {
	return func(events <-chan rollout.Event) {
		for ev := range events {
			*into = append(*into, ev)
		}
	}
}

func history(t *testing.T, p *Project) []releases.Record {
	t.Helper()
	store, err := p.Releases()
	if err != nil {
		t.Fatal(err)
	}
	h, err := store.History()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func init() {
	// The session opens targets through the registry; these tests hand it one directly,
	// but Load checks the manifest's target is known.
	if !targets.Has("local") {
		targets.Register("local", func(context.Context, targets.Config) (targets.Target, error) {
			return nil, errors.New("the tests open no real target")
		})
	}
}

func TestSessionBakesPublishesRollsOutRecordsAndCollects(t *testing.T) {
	dir := t.TempDir()
	p := testProject(t, dir, "1.0.0")
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	var a, b []rollout.Event
	res, err := (&Session{Project: p, Target: tgt, Sinks: []Sink{collect(&a), collect(&b)}}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Finished.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s (%s), want promoted", res.Finished.Outcome, res.Finished.Message)
	}
	list, err := p.Images().List()
	if err != nil || len(list) != 1 {
		t.Fatalf("image store holds %v (%v), want the one baked image", list, err)
	}
	if !slices.Equal(tgt.published, []string{list[0].Digest}) {
		t.Errorf("published %v, want the baked %s", tgt.published, list[0].Digest)
	}
	live := tgt.Spec().Slots[fleet.Blue].Release
	if live == nil || live.Image.Digest != list[0].Digest || live.Version != "1.0.0" {
		t.Fatalf("live release %v, want 1.0.0 from the baked image", live)
	}
	// Every sink saw every event, in the engine's order, ending with Finished.
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("sinks saw %d and %d events", len(a), len(b))
	}
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			t.Fatalf("event %d differs between sinks: %v vs %v", i, a[i], b[i])
		}
	}
	if _, ok := a[len(a)-1].(rollout.Finished); !ok {
		t.Errorf("last event %T, want Finished", a[len(a)-1])
	}
	h := history(t, p)
	if len(h) != 1 || h[0].Version != "1.0.0" || h[0].Outcome != string(rollout.Promoted) || h[0].User == "" || h[0].Host == "" {
		t.Fatalf("history %+v, want one promoted 1.0.0 with who and where", h)
	}
	if len(tgt.collected) != 1 || len(tgt.collected[0]) != 1 || tgt.collected[0][0].Digest != list[0].Digest {
		t.Errorf("image collection spared %v, want exactly the live image", tgt.collected)
	}
	// The lock was released: the next release rolls out.
	p2 := testProject(t, dir, "2.0.0")
	res, err = (&Session{Project: p2, Target: tgt}).Run(context.Background())
	if err != nil || res.Finished.Outcome != rollout.Promoted {
		t.Fatalf("second rollout: %v, %s", err, res.Finished.Outcome)
	}
	if h := history(t, p2); len(h) != 2 || h[0].Version != "2.0.0" {
		t.Fatalf("history %+v, want 2.0.0 then 1.0.0", h)
	}
}

func TestSessionRefusesWhileAnotherHoldsTheLock(t *testing.T) {
	p := testProject(t, t.TempDir(), "1.0.0")
	store, err := p.Releases()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := store.Lock(context.Background(), releases.CurrentHolder("someone else"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	var evs []rollout.Event
	_, err = (&Session{Project: p, Target: tgt, Sinks: []Sink{collect(&evs)}}).Run(context.Background())
	var le *releases.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("err %v, want the stack's lock refused", err)
	}
	if len(evs) != 0 || len(tgt.Applied()) != 0 || len(tgt.published) != 0 {
		t.Fatalf("a refused session did something: %d events, %d applies, %d published", len(evs), len(tgt.Applied()), len(tgt.published))
	}
}

func TestSessionFailedReleaseIsRecordedAndCollectsNothing(t *testing.T) {
	dir := t.TempDir()
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	if res, err := (&Session{Project: testProject(t, dir, "1.0.0"), Target: tgt}).Run(context.Background()); err != nil || res.Finished.Outcome != rollout.Promoted {
		t.Fatalf("first release: %v %s", err, res.Finished.Outcome)
	}
	tgt.FailApply(len(tgt.Applied()), errors.New("instances would not start"))
	p := testProject(t, dir, "2.0.0")
	res, err := (&Session{Project: p, Target: tgt}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Finished.Outcome != rollout.RolledBack {
		t.Fatalf("outcome %s, want rolled-back", res.Finished.Outcome)
	}
	if live := tgt.Spec().Slots[fleet.Blue].Release; live == nil || live.Version != "1.0.0" {
		t.Fatalf("live %v after a failed 2.0.0, want 1.0.0", live)
	}
	h := history(t, p)
	if len(h) != 2 || h[0].Version != "2.0.0" || h[0].Outcome != string(rollout.RolledBack) || h[0].Reason == "" {
		t.Fatalf("history %+v, want 2.0.0 rolled back with its reason", h)
	}
	if len(tgt.collected) != 1 {
		t.Errorf("images collected after %d rollouts, want only after the promoted one", len(tgt.collected))
	}
}

func TestSessionRollsBackToAKeptReleaseWithoutBaking(t *testing.T) {
	dir := t.TempDir()
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if res, err := (&Session{Project: testProject(t, dir, v), Target: tgt}).Run(context.Background()); err != nil || res.Finished.Outcome != rollout.Promoted {
			t.Fatalf("release %s: %v %s", v, err, res.Finished.Outcome)
		}
	}
	p := testProject(t, dir, "2.0.0")
	spec := tgt.Spec()
	sl, _ := spec.Live()
	published := len(tgt.published)
	prev, err := p.RollbackRelease(context.Background(), tgt, spec.Slots[sl].Release, "")
	if err != nil {
		t.Fatal(err)
	}
	if prev.Version != "1.0.0" {
		t.Fatalf("rollback picks %s, want 1.0.0", prev.Version)
	}
	res, err := (&Session{Project: p, Target: tgt, Release: &prev}).Run(context.Background())
	if err != nil || res.Finished.Outcome != rollout.Promoted {
		t.Fatalf("rollback: %v %s (%s): an older kept release must be admitted", err, res.Finished.Outcome, res.Finished.Message)
	}
	spec = tgt.Spec()
	sl, _ = spec.Live()
	if got := spec.Slots[sl].Release; got.Version != "1.0.0" || got.Image.Digest != prev.Image.Digest {
		t.Fatalf("live %v, want the kept 1.0.0", got)
	}
	if len(tgt.published) != published+1 {
		t.Errorf("published %d times during the rollback, want once (the kept image, no bake)", len(tgt.published)-published)
	}
	if _, err := p.RollbackRelease(context.Background(), tgt, spec.Slots[sl].Release, "9.9.9"); err == nil {
		t.Error("a version never promoted was accepted as a rollback target")
	}
	var ie *InputError
	if _, err := p.RollbackRelease(context.Background(), tgt, nil, "9.9.9"); !errors.As(err, &ie) {
		t.Errorf("err %v, want an input error (exit 2)", err)
	}
}
