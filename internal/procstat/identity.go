package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's start times: clock ticks of 1/100 s, fixed by Linux's
// user ABI whatever the kernel's own tick.
const userHZ = 100

// clockSlack covers the error of a start time turned into wall time: the boot time /proc
// gives is whole seconds, and the wall clock may have been stepped since the boot.
const clockSlack = 2 * time.Second

// Started returns when the process st describes started, in wall time (to a second or so).
func Started(st Stat) (time.Time, error) {
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(st.StartTime) * time.Second / userHZ), nil
}

func bootTime() (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("/proc/stat has no btime")
}

// Exe returns the executable pid runs (/proc/<pid>/exe), as it was named when started.
func Exe(pid int) (string, error) {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, " (deleted)"), nil
}

// Cmdline returns pid's arguments, argv[0] first.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// Identity is what a process kiln signals without having just started it must be: a pid
// read from a file may since have been reused by any other process, so the pid comes
// with the executable it must run and the window its start must fall in. A zero field
// is not checked.
type Identity struct {
	// Exe is the executable's path (/proc/<pid>/exe); ExeName only its base name.
	Exe, ExeName string
	// Args, if set, must be the whole command line.
	Args []string
	// StartedBefore: a record the process itself wrote (a lock) is from then, so the
	// process started before.
	StartedBefore time.Time
	// StartedAfter: a record written before the process was started (its spec) is from
	// then, so the process started after.
	StartedAfter time.Time
	// Leader requires the process to lead its process group, which is signalled too.
	Leader bool
}

// Is reports whether pid is a live process with this identity. Anything it cannot read
// (a process gone, or another user's) is not it.
func (id Identity) Is(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := Read(pid)
	if err != nil || st.Gone() || (id.Leader && st.PGID != pid) {
		return false
	}
	if !id.StartedBefore.IsZero() || !id.StartedAfter.IsZero() {
		started, err := Started(st)
		if err != nil {
			return false
		}
		if !id.StartedBefore.IsZero() && started.After(id.StartedBefore.Add(clockSlack)) {
			return false
		}
		if !id.StartedAfter.IsZero() && started.Before(id.StartedAfter.Add(-clockSlack)) {
			return false
		}
	}
	if id.Exe != "" || id.ExeName != "" {
		exe, err := Exe(pid)
		if err != nil || (id.Exe != "" && exe != id.Exe) || (id.ExeName != "" && filepath.Base(exe) != id.ExeName) {
			return false
		}
	}
	if id.Args != nil {
		args, err := Cmdline(pid)
		if err != nil || !slices.Equal(args, id.Args) {
			return false
		}
	}
	// The process read last could have exited and its pid been reused meanwhile: its
	// start time must not have changed.
	again, err := Read(pid)
	return err == nil && again.StartTime == st.StartTime
}
