package procstat

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestIdentityTellsAProcessFromAnotherWithItsPid(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if sleep, err = filepath.EvalSymlinks(sleep); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	cmd := exec.Command(sleep, "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	after := time.Now()

	st, err := Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	started, err := Started(st)
	if err != nil {
		t.Fatal(err)
	}
	if started.Before(before.Add(-clockSlack)) || started.After(after.Add(clockSlack)) {
		t.Errorf("started %v, want between %v and %v", started, before, after)
	}

	it := Identity{Exe: sleep, ExeName: filepath.Base(sleep), Args: []string{sleep, "30"}, StartedAfter: before, StartedBefore: after, Leader: true}
	if !it.Is(pid) {
		t.Fatal("the process is not itself")
	}
	for name, other := range map[string]Identity{
		"another executable":          {Exe: "/usr/bin/pulumi"},
		"another executable's name":   {ExeName: "pulumi"},
		"other arguments":             {Args: []string{sleep, "31"}},
		"started after its record":    {StartedBefore: before.Add(-time.Hour)},
		"started before its spec":     {StartedAfter: after.Add(time.Hour)},
		"not the leader of its group": {Leader: true},
	} {
		target := pid
		if name == "not the leader of its group" {
			follower := exec.Command(sleep, "30")
			if err := follower.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { follower.Process.Kill(); follower.Wait() }()
			target = follower.Process.Pid
			if !(Identity{}).Is(target) {
				t.Fatal("a live process with no identity asked is not itself")
			}
		}
		if other.Is(target) {
			t.Errorf("%s: taken for the process", name)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if it.Is(pid) {
		t.Error("a process that exited is still itself")
	}
}
