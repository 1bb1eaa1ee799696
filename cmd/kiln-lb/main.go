// Command kiln-lb is the local target's weighted reverse proxy, started by its provider;
// see package github.com/kilnhq/kiln/targets/local/lb.
package main

import (
	"os"

	"github.com/kilnhq/kiln/targets/local/lb"
)

func main() {
	os.Exit(lb.Main(os.Args[1:], os.Stderr))
}
