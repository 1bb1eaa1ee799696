package metrics

import (
	"os"
	"syscall"
)

// reexecMarker is set in the environment of a kiln-metrics that Main re-executed.
const reexecMarker = "KILN_METRICS_REEXEC"

// startWithOneP makes the process run with GOMAXPROCS=1 from its first instruction, unless
// the user set GOMAXPROCS. The runtime starts with one P per CPU, and whatever runs before
// Main can lower it (the runtime's own start-up, every package's init) keeps what it
// allocated for the extra Ps and the OS threads they started for the life of the process:
// 0.15 MiB of resident memory on a 2-CPU machine, more on bigger ones (docs/benchmarks.md).
// Re-executing the binary (same PID, a few milliseconds) with GOMAXPROCS=1 avoids it; the
// configuration's max_procs applies afterwards as before. In the re-executed process it
// removes both variables again, so that exec probes do not inherit them. If the exec
// fails the daemon carries on as it started.
func startWithOneP() {
	if os.Getenv(reexecMarker) != "" {
		os.Unsetenv(reexecMarker)
		os.Unsetenv("GOMAXPROCS")
		return
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	env := append(os.Environ(), "GOMAXPROCS=1", reexecMarker+"=1")
	// /proc/self/exe is the running binary even if its file was replaced since.
	syscall.Exec("/proc/self/exe", os.Args, env)
}
