// Package builtin registers every target kiln ships. Import it for its side effect where
// targets are opened by name (the kiln command); nothing else needs a target's packages.
package builtin

import (
	_ "github.com/kilnhq/kiln/targets/aws"   // registers "aws"
	_ "github.com/kilnhq/kiln/targets/local" // registers "local"
)
