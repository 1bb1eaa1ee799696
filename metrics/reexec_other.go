//go:build !linux

package metrics

// startWithOneP re-executes the daemon with GOMAXPROCS=1 on Linux only.
func startWithOneP() {}
