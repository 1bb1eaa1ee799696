package program

import (
	"fmt"
	"maps"
	"strings"

	"github.com/kilnhq/kiln/fleet"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The tags kiln puts on what it creates, besides the manifest's own (Settings.Tags).
const (
	TagService   = "kiln:service"
	TagVersion   = "kiln:version"
	TagDigest    = "kiln:digest"
	TagRecipeKey = "kiln:recipe-key"
	TagSlot      = "kiln:slot"
)

// tags returns the manifest's tags with kiln's key/value pairs on top: a manifest cannot
// hide what kiln needs to find its resources by.
func tags(s Settings, kv ...string) map[string]string {
	out := maps.Clone(s.Tags)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// tagMap is tags as a Pulumi input.
func tagMap(s Settings, kv ...string) pulumi.StringMap {
	return pulumi.ToStringMap(tags(s, kv...))
}

// digestName is the part of a resource name that stands for an image: the first 12 hex
// digits of its digest, so a name is stable for as long as the stack keeps the image.
func digestName(digest string) string {
	return fleet.Image{Digest: digest}.Short()
}

// checkDigest refuses anything but sha256: and 64 lowercase hex digits: a digest becomes
// part of resource names, object keys and a shell command.
func checkDigest(digest string) error {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !isHex64(hexPart) {
		return fmt.Errorf("image digest %q: not sha256: and 64 lowercase hex digits", digest)
	}
	return nil
}

func isHex64(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}
