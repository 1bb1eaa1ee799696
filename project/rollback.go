package project

import (
	"context"
	"fmt"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/targets"
)

// RollbackRelease picks the release to return to: the newest promoted release other than
// the live one (or the newest of version to) whose image is still kept, published to tgt.
func (p *Project) RollbackRelease(ctx context.Context, tgt targets.Target, live *fleet.Release, to string) (fleet.Release, error) {
	store, err := p.Releases()
	if err != nil {
		return fleet.Release{}, err
	}
	hist, err := store.History()
	if err != nil {
		return fleet.Release{}, err
	}
	return p.RollbackReleaseIn(ctx, tgt, hist, live, to)
}

// RollbackReleaseIn is RollbackRelease on a history already read (newest first).
func (p *Project) RollbackReleaseIn(ctx context.Context, tgt targets.Target, hist []releases.Record, live *fleet.Release, to string) (fleet.Release, error) {
	var seen []string
	for _, r := range hist {
		if r.Outcome != string(rollout.Promoted) {
			continue
		}
		seen = append(seen, r.Version)
		if live != nil && r.Digest == live.Image.Digest {
			continue
		}
		if to != "" && r.Version != to {
			continue
		}
		if k, ok := tgt.(targets.ImageKeeper); ok {
			// Kept by the target (an AMI), this host need not have baked it.
			fi, found, err := k.KeptImage(ctx, r.Digest)
			if err != nil {
				return fleet.Release{}, fmt.Errorf("find the image of %s %s: %w", r.Version, r.Digest, err)
			}
			if found {
				return fleet.Release{Version: r.Version, Image: fi}, nil
			}
		}
		img, err := p.Images().Get(r.Digest)
		if err != nil {
			if to != "" {
				return fleet.Release{}, &InputError{Msg: fmt.Sprintf("the image of %s is no longer kept (images.keep is %d): %v", to, p.Manifest.Images.Keep, err)}
			}
			continue
		}
		fi, err := tgt.Publish(ctx, img)
		if err != nil {
			return fleet.Release{}, fmt.Errorf("publish %s %s: %w", r.Version, r.Digest, err)
		}
		return fleet.Release{Version: r.Version, Image: fi}, nil
	}
	if to != "" {
		return fleet.Release{}, &InputError{Msg: fmt.Sprintf("%s was never promoted here (promoted: %v)", to, seen)}
	}
	return fleet.Release{}, &InputError{Msg: "no earlier promoted release with a kept image to roll back to"}
}
