// Package procstat reads what kiln needs from /proc/<pid>/stat: whether a process is
// gone, its process group, and its kernel start time — which, with the pid, identifies a
// process even after the pid is reused.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Stat is the part of /proc/<pid>/stat kiln uses.
type Stat struct {
	// State is field 3: R, S, D, Z (zombie), X (dead), ...
	State byte
	// PGID is field 5, the process group.
	PGID int
	// StartTime is field 22, in clock ticks since boot.
	StartTime uint64
}

// Gone reports whether the process has exited (a zombie or dead): it runs no code and
// will never release anything.
func (s Stat) Gone() bool { return s.State == 'Z' || s.State == 'X' }

// Parse reads a /proc/<pid>/stat line. The command (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func Parse(data []byte) (Stat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("proc stat: no command field")
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("proc stat: %d fields after the command, want at least 20", len(f))
	}
	pgid, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return Stat{}, fmt.Errorf("proc stat: process group: %w", err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("proc stat: start time: %w", err)
	}
	return Stat{State: f[0][0], PGID: pgid, StartTime: start}, nil
}

// Read reads and parses /proc/<pid>/stat.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return Parse(b)
}
