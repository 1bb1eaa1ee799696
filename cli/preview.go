package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/targets"
)

// previewPhase is one phase of `kiln rollout --preview`.
type previewPhase struct {
	rollout.PlannedPhase
	// Operations are the engine's planned resource operations (the first phase that
	// changes anything is previewed by the engine itself).
	Operations []fleet.ResourceOp `json:"operations,omitempty"`
	// Describe says in words what the phase changes.
	Describe []string `json:"describe,omitempty"`
}

// preview prints what a rollout of the manifest's release would do, phase by phase,
// changing nothing but the local image cache (the bake).
func (a *app) preview(ctx context.Context, p *project.Project, tgt targets.Target) error {
	cur, exists, err := tgt.Current(ctx)
	if err != nil {
		return err
	}
	var out []previewPhase
	var rel fleet.Release
	if pp, ok := tgt.(targets.PublishPreviewer); ok {
		// Publishing is itself a change (aws: an AMI): preview it, make nothing.
		res, err := p.BakeImage(ctx)
		if err != nil {
			return err
		}
		bake := previewPhase{PlannedPhase: rollout.PlannedPhase{Phase: rollout.PhaseBake, Spec: cur}}
		img, err := pp.PreviewPublish(ctx, res.Image, func(op fleet.ResourceOp) {
			if op.Status == fleet.OpStarted {
				bake.Operations = append(bake.Operations, op)
			}
		})
		if err != nil {
			return fmt.Errorf("preview bake: %w", err)
		}
		bake.Changes = len(bake.Operations) > 0
		rel = fleet.Release{Version: res.Image.Version, Image: img}
		out = append(out, bake)
	} else if rel, err = p.Bake(ctx, tgt); err != nil {
		return err
	}
	req := p.Request()
	plan := rollout.Plan(cur, exists, req, rel)
	prev := cur
	if !exists {
		prev = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	}
	enginePreviewed := false
	for _, ph := range plan {
		pp := previewPhase{PlannedPhase: ph}
		if ph.Changes {
			pp.Describe = describeChange(prev, ph.Spec)
			if pv, ok := tgt.(rollout.Previewer); ok && !enginePreviewed {
				// Only the first change can be previewed by the engine: later phases
				// start from states that do not exist yet.
				err := pv.Preview(ctx, ph.Spec, func(op fleet.ResourceOp) {
					if op.Status == fleet.OpStarted {
						pp.Operations = append(pp.Operations, op)
					}
				})
				if err != nil {
					return fmt.Errorf("preview %s: %w", ph.Phase, err)
				}
				enginePreviewed = true
			}
			prev = ph.Spec
		}
		out = append(out, pp)
	}
	if a.jsonOutput() {
		return json.NewEncoder(a.stdout).Encode(out)
	}
	w := a.stdout
	live := "nothing live"
	if l, ok := cur.Live(); ok && exists {
		live = fmt.Sprintf("%s on slot %s", cur.Slots[l].Release, l)
	}
	fmt.Fprintf(w, "preview: rollout of %s %s on %s; live: %s\n", p.Manifest.Service, rel, tgt.Name(), live)
	for _, pp := range out {
		fmt.Fprintf(w, "\n%s\n", phaseName(pp.Phase, pp.Step))
		if len(pp.Operations) > 0 {
			fmt.Fprintf(w, "  Pulumi preview:\n")
			for _, op := range pp.Operations {
				fmt.Fprintf(w, "    %-18s %s %s\n", op.Op, shortType(op.Type), op.Name)
			}
		}
		for _, d := range pp.Describe {
			fmt.Fprintf(w, "  %s\n", d)
		}
		if pp.Waits != "" {
			fmt.Fprintf(w, "  waits: %s\n", pp.Waits)
		}
	}
	fmt.Fprintf(w, "\nnothing was changed (the image was baked into the local cache: %s)\n", rel.Image.Short())
	return nil
}

// describeChange says what moving from one spec to the next does, slot by slot.
func describeChange(from, to fleet.Spec) []string {
	var out []string
	for _, sl := range fleet.Slots {
		a, b := from.Slots[sl], to.Slots[sl]
		switch {
		case a.Empty() && !b.Empty():
			out = append(out, fmt.Sprintf("boot %d instance(s) of %s in slot %s", b.Size, b.Release, sl))
		case !a.Empty() && b.Empty():
			out = append(out, fmt.Sprintf("stop the %d instance(s) of %s in slot %s (drained first)", a.Size, a.Release, sl))
		case !a.Empty() && !b.Empty() && a.Release.Image.Digest != b.Release.Image.Digest:
			out = append(out, fmt.Sprintf("replace slot %s: %s -> %s (%d instance(s))", sl, a.Release, b.Release, b.Size))
		}
	}
	var w []string
	changed := false
	for _, sl := range fleet.Slots {
		if from.Slots[sl].Weight != to.Slots[sl].Weight {
			changed = true
		}
		w = append(w, fmt.Sprintf("%s %d%%", sl, to.Slots[sl].Weight))
	}
	if changed {
		out = append(out, "traffic: "+strings.Join(w, " / "))
	}
	return out
}
