package provider

import (
	"context"
	"fmt"

	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/targets/local/schema"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// imageProps are the inputs (and outputs) of a kiln:local:Image.
type imageProps struct {
	schema.Image
	// Version is the release version recorded in the image (an output).
	Version string `json:"version,omitempty"`
}

// imageKind pins a baked image. Deleting it removes nothing: images are kept for rollback
// and collected by kiln's keep-the-last-N policy, which never removes one a stack uses.
type imageKind struct{}

func (imageKind) replaceKeys() []string { return nil }

func (imageKind) check(news map[string]any) []*pulumirpc.CheckFailure {
	var p imageProps
	if err := decode(news, &p); err != nil {
		return []*pulumirpc.CheckFailure{failure("", "%v", err)}
	}
	if _, err := readImage(p); err != nil {
		return []*pulumirpc.CheckFailure{failure("dir", "%v", err)}
	}
	return nil
}

// readImage checks that the directory holds the image with the expected digest.
func readImage(p imageProps) (imageProps, error) {
	meta, err := images.ReadMeta(p.Dir)
	if err != nil {
		return p, err
	}
	if meta.Digest != p.Digest {
		return p, fmt.Errorf("image at %s has digest %s, want %s", p.Dir, meta.Digest, p.Digest)
	}
	p.Version = meta.Version
	return p, nil
}

func (imageKind) create(_ context.Context, inputs map[string]any) (string, map[string]any, error) {
	var p imageProps
	if err := decode(inputs, &p); err != nil {
		return "", nil, err
	}
	p, err := readImage(p)
	if err != nil {
		return "", nil, err
	}
	outs, err := encode(p)
	return p.Digest, outs, err
}

func (imageKind) read(_ context.Context, _ string, state map[string]any) (bool, error) {
	var p imageProps
	if err := decode(state, &p); err != nil {
		return false, err
	}
	_, err := readImage(p)
	return err == nil, nil
}

func (imageKind) update(_ context.Context, _ string, _, news map[string]any) (map[string]any, error) {
	return news, nil // every input change replaces; nothing to update in place
}

func (imageKind) delete(context.Context, string, map[string]any) error { return nil }
