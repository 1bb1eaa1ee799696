// Command pulumi-resource-kiln is kiln's Pulumi resource provider for the local target.
package main

import (
	"os"

	"github.com/kilnhq/kiln/targets/local/provider"
)

func main() { os.Exit(provider.Main()) }
