// Command kiln-metrics-bench compares kiln-metrics with Debian's prometheus-node-exporter
// (RSS and CPU per scrape) and soaks it with the CloudWatch sink down; see package
// github.com/kilnhq/kiln/metrics/bench.
package main

import (
	"os"

	"github.com/kilnhq/kiln/metrics/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:]))
}
