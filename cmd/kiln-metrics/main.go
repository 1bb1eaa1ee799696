// Command kiln-metrics is the metrics daemon baked into every kiln image; see package
// github.com/kilnhq/kiln/metrics.
package main

import (
	"os"

	"github.com/kilnhq/kiln/metrics"
)

func main() {
	os.Exit(metrics.Main(os.Args[1:]))
}
