// Command kiln deploys immutable servers: see the README.
package main

import (
	"os"

	"github.com/kilnhq/kiln/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
