// Command kiln-boot is the init of one instance, baked into every kiln image; see package
// github.com/kilnhq/kiln/boot.
package main

import (
	"os"

	"github.com/kilnhq/kiln/boot"
)

func main() {
	os.Exit(boot.Main(os.Args[1:], os.Stderr))
}
