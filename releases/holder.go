package releases

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// Holder identifies the process that holds a stack's lock.
type Holder struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// StartTime is the kernel's start time of PID (field 22 of /proc/<pid>/stat, in clock
	// ticks since boot), so a PID reused by another process is not taken for the holder.
	// Zero where the system does not tell.
	StartTime uint64 `json:"startTime"`
	User      string `json:"user"`
	// Command is what the holder runs, e.g. "kiln rollout".
	Command string `json:"command"`
	// Since is when the lock was taken.
	Since time.Time `json:"since"`
}

// CurrentHolder describes this process running command, as of now.
func CurrentHolder(command string) Holder {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	pid := os.Getpid()
	st, _, _ := processStart(pid)
	return Holder{
		Host:      host,
		PID:       pid,
		StartTime: st,
		User:      currentUser(),
		Command:   command,
		Since:     time.Now().UTC().Round(0),
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

// Same reports whether h and o name the same holder: the same process, taking the lock
// at the same instant.
func (h Holder) Same(o Holder) bool {
	return h.Host == o.Host && h.PID == o.PID && h.StartTime == o.StartTime &&
		h.User == o.User && h.Command == o.Command && h.Since.Equal(o.Since)
}

// String describes the holder as "kiln rollout (pid 1234 on host h, user u)".
func (h Holder) String() string {
	cmd := h.Command
	if cmd == "" {
		cmd = "an unnamed command"
	}
	return fmt.Sprintf("%s (pid %d on host %s, user %s)", cmd, h.PID, h.Host, h.User)
}

// holderState is what this host can tell about a holder.
type holderState int

const (
	holderAlive     holderState = iota // running on this host
	holderGone                         // was on this host, is not running any more
	holderOtherHost                    // on another host: cannot be told
)

// judge tells whether h still runs, as seen from host.
func judge(h Holder, host string) holderState {
	if h.Host != host {
		return holderOtherHost
	}
	st, alive, err := processStart(h.PID)
	if err != nil {
		// Unknown means alive: a lock is never called stale on a guess.
		return holderAlive
	}
	if !alive {
		return holderGone
	}
	if h.StartTime != 0 && st != 0 && st != h.StartTime {
		return holderGone // the PID was reused by another process
	}
	return holderAlive
}

// LockedError is returned by Lock when the stack's lock is held.
type LockedError struct {
	// Stack is the stack's name.
	Stack string
	// Holder is who holds the lock (zero if the lock file is unreadable, see Err).
	Holder Holder
	// Stale is set when the holder ran on this host and is gone: the lock can be broken
	// safely with BreakLock(Holder).
	Stale bool
	// OtherHost is set when the holder runs on another host, so kiln cannot tell whether
	// it is still running.
	OtherHost bool
	// At is when the lock was found held, for "3m ago".
	At time.Time
	// Expires is when the holder's lease runs out (shared backends; zero for the file
	// backend, whose holders are judged by their pid).
	Expires time.Time
	// Err is set when the lock file exists but cannot be decoded; BreakLock(Holder{})
	// removes such a file.
	Err error
}

// Error reads "stack shop is locked by kiln rollout (pid 1234 on host h, user u) since
// 12:00:01 (3m ago)", followed by what to do when the holder is gone or cannot be seen.
func (e *LockedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("stack %s is locked, but its lock file cannot be read (%v); if no kiln is working on this stack, clear it with --break-lock", e.Stack, e.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "stack %s is locked by %s since %s", e.Stack, e.Holder, sinceText(e.Holder.Since, e.At))
	switch {
	case e.OtherHost && !e.Expires.IsZero() && !e.At.Before(e.Expires):
		fmt.Fprintf(&b, "; its lease expired at %s without renewal: the holder is gone; clear it with --break-lock, or resume its rollout with --resume", e.Expires.Local().Format("15:04:05"))
	case e.Stale:
		b.WriteString("; that process is gone; clear it with --break-lock")
	case e.OtherHost && !e.Expires.IsZero():
		fmt.Fprintf(&b, "; its lease runs until %s and is renewed while it works: wait for it, or once the lease has expired, clear it with --break-lock", e.Expires.Local().Format("15:04:05"))
	case e.OtherHost:
		b.WriteString("; kiln cannot see processes on that host: if it is no longer running, clear it with --break-lock")
	}
	return b.String()
}

// Unwrap returns why the lock file could not be read, if that is the case.
func (e *LockedError) Unwrap() error { return e.Err }

// sinceText formats "12:00:01 (3m ago)", with the date when since is not on at's day.
func sinceText(since, at time.Time) string {
	s := since.Local()
	a := at.Local()
	layout := "15:04:05"
	y1, m1, d1 := s.Date()
	if y2, m2, d2 := a.Date(); !at.IsZero() && (y1 != y2 || m1 != m2 || d1 != d2) {
		layout = "2006-01-02 15:04:05"
	}
	if at.IsZero() {
		return s.Format("2006-01-02 15:04:05")
	}
	return fmt.Sprintf("%s (%s ago)", s.Format(layout), ago(at.Sub(since)))
}

// ago rounds d for people: 45s, 3m, 2h5m, 3d4h.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}
