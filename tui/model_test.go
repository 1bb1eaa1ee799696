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

func key(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// fakeControl records the commands the console sends and answers with err.
type fakeControl struct {
	sent []rollout.Command
	err  error
}

func (c *fakeControl) send(cmd rollout.Command) error {
	c.sent = append(c.sent, cmd)
	return c.err
}

// run feeds msgs to a new console (see drive) and returns it and whether it quit.
func run(t *testing.T, ctl *fakeControl, msgs ...tea.Msg) (*Model, bool) {
	t.Helper()
	m := New(Options{Control: ctl.send, Plan: plan, Now: func() time.Time { return at(12) }, Profile: termenv.Ascii})
	return m, drive(m, msgs...)
}

// drive feeds msgs to m, running each command Update returns once, the way bubbletea
// would (except frame and status ticks), and feeding back the answers to controls and
// rollbacks. It reports whether the console quit.
func drive(m *Model, msgs ...tea.Msg) (quit bool) {
	for _, msg := range msgs {
		_, cmd := m.Update(msg)
		if cmd == nil {
			continue
		}
		switch out := cmd().(type) {
		case tea.QuitMsg:
			quit = true
		case controlResult, rollbackDone:
			m.Update(out)
		}
	}
	return quit
}

func TestUpdate(t *testing.T) {
	refuse := errors.New("the rollout is already paused")
	tests := []struct {
		name     string
		msgs     []tea.Msg
		ctlErr   error
		sent     []rollout.Command
		quit     bool
		detached bool
		check    func(t *testing.T, m *Model)
	}{
		{name: "events fold into the state without a redraw",
			msgs: []tea.Msg{EventsMsg(midRollout())},
			check: func(t *testing.T, m *Model) {
				s := m.s
				if s.service != "web" || s.to == nil || s.to.Version != "1.3.0" || s.from.Version != "1.2.0" {
					t.Errorf("header state: %+v %v %v", s.service, s.from, s.to)
				}
				if s.weights[fleet.Blue] != 75 || s.weights[fleet.Green] != 25 {
					t.Errorf("weights = %v", s.weights)
				}
				if s.paused == nil || !s.paused.Indefinite {
					t.Errorf("paused = %v", s.paused)
				}
				want := []phaseState{done, done, done, done, running, pending, pending, pending}
				for i, w := range want {
					if s.phases[i].state != w {
						t.Errorf("phase %d %s: state %d, want %d", i, phaseName(s.phases[i].phase, s.phases[i].step), s.phases[i].state, w)
					}
				}
				if len(s.metrics) != 1 || s.metrics[0].passed != 3 || s.metrics[0].samples.len() != 3 {
					t.Errorf("metrics = %+v", s.metrics)
				}
				if !m.dirty {
					t.Error("events did not mark the frame dirty")
				}
			}},
		{name: "a frame redraws", msgs: []tea.Msg{EventsMsg(midRollout()), frameMsg{}},
			check: func(t *testing.T, m *Model) {
				if m.dirty {
					t.Error("still dirty after a frame")
				}
			}},
		{name: "p pauses a running rollout", msgs: []tea.Msg{EventsMsg(midRollout()[:10]), key("p")},
			sent: []rollout.Command{rollout.CmdPause},
			check: func(t *testing.T, m *Model) {
				if m.notice != "pause accepted" || m.pending != "" {
					t.Errorf("notice %q, pending %q", m.notice, m.pending)
				}
			}},
		{name: "p resumes a paused rollout", msgs: []tea.Msg{EventsMsg(midRollout()), key("p")},
			sent: []rollout.Command{rollout.CmdResume}},
		{name: "a refused control is shown", msgs: []tea.Msg{EventsMsg(midRollout()[:10]), key("p")}, ctlErr: refuse,
			sent: []rollout.Command{rollout.CmdPause},
			check: func(t *testing.T, m *Model) {
				if m.noticeOK || m.notice != "pause refused: the rollout is already paused" {
					t.Errorf("notice %q ok=%v", m.notice, m.noticeOK)
				}
			}},
		{name: "enter asks before promoting", msgs: []tea.Msg{EventsMsg(midRollout()), key("enter")},
			check: func(t *testing.T, m *Model) {
				if m.confirm != rollout.CmdPromote {
					t.Errorf("confirm = %q", m.confirm)
				}
			}},
		{name: "enter then y promotes", msgs: []tea.Msg{EventsMsg(midRollout()), key("enter"), key("y")},
			sent: []rollout.Command{rollout.CmdPromote}},
		{name: "enter then n does nothing", msgs: []tea.Msg{EventsMsg(midRollout()), key("enter"), key("n")},
			check: func(t *testing.T, m *Model) {
				if m.confirm != "" || m.notice != "promote cancelled" {
					t.Errorf("confirm %q notice %q", m.confirm, m.notice)
				}
			}},
		{name: "a then y aborts", msgs: []tea.Msg{EventsMsg(midRollout()), key("a"), key("y")},
			sent: []rollout.Command{rollout.CmdAbort}},
		{name: "a then esc does not abort", msgs: []tea.Msg{EventsMsg(midRollout()), key("a"), key("esc")}},
		{name: "q detaches a running rollout", msgs: []tea.Msg{EventsMsg(midRollout()), key("q")},
			quit: true, detached: true},
		{name: "ctrl+c detaches too, never aborts", msgs: []tea.Msg{EventsMsg(midRollout()), key("ctrl+c")},
			quit: true, detached: true},
		{name: "q after the end is not a detach",
			msgs: []tea.Msg{EventsMsg(failedRollout()), StreamClosedMsg{}, key("q")}, quit: true},
		{name: "no controls once finished",
			msgs: []tea.Msg{EventsMsg(failedRollout()), key("p"), key("a"), key("y"), key("enter")},
			check: func(t *testing.T, m *Model) {
				if m.confirm != "" {
					t.Errorf("confirm = %q", m.confirm)
				}
			}},
		{name: "a failure is shown in place with what to do",
			msgs: []tea.Msg{EventsMsg(failedRollout())},
			check: func(t *testing.T, m *Model) {
				p := m.s.problem
				if p == nil || p.what != "rolled-back" || p.why != "NewSlotNotHealthy: 2 new instances not healthy after 30s" || p.todo == "" {
					t.Fatalf("problem = %+v", p)
				}
				if m.s.phases[2].state != failed || m.s.phases[2].err == "" {
					t.Errorf("health row = %+v", m.s.phases[2])
				}
				if last := m.s.phases[len(m.s.phases)-1]; last.phase != rollout.PhaseRollback || last.state != done {
					t.Errorf("rollback row = %+v", last)
				}
			}},
		{name: "a failed first release says nothing is left",
			msgs: []tea.Msg{EventsMsg([]rollout.Event{rollout.Finished{Outcome: rollout.Failed, Reason: rollout.ReasonDeployFailed, Message: "address already in use"}})},
			check: func(t *testing.T, m *Model) {
				p := m.s.problem
				if p == nil || p.what != "failed" || !strings.Contains(p.todo, "nothing is left") {
					t.Fatalf("problem = %+v", p)
				}
			}},
		{name: "promote marks the skipped steps",
			msgs: []tea.Msg{EventsMsg(append(midRollout(),
				rollout.Resumed{At: at(10), Promoted: true},
				rollout.PhaseFinished{At: at(10), Phase: rollout.PhaseStep, Step: 1, Duration: 2e9},
				rollout.PhaseStarted{At: at(10), Phase: rollout.PhaseStep, Step: 3}))},
			check: func(t *testing.T, m *Model) {
				if m.s.paused != nil || m.s.phases[5].state != skipped || m.s.phases[6].state != running {
					t.Errorf("paused %v, step 2 %d, step 3 %d", m.s.paused, m.s.phases[5].state, m.s.phases[6].state)
				}
			}},
		{name: "an abort ends the pause without a Resumed",
			msgs: []tea.Msg{EventsMsg(append(midRollout(),
				rollout.PhaseFinished{At: at(11), Phase: rollout.PhaseStep, Step: 1, Duration: 3e9, Error: "aborted by a human"},
				rollout.PhaseStarted{At: at(11), Phase: rollout.PhaseRollback}))},
			check: func(t *testing.T, m *Model) {
				if m.s.paused != nil {
					t.Errorf("still paused during the rollback")
				}
				if m.s.phases[4].state != failed || m.s.phases[5].state != pending || m.s.phases[len(m.s.phases)-1].state != running {
					t.Errorf("phases %+v", m.s.phases)
				}
			}},
		{name: "resize", msgs: []tea.Msg{tea.WindowSizeMsg{Width: 120, Height: 40}},
			check: func(t *testing.T, m *Model) {
				if m.width != 120 || m.height != 40 {
					t.Errorf("size %dx%d", m.width, m.height)
				}
			}},
		{name: "? toggles help", msgs: []tea.Msg{key("?")},
			check: func(t *testing.T, m *Model) {
				if !m.help {
					t.Error("no help")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := &fakeControl{err: tt.ctlErr}
			m, quit := run(t, ctl, tt.msgs...)
			if fmt.Sprint(ctl.sent) != fmt.Sprint(tt.sent) {
				t.Errorf("sent %v, want %v", ctl.sent, tt.sent)
			}
			if quit != tt.quit || m.Detached() != tt.detached {
				t.Errorf("quit %v detached %v, want %v %v", quit, m.Detached(), tt.quit, tt.detached)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestBoundedUnderBurst(t *testing.T) {
	m, _ := run(t, &fakeControl{})
	for i := 0; i < 50_000; i++ {
		m.Update(EventsMsg{
			rollout.ResourceChanged{At: at(1), ResourceOp: fleet.ResourceOp{Op: "update", Name: fmt.Sprint(i), Status: fleet.OpDone}},
			rollout.AnalysisMeasured{Analysis: "a", Metric: fmt.Sprint("m", i%100), Value: f(float64(i))},
			rollout.PhaseStarted{Phase: rollout.PhaseStep, Step: i},
		})
	}
	s := m.s
	if s.resources.len() > maxResources || s.log.len() > maxLogLines || len(s.metrics) > maxMetrics || len(s.phases) > maxPhases {
		t.Errorf("unbounded: %d resources, %d log lines, %d metrics, %d phases", s.resources.len(), s.log.len(), len(s.metrics), len(s.phases))
	}
}

func TestExitWhenDone(t *testing.T) {
	for _, exit := range []bool{false, true} {
		m := New(Options{ExitWhenDone: exit, Profile: termenv.Ascii})
		_, cmd := m.Update(StreamClosedMsg{})
		quit := cmd != nil && cmd() == tea.QuitMsg{}
		if quit != exit || m.Detached() {
			t.Errorf("ExitWhenDone %v: quit %v, detached %v", exit, quit, m.Detached())
		}
	}
}

func TestForwardBatchesAndLeavesTheRestOnStop(t *testing.T) {
	events := make(chan rollout.Event, 10)
	for i := 0; i < 5; i++ {
		events <- rollout.Resumed{}
	}
	close(events)
	var got []tea.Msg
	forward(events, make(chan struct{}), func(m tea.Msg) { got = append(got, m) })
	if len(got) != 2 || len(got[0].(EventsMsg)) != 5 || got[1] != (StreamClosedMsg{}) {
		t.Errorf("got %#v", got)
	}

	events = make(chan rollout.Event, 10)
	stop := make(chan struct{})
	close(stop)
	events <- rollout.Resumed{}
	got = nil
	// A stopped forwarder may take at most the batch it was reading; stop wins once
	// nothing is waiting.
	forward(events, stop, func(m tea.Msg) { got = append(got, m) })
	if len(got) > 1 {
		t.Errorf("forwarded %d messages after stop", len(got))
	}
}

func TestANoteGivesWayToTheRolloutsStatus(t *testing.T) {
	now := at(12)
	ctl := &fakeControl{}
	m := New(Options{Control: ctl.send, Plan: plan, Now: func() time.Time { return now }, Profile: termenv.Ascii})
	m.Update(EventsMsg(midRollout()))
	_, cmd := m.Update(key("p"))
	m.Update(cmd())
	if got := m.statusLine(now); got != "✓ resume accepted" {
		t.Errorf("status right after the answer: %q", got)
	}
	m.Update(EventsMsg{rollout.Resumed{At: at(12)}, rollout.Paused{At: at(13), Indefinite: true}})
	now = now.Add(noticeFor)
	if got := m.statusLine(now); !strings.HasPrefix(got, "‖ PAUSED") {
		t.Errorf("status %s later: %q", noticeFor, got)
	}
}
