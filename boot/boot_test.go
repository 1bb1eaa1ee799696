package boot

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUnitsStartWithInstanceEnvAndExpandedArgs(t *testing.T) {
	t.Setenv("KILN_BOOT_TEST_SECRET", "must-not-leak")
	app := testUnit("app", RestartAlways, "env", "${KILN_DATA_DIR}/env.json", "--port=${PORT}", "--metrics", "${METRICS_ADDR}", "$literal")
	app.Env["METRICS_ADDR"] = "127.0.0.1:${KILN_PORT_METRICS}"
	web := testUnit("web", RestartAlways, "serve")
	in := newInstance(t, 5*time.Second, web, app)
	in.start(Options{})

	in.waitUnit("running", "app", func(u UnitStatus) bool { return u.State == StateRunning })
	in.waitUnit("running", "web", func(u UnitStatus) bool { return u.State == StateRunning })
	var got struct {
		Args []string
		Env  []string
		Cwd  string
	}
	waitFor(t, "env.json", func() bool {
		return json.Unmarshal([]byte(readFile(t, filepath.Join(in.dataDir, "env.json"))), &got) == nil
	})
	if want := []string{"--port=41234", "--metrics", "127.0.0.1:41235", "$literal"}; !slices.Equal(got.Args, want) {
		t.Errorf("args = %q, want %q", got.Args, want)
	}
	for _, kv := range []string{"PORT=41234", "KILN_PORT_METRICS=41235", "KILN_SERVICE=hello", "KILN_VERSION=1.0.0",
		"KILN_INSTANCE=hello-green-0", "KILN_IMAGE_DIR=" + in.imageDir, "KILN_DATA_DIR=" + in.dataDir,
		"METRICS_ADDR=127.0.0.1:41235", "HOST=127.0.0.1", "KILN_LISTEN=127.0.0.1:41234"} {
		if !slices.Contains(got.Env, kv) {
			t.Errorf("env lacks %s: %q", kv, got.Env)
		}
	}
	for _, kv := range got.Env {
		if strings.Contains(kv, "must-not-leak") {
			t.Errorf("boot's own env leaked into the unit: %s", kv)
		}
	}
	if got.Cwd != in.dataDir {
		t.Errorf("cwd = %s, want the data dir", got.Cwd)
	}

	st, err := in.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || len(st.Units) != 2 || st.Units[0].Name != "app" || st.Units[1].Name != "web" {
		t.Errorf("status = %+v", st)
	}
	for _, u := range st.Units {
		if u.PID == 0 || u.Restarts != 0 {
			t.Errorf("unit %+v", u)
		}
		if _, err := time.Parse(time.RFC3339Nano, u.Since); err != nil {
			t.Errorf("since: %v", err)
		}
	}
	logs := in.logs.String()
	if a, w := strings.Index(logs, "unit=app pid="), strings.Index(logs, "unit=web pid="); a < 0 || w < 0 || a > w {
		t.Errorf("units did not start in name order:\n%s", logs)
	}
	waitFor(t, "web log", func() bool {
		l := readFile(t, filepath.Join(in.dataDir, "logs", "web.log"))
		return strings.Contains(l, "hello on stdout\n") && strings.Contains(l, "hello on stderr\n")
	})
}

func TestStatusDocumentKeys(t *testing.T) {
	in := newInstance(t, time.Second, testUnit("web", RestartAlways, "serve"))
	in.start(Options{})
	in.waitUnit("running", "web", func(u UnitStatus) bool { return u.State == StateRunning })
	var raw map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(in.dataDir, "status.json"))), &raw); err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(raw); !slices.Equal(got, []string{"pid", "started", "units"}) {
		t.Errorf("status keys = %v", got)
	}
	u := raw["units"].([]any)[0].(map[string]any)
	if got := sortedKeys(u); !slices.Equal(got, []string{"lastExit", "name", "pid", "restarts", "since", "state"}) {
		t.Errorf("unit keys = %v", got)
	}
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestCrashRestartsWithBackoff(t *testing.T) {
	in := newInstance(t, time.Second, testUnit("app", RestartAlways, "exit", "1"))
	fa := &fastAfter{}
	in.start(Options{After: fa.after})
	in.waitUnit("restarted 5 times", "app", func(u UnitStatus) bool { return u.Restarts >= 5 && u.LastExit == "exit status 1" })
	in.stop()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}
	if got := fa.waits(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("backoff delays = %v, want to start with %v", got, want)
	}
}

func TestBackoffDoublesCapsAndResets(t *testing.T) {
	tests := []struct {
		prev, uptime, delay, next time.Duration
	}{
		{BackoffMin, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{6400 * time.Millisecond, time.Second, 6400 * time.Millisecond, BackoffMax},
		{BackoffMax, 9 * time.Second, BackoffMax, BackoffMax},
		{BackoffMax, BackoffReset, BackoffMin, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		if d, n := backoff(tt.prev, tt.uptime); d != tt.delay || n != tt.next {
			t.Errorf("backoff(%v, %v) = %v, %v; want %v, %v", tt.prev, tt.uptime, d, n, tt.delay, tt.next)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	in := newInstance(t, time.Second,
		testUnit("always0", RestartAlways, "exit", "0"),
		testUnit("never3", RestartNever, "exit", "3"),
		testUnit("onfail0", RestartOnFailure, "exit", "0"),
		testUnit("onfail3", RestartOnFailure, "exit", "3"))
	in.start(Options{After: (&fastAfter{}).after})
	in.waitUnit("restarted", "always0", func(u UnitStatus) bool { return u.Restarts >= 2 })
	in.waitUnit("restarted", "onfail3", func(u UnitStatus) bool { return u.Restarts >= 2 })
	in.waitUnit("exited", "onfail0", func(u UnitStatus) bool { return u.State == StateExited && u.LastExit == "exit status 0" })
	in.waitUnit("exited", "never3", func(u UnitStatus) bool { return u.State == StateExited && u.LastExit == "exit status 3" })
	in.stop()
	for _, name := range []string{"onfail0", "never3"} {
		if u := in.unit(name); u.Restarts != 0 || u.State != StateExited {
			t.Errorf("%s = %+v, want exited without restarts", name, u)
		}
	}
}

func TestScheduleRunsEveryPeriodWithoutOverlap(t *testing.T) {
	t.Run("overlong runs", func(t *testing.T) {
		dir := t.TempDir()
		u := testUnit("backup", "", "sched", dir)
		u.Mode, u.Schedule = ModeSchedule, "20ms"
		in := newInstance(t, time.Second, u)
		in.start(Options{})
		in.waitUnit("4 runs", "backup", func(u UnitStatus) bool { return u.Restarts >= 4 && u.LastExit == "exit status 0" })
		in.stop()
		if o := readFile(t, filepath.Join(dir, "overlap")); o != "" {
			t.Fatalf("runs overlapped: %s", o)
		}
		if n := strings.Count(readFile(t, filepath.Join(dir, "runs")), "\n"); n < 4 {
			t.Errorf("%d runs recorded, want 4", n)
		}
	})
	t.Run("waits for the period", func(t *testing.T) {
		u := testUnit("backup", "", "exit", "0")
		u.Mode, u.Schedule = ModeSchedule, "1h"
		in := newInstance(t, time.Second, u)
		fa := &fastAfter{}
		in.start(Options{After: fa.after})
		in.waitUnit("ran 3 times", "backup", func(u UnitStatus) bool { return u.Restarts >= 3 })
		in.stop()
		for _, d := range fa.waits() {
			if d < 59*time.Minute || d > time.Hour {
				t.Errorf("waited %v between runs, want the rest of the hour", d)
			}
		}
	})
}

func TestCancelSendsTermThenKill(t *testing.T) {
	// The drain is generous so that the well-behaved unit always exits in time,
	// even on a loaded machine under -race; the stubborn one costs all of it.
	in := newInstance(t, 2*time.Second,
		testUnit("stubborn", RestartAlways, "ignore-term"),
		testUnit("web", RestartAlways, "serve"))
	in.start(Options{})
	stubborn := in.waitUnit("running", "stubborn", func(u UnitStatus) bool { return u.State == StateRunning })
	web := in.waitUnit("running", "web", func(u UnitStatus) bool { return u.State == StateRunning })
	waitFor(t, "signal handlers installed", func() bool {
		return strings.Contains(readFile(t, filepath.Join(in.dataDir, "logs", "stubborn.log")), "ignoring SIGTERM") &&
			strings.Contains(readFile(t, filepath.Join(in.dataDir, "logs", "web.log")), "hello on stderr")
	})
	in.stop()
	if u := in.unit("stubborn"); u.State != StateStopped || u.LastExit != "signal: killed" {
		t.Errorf("stubborn = %+v, want stopped by SIGKILL", u)
	}
	if u := in.unit("web"); u.State != StateStopped || u.LastExit != "exit status 0" {
		t.Errorf("web = %+v, want a clean exit on SIGTERM", u)
	}
	for _, pid := range []int{stubborn.PID, web.PID} {
		if !gone(pid) {
			t.Errorf("pid %d still runs after boot returned", pid)
		}
	}
	if !strings.Contains(in.logs.String(), "ignored SIGTERM") {
		t.Errorf("boot did not log the SIGKILL")
	}
}

func TestMissingCommandKeepsRetrying(t *testing.T) {
	missing := Unit{Name: "agent", Command: "bin/missing", Restart: RestartAlways}
	in := newInstance(t, time.Second, missing, testUnit("web", RestartAlways, "serve"))
	in.start(Options{After: (&fastAfter{}).after})
	u := in.waitUnit("retried", "agent", func(u UnitStatus) bool { return u.Restarts >= 3 })
	if !strings.Contains(u.LastExit, "start failed") || !strings.Contains(u.LastExit, "no such file or directory") {
		t.Errorf("agent = %+v", u)
	}
	in.waitUnit("running", "web", func(u UnitStatus) bool { return u.State == StateRunning })
	if !strings.Contains(in.logs.String(), "unit cannot start") {
		t.Errorf("no log of the start failure")
	}
}

func TestChildrenDieWhenBootIsKilled(t *testing.T) {
	in := newInstance(t, time.Second, testUnit("web", RestartAlways, "serve"))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), bootEnv+"="+in.specPath)
	cmd.Stderr = in.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as the provider starts it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("boot logs:\n%s", in.logs.String())
		}
	})
	web := in.waitUnit("running", "web", func(u UnitStatus) bool { return u.State == StateRunning })
	t.Cleanup(func() { _ = syscall.Kill(web.PID, syscall.SIGKILL) }) // should Pdeathsig fail
	if st, _ := in.status(); st.PID != cmd.Process.Pid {
		t.Fatalf("status pid %d, boot is %d", st.PID, cmd.Process.Pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, "unit to die with boot", func() bool { return gone(web.PID) })
}

func TestLoadErrorsNameFileAndField(t *testing.T) {
	tests := []struct {
		name string
		unit string
		want string
	}{
		{"unknown field", "{\"name\": \"app\",\n \"comand\": \"bin/x\"}", `units/app.json:2: unknown field "comand"`},
		{"restart", `{"name": "app", "command": "bin/x", "restart": "sometimes"}`, `units/app.json: restart: must be always, on-failure or never, got "sometimes"`},
		{"mode", `{"name": "app", "command": "bin/x", "mode": "cron"}`, `mode: must be service or schedule, got "cron"`},
		{"schedule", `{"name": "app", "command": "bin/x", "mode": "schedule"}`, `schedule: mode schedule needs a positive Go duration`},
		{"absolute command", `{"name": "app", "command": "/bin/sh"}`, `command: "/bin/sh" must be a path inside the image`},
		{"escaping command", `{"name": "app", "command": "../bin/sh"}`, `command: "../bin/sh" must be a path inside the image`},
		{"name", `{"name": "a/b", "command": "bin/x"}`, `name: "a/b" must be letters`},
		{"unset arg", `{"name": "app", "command": "bin/x", "args": ["--p", "${NOPE}"]}`, `units/app.json: args[1]: ${NOPE} is not set`},
		{"unset env", `{"name": "app", "command": "bin/x", "env": {"A": "${NOPE}"}}`, `units/app.json: env.A: ${NOPE} is not set`},
		{"wrong type", "{\"name\": \"app\",\n\"command\": \"bin/x\",\n\"args\": \"--x\"}", `units/app.json:3: field args: expected []string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t, time.Second)
			if err := os.WriteFile(filepath.Join(in.imageDir, "units", "app.json"), []byte(tt.unit), 0o644); err != nil {
				t.Fatal(err)
			}
			err := RunWith(t.Context(), in.specPath, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("no units", func(t *testing.T) {
		in := newInstance(t, time.Second)
		if err := RunWith(t.Context(), in.specPath, Options{}); err == nil || !strings.Contains(err.Error(), "no units in") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("relative data dir", func(t *testing.T) {
		in := newInstance(t, time.Second)
		writeJSON(t, in.specPath, Spec{Instance: "i", ImageDir: in.imageDir, DataDir: "run/i"})
		if err := RunWith(t.Context(), in.specPath, Options{}); err == nil || !strings.Contains(err.Error(), `dataDir: must be an absolute path, got "run/i"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLogFileRotatesKeepingOneOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	l, err := openLog(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := strings.Repeat("a", 60), strings.Repeat("b", 60), strings.Repeat("c", 60)
	for _, s := range []string{a, b, c} {
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if got := readFile(t, path); got != c {
		t.Errorf("current log = %q", got)
	}
	if got := readFile(t, path+".1"); got != b {
		t.Errorf("old log = %q, want only the previous file", got)
	}
	// Reopening appends and counts the existing size.
	l, err = openLog(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = l.Write([]byte("d"))
	_, _ = l.Write([]byte(strings.Repeat("e", 50)))
	l.Close()
	if got := readFile(t, path); got != strings.Repeat("e", 50) {
		t.Errorf("after reopen = %q", got)
	}
	if got := readFile(t, path+".1"); got != c+"d" {
		t.Errorf("old after reopen = %q", got)
	}
}
