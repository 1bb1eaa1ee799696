package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/muesli/termenv"
)

// liveFleet is the fleet after 1.3.0 was promoted onto green, with 1.2.0 kept.
func liveFleet() Status {
	return Status{Service: "web", Target: "local", Endpoint: "127.0.0.1:8080", Deployed: true,
		Live: &v2, LiveSlot: fleet.Green, Previous: &v1,
		Weights: map[fleet.Slot]int{fleet.Green: 100},
		Instances: []fleet.InstanceHealth{
			inst("web-green-1", fleet.Green, fleet.Healthy, 11), inst("web-green-0", fleet.Green, fleet.Healthy, 11.5)},
		History: []Past{
			{Version: "1.3.0", Outcome: "promoted", Started: at(-95), Duration: 40 * time.Second},
			{Version: "1.3.0-rc.1", Outcome: "rolled-back", Started: at(-3 * 3600), Duration: time.Minute},
			{Version: "1.2.0", Outcome: "promoted", Started: at(-3 * 86400), Duration: time.Minute},
		}}
}

// statusConsole is a console that reads st as the fleet and records the rollbacks r starts.
type statusConsole struct {
	*Model
	ctl       *fakeControl
	reads     int
	rollbacks []string
	rbErr     error
}

func newStatusConsole(st Status, readErr error) *statusConsole {
	c := &statusConsole{ctl: &fakeControl{}}
	c.Model = New(Options{Control: c.ctl.send, Now: func() time.Time { return at(12) }, Profile: termenv.Ascii,
		StatusInterval: time.Millisecond,
		Status: func() (Status, error) {
			c.reads++
			return st, readErr
		},
		Rollback: func(to fleet.Release) func() error {
			c.rollbacks = append(c.rollbacks, to.Version)
			return func() error { return c.rbErr }
		}})
	return c
}

func TestRollbackKey(t *testing.T) {
	first := append([]rollout.Event{rollout.RolloutStarted{At: at(0), Service: "web", Target: "local", Slot: fleet.Blue}}, midRollout()[1:]...)
	tests := []struct {
		name      string
		status    bool // a status console (kiln watch) rather than kiln rollout's
		msgs      []tea.Msg
		rbErr     error
		sent      []rollout.Command
		rollbacks []string
		confirm   rollout.Command
		notice    string
		quit      bool
		detached  bool
	}{
		{name: "r asks before rolling a running rollout back",
			msgs: []tea.Msg{EventsMsg(midRollout()), key("r")}, confirm: cmdRollback},
		{name: "r then y sends the running rollout's traffic back: an abort",
			msgs: []tea.Msg{EventsMsg(midRollout()), key("r"), key("y")},
			sent: []rollout.Command{rollout.CmdAbort}, notice: "abort accepted"},
		{name: "r then n does nothing",
			msgs: []tea.Msg{EventsMsg(midRollout()), key("r"), key("n")}, notice: "rollback cancelled"},
		{name: "r on a first release has nothing to return to",
			msgs:   []tea.Msg{EventsMsg(first), key("r"), key("y")},
			notice: "nothing to roll back to: this is the service's first release (a aborts it)"},
		{name: "r after a rollout ended points to kiln rollback",
			msgs:   []tea.Msg{EventsMsg(failedRollout()), key("r")},
			notice: "the rollout has finished: kiln rollback returns to the previous release"},
		{name: "between rollouts r then y rolls the previous release out again", status: true,
			msgs:      []tea.Msg{statusMsg{st: liveFleet()}, key("r"), key("y")},
			rollbacks: []string{"1.2.0"}, notice: "rolling 1.2.0 out again…"},
		{name: "a rollback that cannot start says why", status: true, rbErr: errors.New("web is locked by kiln rollout (pid 7)"),
			msgs:      []tea.Msg{statusMsg{st: liveFleet()}, key("r"), key("y")},
			rollbacks: []string{"1.2.0"}, notice: "rollback refused: web is locked by kiln rollout (pid 7)"},
		{name: "between rollouts r needs a kept earlier release", status: true,
			msgs:   []tea.Msg{statusMsg{st: func() Status { s := liveFleet(); s.Previous = nil; return s }()}, key("r")},
			notice: "nothing to roll back to: no earlier promoted release is kept"},
		{name: "r waits for the fleet to be read", status: true,
			msgs: []tea.Msg{key("r")}, notice: "reading the fleet…"},
		{name: "r while the fleet cannot be read", status: true,
			msgs:   []tea.Msg{statusMsg{err: errors.New("stack web is locked")}, key("r")},
			notice: "the fleet cannot be read: stack web is locked"},
		{name: "between rollouts p has nothing to pause", status: true,
			msgs: []tea.Msg{statusMsg{st: liveFleet()}, key("p")}, notice: "no rollout is running: kiln rollout starts one"},
		{name: "a status console steers the rollout it follows", status: true,
			msgs: []tea.Msg{statusMsg{st: liveFleet()}, EventsMsg(midRollout()), key("p")},
			sent: []rollout.Command{rollout.CmdResume}, notice: "resume accepted"},
		{name: "q between rollouts leaves without detaching", status: true,
			msgs: []tea.Msg{statusMsg{st: liveFleet()}, key("q")}, quit: true},
		{name: "q while a followed rollout runs detaches", status: true,
			msgs: []tea.Msg{statusMsg{st: liveFleet()}, EventsMsg(midRollout()), key("q")}, quit: true, detached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m *Model
			var ctl *fakeControl
			var c *statusConsole
			quit := false
			if tt.status {
				c = newStatusConsole(liveFleet(), nil)
				c.rbErr = tt.rbErr
				quit = drive(c.Model, tt.msgs...)
				m, ctl = c.Model, c.ctl
			} else {
				ctl = &fakeControl{}
				m, quit = run(t, ctl, tt.msgs...)
			}
			if fmt.Sprint(ctl.sent) != fmt.Sprint(tt.sent) {
				t.Errorf("sent %v, want %v", ctl.sent, tt.sent)
			}
			if c != nil && fmt.Sprint(c.rollbacks) != fmt.Sprint(tt.rollbacks) {
				t.Errorf("rollbacks %v, want %v", c.rollbacks, tt.rollbacks)
			}
			if m.confirm != tt.confirm {
				t.Errorf("confirm %q, want %q", m.confirm, tt.confirm)
			}
			if tt.notice != "" && m.notice != tt.notice {
				t.Errorf("notice %q, want %q", m.notice, tt.notice)
			}
			if quit != tt.quit || m.Detached() != tt.detached {
				t.Errorf("quit %v detached %v, want %v %v", quit, m.Detached(), tt.quit, tt.detached)
			}
		})
	}
}

func TestRollbackInFlight(t *testing.T) {
	c := newStatusConsole(liveFleet(), nil)
	c.Update(statusMsg{st: liveFleet()})
	c.Update(key("r"))
	_, start := c.Update(key("y"))
	if !c.rollingBack {
		t.Fatal("not rolling back after y")
	}
	// Until the rollback's first event arrives, r has nothing more to do and q detaches:
	// the rollback runs in the caller's process, which goes on with it.
	c.Update(key("r"))
	if c.confirm != "" || c.notice != "the rollback is still running" {
		t.Errorf("second r: confirm %q, notice %q", c.confirm, c.notice)
	}
	c.Update(start())
	if c.rollingBack || len(c.rollbacks) != 1 {
		t.Errorf("after the rollback: rollingBack %v, rollbacks %v", c.rollingBack, c.rollbacks)
	}
}

func TestStatusConsoleFollowsRolloutsOneAfterAnother(t *testing.T) {
	c := newStatusConsole(liveFleet(), nil)
	c.Update(statusMsg{st: liveFleet()})
	if !c.idle() {
		t.Fatal("a status console with no rollout is not idle")
	}
	c.Update(EventsMsg(failedRollout()))
	if !c.idle() || c.s.fin == nil {
		t.Fatal("a finished rollout leaves the console idle, keeping its outcome")
	}
	logged := c.s.log.len()
	c.Update(EventsMsg(midRollout()[:5]))
	if c.idle() || c.s.fin != nil || c.s.problem != nil {
		t.Errorf("the next rollout did not replace the last: fin %v, problem %v", c.s.fin, c.s.problem)
	}
	if len(c.s.phases) != 2 || c.s.phases[1].phase != rollout.PhaseDeploy || c.s.phases[1].state != running {
		t.Errorf("phases of the new rollout: %+v", c.s.phases)
	}
	if c.s.log.len() <= logged {
		t.Errorf("the log was lost: %d lines, had %d", c.s.log.len(), logged)
	}
	// While it runs, the fleet is not read: the tick comes back without a reading.
	reads := c.reads
	if _, ok := c.readStatus()().(statusTick); !ok || c.reads != reads {
		t.Errorf("fleet read during a rollout (%d reads, had %d)", c.reads, reads)
	}
	c.Update(EventsMsg{rollout.PhaseFinished{At: at(20), Phase: rollout.PhaseDeploy, Duration: time.Second}, rollout.Finished{At: at(20), Outcome: rollout.Promoted, Duration: 20 * time.Second, From: &v1, To: &v2, Live: &v2}})
	if msg, ok := c.readStatus()().(statusMsg); !ok || c.reads != reads+1 || msg.st.Live.Version != "1.3.0" {
		t.Errorf("no fleet reading after the rollout: %#v", msg)
	}
	c.Update(frameMsg{})
	if v := c.View(); !strings.Contains(v, "✓ last rollout promoted in 20s · live 1.3.0 · r rolls back to 1.2.0") {
		t.Errorf("status line after the rollout:\n%s", v)
	}
}

// TestAPausedTimedHoldIsFrozen: pausing a timed pause stops its clock, so the console must
// not count it down.
func TestAPausedTimedHoldIsFrozen(t *testing.T) {
	now := at(12)
	m := New(Options{Plan: plan, Now: func() time.Time { return now }, Profile: termenv.Ascii})
	m.Update(EventsMsg(append(midRollout()[:20], rollout.Paused{At: at(10), Remaining: 90 * time.Second})))
	want := "‖ PAUSED (1m30s of the pause left): p resume · enter promote · a abort"
	if got := m.statusLine(now); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	now = now.Add(time.Minute)
	if got := m.statusLine(now); got != want {
		t.Errorf("a minute later: %q, want %q", got, want)
	}
}

// TestInstancesAreReadLiveDuringARollout: with Options.Health the instances shown are read
// every interval while the rollout runs, not only when the engine reports them.
func TestInstancesAreReadLiveDuringARollout(t *testing.T) {
	reads := 0
	live := []fleet.InstanceHealth{inst("web-blue-0", fleet.Blue, fleet.Healthy, 11.8),
		{ID: "web-green-0", Slot: fleet.Green, State: fleet.Unhealthy, LastCheck: at(11.9), Restarts: 2, LastError: "GET /healthz: 503"}}
	m := New(Options{Plan: plan, Now: func() time.Time { return at(12) }, Profile: termenv.Ascii, StatusInterval: time.Millisecond,
		Health: func() ([]fleet.InstanceHealth, error) { reads++; return live, nil }})
	if _, ok := m.readStatus()().(statusTick); !ok || reads != 0 {
		t.Fatalf("health read before the rollout started (%d reads)", reads)
	}
	m.Update(EventsMsg(midRollout()))
	msg := m.readStatus()()
	m.Update(msg)
	if reads != 1 {
		t.Fatalf("%d health reads during the rollout, want 1", reads)
	}
	blue, green := m.s.instances[fleet.Blue], m.s.instances[fleet.Green]
	if len(blue) != 1 || len(green) != 1 || green[0].State != fleet.Unhealthy || green[0].Restarts != 2 {
		t.Errorf("instances after a reading: blue %v, green %v", blue, green)
	}
	m.redraw()
	if v := m.View(); !strings.Contains(v, "✗ web-green-0") || !strings.Contains(v, "unhealthy  0s ago ↻2 GET") {
		t.Errorf("the reading is not on screen:\n%s", v)
	}
	m.Update(EventsMsg(failedRollout()[len(failedRollout())-1:]))
	if _, ok := m.readStatus()().(statusTick); !ok || reads != 1 {
		t.Errorf("health read after the rollout ended (%d reads)", reads)
	}
}
