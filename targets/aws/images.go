package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/targets/aws/program"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The service's AMIs live in one stack, <service>-images: the artifacts bucket (unless
// the manifest names one), one Image Builder infrastructure configuration, and per image
// its payload, component, recipe and image, named after its digest. A bake re-declares the
// images the stack keeps (their payloads, uploaded before, are not read again, so a bake
// on another machine needs only its own) and adds the new one; an unchanged digest finds
// its AMI in the stack's outputs and runs no engine at all.

// openImages opens the images stack and reads its outputs in the background: Open starts
// it beside the fleet stack's opening, so a rollout's bake does not wait for either.
func (t *Target) openImages(ctx context.Context) {
	t.imagesReady = make(chan struct{})
	go func() {
		defer close(t.imagesReady)
		st, err := t.openStack(ctx, ImagesStack(t.cfg.Service))
		if err == nil {
			_, err = st.Outputs(ctx) // the Stack keeps them (Known)
		}
		t.mu.Lock()
		t.images, t.imagesErr = st, err
		t.mu.Unlock()
	}()
}

func (t *Target) imagesStack(ctx context.Context) (*stacks.Stack, error) {
	select {
	case <-t.imagesReady:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.images, t.imagesErr
}

// baked is what the images stack holds: the images it keeps, oldest first, and their AMIs.
type baked struct {
	images []program.BakeImage
	amis   map[string]string // digest -> AMI ID
}

// baked returns the images stack and what it holds: its outputs as read when the stack
// was opened, or as its last update here returned them.
func (t *Target) baked(ctx context.Context) (*stacks.Stack, baked, error) {
	st, err := t.imagesStack(ctx)
	if err != nil {
		return nil, baked{}, err
	}
	outs, err := st.KnownOutputs(ctx)
	if err != nil {
		return nil, baked{}, err
	}
	b := baked{amis: map[string]string{}}
	if s, _ := outs[program.OutputImages].Value.(string); s != "" {
		if err := json.Unmarshal([]byte(s), &b.images); err != nil {
			return nil, baked{}, fmt.Errorf("stack %s: %s output: %w", ImagesStack(t.cfg.Service), program.OutputImages, err)
		}
	}
	m, _ := outs[program.OutputAMIs].Value.(map[string]any)
	for d, v := range m {
		if ami, _ := v.(string); ami != "" {
			b.amis[d] = ami
		}
	}
	return st, b, nil
}

// bakeInput is the images stack's program input: the images it keeps, plus img (its
// payload archived here) unless it is among them.
func (t *Target) bakeInput(kept []program.BakeImage, img *images.Image) (program.BakeInput, error) {
	in := program.BakeInput{Service: t.cfg.Service, Settings: t.cfg.Settings}
	for _, k := range kept {
		if k.Digest != img.Digest {
			in.Images = append(in.Images, k)
		}
	}
	payload := t.payloadPath(img.Digest)
	sum, err := images.WritePayload(img.Dir, payload)
	if err != nil {
		return in, err
	}
	in.Images = append(in.Images, program.BakeImage{Digest: img.Digest, Version: img.Version, RecipeKey: img.RecipeKey,
		Payload: payload, PayloadSHA256: sum, SBOM: filepath.Join(img.Dir, images.SBOMFile)})
	return in, nil
}

// toBake is what publishing an image takes: the images stack, and the AMI the stack holds
// of the image, or else the images the stack keeps, beside which it is baked.
func (t *Target) toBake(ctx context.Context, img *images.Image) (*stacks.Stack, string, []program.BakeImage, error) {
	st, b, err := t.baked(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return st, b.amis[img.Digest], b.images, nil
}

// bakeProgram is the images stack's program that bakes img beside the images the stack
// keeps. It archives img's payload while the engine starts, and declares the resources
// once the archive is written: the CLI's start and the passphrase's key derivation take
// about as long as the archive (0.2 to 0.3 s each here), on another core.
func (t *Target) bakeProgram(kept []program.BakeImage, img *images.Image) pulumi.RunFunc {
	type archived struct {
		in  program.BakeInput
		err error
	}
	ch := make(chan archived, 1) // never blocks, if the engine fails before it runs the program
	go func() {
		in, err := t.bakeInput(kept, img)
		ch <- archived{in, err}
	}()
	return func(ctx *pulumi.Context) error {
		a := <-ch
		if a.err != nil {
			return fmt.Errorf("archive the payload of %s: %w", img.Digest, a.err)
		}
		return program.Bake(a.in)(ctx)
	}
}

// Publish bakes the image into an AMI, or finds the AMI an earlier bake made of it, and
// returns it as the fleet boots it: the AMI ID, with the image's digest.
func (t *Target) Publish(ctx context.Context, img *images.Image) (fleet.Image, error) {
	t.readStateAhead(ctx)
	st, ami, kept, err := t.toBake(ctx, img)
	if err != nil || ami != "" {
		return fleet.Image{Digest: img.Digest, Location: ami}, err
	}
	outs, err := st.Up(ctx, t.bakeProgram(kept, img), nil)
	if err != nil {
		return fleet.Image{}, fmt.Errorf("bake the AMI of %s: %w", img.Digest, err)
	}
	m, _ := outs[program.OutputAMIs].Value.(map[string]any)
	if ami, _ = m[img.Digest].(string); ami == "" {
		return fleet.Image{}, fmt.Errorf("bake the AMI of %s: the images stack has no AMI for it", img.Digest)
	}
	return fleet.Image{Digest: img.Digest, Location: ami}, nil
}

var _ targets.ImageKeeper = (*Target)(nil)

// KeptImage returns the AMI the images stack keeps of digest, if it keeps one.
func (t *Target) KeptImage(ctx context.Context, digest string) (fleet.Image, bool, error) {
	_, b, err := t.baked(ctx)
	if err != nil {
		return fleet.Image{}, false, err
	}
	ami := b.amis[digest]
	return fleet.Image{Digest: digest, Location: ami}, ami != "", nil
}

// PendingAMI is the location a preview gives an image whose AMI is not baked yet.
const PendingAMI = "ami-(baked-by-the-rollout)"

// PreviewPublish reports what baking the image's AMI would create, creating nothing; an
// image baked before previews nothing and returns its AMI.
func (t *Target) PreviewPublish(ctx context.Context, img *images.Image, ops func(fleet.ResourceOp)) (fleet.Image, error) {
	st, ami, kept, err := t.toBake(ctx, img)
	if err != nil || ami != "" {
		return fleet.Image{Digest: img.Digest, Location: ami}, err
	}
	if _, err := st.Preview(ctx, t.bakeProgram(kept, img), ops); err != nil {
		return fleet.Image{}, err
	}
	return fleet.Image{Digest: img.Digest, Location: PendingAMI}, nil
}

// CollectImages drops from the images stack the images beyond the newest keep, sparing
// every image in use, then deregisters their AMIs and deletes the AMIs' snapshots (Image
// Builder made them, not the stack). The image store and the payloads on this host are
// collected the same way.
func (t *Target) CollectImages(ctx context.Context, keep int, inUse []fleet.Image) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("images gc: keep must be at least 1, got %d", keep)
	}
	st, b, err := t.baked(ctx)
	if err != nil {
		return nil, err
	}
	var digests []string
	for _, i := range inUse {
		digests = append(digests, i.Digest)
	}
	kept, dropped := collect(b.images, digests, keep)
	if t.cfg.Images != nil {
		if _, err := t.cfg.Images.GC(t.cfg.Service, keep, digests); err != nil {
			return nil, err
		}
	}
	if len(dropped) == 0 {
		return nil, nil
	}
	in := program.BakeInput{Service: t.cfg.Service, Settings: t.cfg.Settings, Images: kept}
	if _, err := st.Up(ctx, program.Bake(in), nil); err != nil {
		return nil, fmt.Errorf("images gc: %w", err)
	}
	var removed, amis []string
	for _, img := range dropped {
		removed = append(removed, img.Digest)
		if ami := b.amis[img.Digest]; ami != "" {
			amis = append(amis, ami)
		}
		os.Remove(t.payloadPath(img.Digest))
	}
	if len(amis) > 0 {
		if err := t.cfg.API.DeregisterImages(ctx, amis); err != nil {
			return removed, fmt.Errorf("images gc: deregister %v: %w", amis, err)
		}
	}
	return removed, nil
}

// collect splits the images a stack keeps (oldest first) into those it goes on keeping
// (oldest first: the newest keep, and every one in use) and those it drops, as the local
// image store's GC does.
func collect(imgs []program.BakeImage, inUse []string, keep int) (kept, dropped []program.BakeImage) {
	n := 0
	for i := len(imgs) - 1; i >= 0; i-- { // newest first
		if slices.Contains(inUse, imgs[i].Digest) || n < keep {
			n++
			kept = append(kept, imgs[i])
			continue
		}
		dropped = append(dropped, imgs[i])
	}
	slices.Reverse(kept)
	return kept, dropped
}

func (t *Target) payloadPath(digest string) string {
	return filepath.Join(t.cfg.StateDir, "aws", "payloads", strings.TrimPrefix(digest, "sha256:")+".tar.gz")
}
