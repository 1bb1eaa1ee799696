package rollout

import (
	"testing"

	"github.com/kilnhq/kiln/fleet"
)

func TestDecideStart(t *testing.T) {
	rel := func(v string) fleet.Release {
		return fleet.Release{Version: v, Image: fleet.Image{Digest: "sha256:" + v, Location: "/img/" + v}}
	}
	v1, v2, v3 := rel("1.0.0"), rel("2.0.0"), rel("3.0.0")
	rebuilt := v2
	rebuilt.Image.Digest = "sha256:other" // same version, another image
	relocated := v2
	relocated.Image.Location = "/elsewhere" // the same image published elsewhere
	fleetOf := func(slots map[fleet.Slot]fleet.SlotSpec) fleet.Spec { return fleet.Spec{Service: "s", Slots: slots} }
	empty := fleetOf(map[fleet.Slot]fleet.SlotSpec{})
	v1OnBlue := fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &v1, Size: 2, Weight: 100}})
	v1OnGreen := fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Green: {Release: &v1, Size: 2, Weight: 100}})
	// A killed kiln left v2 on green at 50% beside v1 on blue.
	half := fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &v1, Size: 2, Weight: 50}, fleet.Green: {Release: &v2, Size: 2, Weight: 50}})
	leftV2 := &Checkpoint{ID: "r1", Stage: 3, Phase: PhaseStep, Step: 2, Slot: fleet.Green, Stable: &v1, Desired: v2}
	undoingV2 := &Checkpoint{ID: "r1", Stage: 1, Phase: PhaseHealth, Slot: fleet.Green, Stable: &v1, Desired: v2, Aborting: true}
	firstLeft := &Checkpoint{ID: "r0", Phase: PhaseDeploy, Slot: fleet.Blue, Desired: v1}

	for _, tc := range []struct {
		name    string
		applied fleet.Spec
		left    *Checkpoint
		rel     fleet.Release
		want    startKind
		slot    fleet.Slot
		stable  *fleet.Release
	}{
		{"nothing ever applied: a first release on blue", empty, nil, v1, startFresh, fleet.Blue, nil},
		{"a new release goes to the idle slot", v1OnBlue, nil, v2, startFresh, fleet.Green, &v1},
		{"whichever slot is idle", v1OnGreen, nil, v2, startFresh, fleet.Blue, &v1},
		{"the live release again: nothing to do", v1OnBlue, nil, v1, startAlreadyLive, fleet.Green, &v1},
		{"the live release with the image elsewhere is still live", fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &relocated, Size: 1, Weight: 100}}), nil, v2, startAlreadyLive, fleet.Green, &relocated},
		{"a rebuilt image of the live version is a new release", fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &v2, Size: 1, Weight: 100}}), nil, rebuilt, startFresh, fleet.Green, &v2},
		{"a slot without traffic is not live", fleetOf(map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &v1, Size: 2}}), nil, v1, startFresh, fleet.Blue, nil},
		{"the release a killed kiln was rolling out: resume", half, leftV2, v2, startResume, fleet.Green, &v1},
		{"the same release under another location: resume", half, leftV2, relocated, startResume, fleet.Green, &v1},
		{"resuming ignores which slot looks live now", v1OnGreen, leftV2, v2, startResume, fleet.Green, &v1},
		{"the release a killed kiln was undoing: finish the undo", half, undoingV2, v2, startFinishUndo, fleet.Green, &v1},
		{"another release than the one left: supersede", half, leftV2, v3, startSupersede, fleet.Green, &v1},
		{"the stable release asked while another was left: supersede first", half, leftV2, v1, startSupersede, fleet.Green, &v1},
		{"a rebuilt image of the release left: supersede", half, leftV2, rebuilt, startSupersede, fleet.Green, &v1},
		{"an undo of another release left: supersede", half, undoingV2, v3, startSupersede, fleet.Green, &v1},
		{"a first release left half done: resume without a stable slot", empty, firstLeft, v1, startResume, fleet.Blue, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decideStart(tc.applied, tc.left, tc.rel)
			if got.kind != tc.want || got.slot != tc.slot {
				t.Fatalf("decideStart = %s to slot %s, want %s to slot %s", got.kind, got.slot, tc.want, tc.slot)
			}
			if (got.stable == nil) != (tc.stable == nil) || (got.stable != nil && *got.stable != *tc.stable) {
				t.Fatalf("stable = %v, want %v", got.stable, tc.stable)
			}
		})
	}
}

// After a supersede the engine decides again with no checkpoint, on the fleet the undo
// left: the stable release alone.
func TestDecideStartAfterASupersedeSeesTheFleetTheUndoLeft(t *testing.T) {
	v1 := fleet.Release{Version: "1.0.0", Image: fleet.Image{Digest: "sha256:1"}}
	v2 := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2"}}
	undone := fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &v1, Size: 2, Weight: 100}, fleet.Green: {}}}
	if got := decideStart(undone, nil, v2); got.kind != startFresh || got.slot != fleet.Green {
		t.Fatalf("a new release after the undo: %s to %s", got.kind, got.slot)
	}
	if got := decideStart(undone, nil, v1); got.kind != startAlreadyLive {
		t.Fatalf("the stable release after the undo: %s, want already-live", got.kind)
	}
}
