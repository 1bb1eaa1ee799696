//go:build unix

package releases

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/kilnhq/kiln/internal/procstat"
)

// processStart reports whether pid runs and, where /proc tells, its kernel start time.
// A zombie counts as gone: it will never release anything.
func processStart(pid int) (start uint64, alive bool, err error) {
	if pid <= 0 {
		return 0, false, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		return parseStat(data)
	}
	if _, serr := os.Stat("/proc/self/stat"); serr == nil && !errors.Is(err, os.ErrNotExist) {
		return 0, false, err
	}
	// No /proc (macOS, BSD), or no entry for pid, which also happens for another user's
	// live process under hidepid: ask the kernel whether the PID exists.
	switch err := syscall.Kill(pid, 0); {
	case err == nil, errors.Is(err, syscall.EPERM):
		return 0, true, nil
	case errors.Is(err, syscall.ESRCH):
		return 0, false, nil
	default:
		return 0, false, err
	}
}

// parseStat reads whether a /proc/<pid>/stat line is a live process, and its start time.
func parseStat(data []byte) (uint64, bool, error) {
	st, err := procstat.Parse(data)
	if err != nil || st.Gone() {
		return 0, false, err
	}
	return st.StartTime, true, nil
}

// flock takes or tries the kernel's exclusive lock on f. The kernel drops it when the
// process dies, however it dies.
func flockTry(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return false, nil
	}
	return false, err
}

func flockRelease(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
