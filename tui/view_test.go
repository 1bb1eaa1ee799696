package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/muesli/termenv"
)

// TestGolden runs the console as a program (teatest), feeds it a rollout, and compares the
// screen it ends on with testdata/TestGolden/<case>.golden (go test ./tui -update rewrites
// them). The clock and the colour profile are pinned, so the screens are reproducible.
func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		profile termenv.Profile
		w, h    int
		events  []rollout.Event
		keys    []tea.Msg
		waitFor string
		status  *Status // a status console (kiln watch) reading this fleet
	}{
		{name: "paused-80x24", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), waitFor: "PAUSED"},
		{name: "failed-80x24", profile: termenv.Ascii, w: 80, h: 24, events: failedRollout(), waitFor: "rolled-back"},
		{name: "confirm-abort-80x24", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), keys: []tea.Msg{key("a")}, waitFor: "abort:"},
		{name: "help-80x24", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), keys: []tea.Msg{key("?")}, waitFor: "SYMBOLS"},
		{name: "resized-120x32", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), keys: []tea.Msg{tea.WindowSizeMsg{Width: 120, Height: 32}}, waitFor: "PAUSED"},
		{name: "resized-60x16", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), keys: []tea.Msg{tea.WindowSizeMsg{Width: 60, Height: 16}}, waitFor: "PAUSED"},
		{name: "paused-80x24-ansi256", profile: termenv.ANSI256, w: 80, h: 24, events: midRollout(), waitFor: "PAUSED"},
		{name: "confirm-rollback-80x24", profile: termenv.Ascii, w: 80, h: 24, events: midRollout(), keys: []tea.Msg{key("r")}, waitFor: "rollback:"},
		{name: "status-80x24", profile: termenv.Ascii, w: 80, h: 24, status: fleetOf(liveFleet()), waitFor: "r rolls back to"},
		{name: "status-after-failure-80x24", profile: termenv.Ascii, w: 80, h: 24, status: fleetOf(liveFleet()), events: failedRollout(), waitFor: "LAST ROLLOUT"},
		{name: "status-confirm-rollback-80x24", profile: termenv.Ascii, w: 80, h: 24, status: fleetOf(liveFleet()), keys: []tea.Msg{key("r")}, waitFor: "rollback: roll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Control: (&fakeControl{}).send, Plan: plan, Now: func() time.Time { return at(12) },
				Profile: tt.profile, FrameInterval: 10 * time.Millisecond}
			if tt.status != nil {
				opts.Plan = nil
				opts.Status = func() (Status, error) { return *tt.status, nil }
				opts.Rollback = func(fleet.Release) func() error { return func() error { return nil } }
			}
			m := New(opts)
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(tt.w, tt.h))
			if tt.status != nil && len(tt.keys)+len(tt.events) > 0 {
				// The first reading of the fleet comes before the keys.
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("TRAFFIC")) },
					teatest.WithDuration(5*time.Second))
			}
			if len(tt.events) > 0 {
				tm.Send(EventsMsg(tt.events))
			}
			for _, k := range tt.keys {
				tm.Send(k)
			}
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(tt.waitFor)) },
				teatest.WithDuration(5*time.Second))
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
			view := final.View()
			lines := strings.Split(view, "\n")
			if len(lines) != final.height {
				t.Errorf("%d lines, want %d", len(lines), final.height)
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w != final.width {
					t.Errorf("line %d is %d wide, want %d: %q", i+1, w, final.width, l)
				}
			}
			golden.RequireEqual(t, []byte(view))
		})
	}
}

func fleetOf(s Status) *Status { return &s }

// TestNoColour checks that the Ascii profile (what NO_COLOR selects) draws no escape
// sequence at all, and that states still read from their symbols.
func TestNoColour(t *testing.T) {
	m := New(Options{Plan: plan, Now: func() time.Time { return at(12) }, Profile: termenv.Ascii})
	m.Update(EventsMsg(failedRollout()))
	m.redraw()
	v := m.View()
	if strings.Contains(v, "\x1b[") {
		t.Errorf("escape sequences with no colour:\n%q", v)
	}
	for _, sym := range []string{"✓ bake", "✗ health", "– step 1", "✗ web-green-0", "✗ rolled-back"} {
		if !strings.Contains(v, sym) {
			t.Errorf("no %q in\n%s", sym, v)
		}
	}
}

// TestBackupLeaseMark: the instance whose kiln-backup agent holds its table's lease carries
// ⛁ on its row; the standby does not.
func TestBackupLeaseMark(t *testing.T) {
	m := New(Options{Plan: plan, Now: func() time.Time { return at(12) }, Profile: termenv.Ascii})
	holder, standby := inst("web-blue-0", fleet.Blue, fleet.Healthy, 3.9), inst("web-blue-1", fleet.Blue, fleet.Healthy, 3.9)
	holder.Backup, standby.Backup = "active", "standby"
	m.Update(EventsMsg(append(midRollout(), rollout.HealthChanged{At: at(10), Slot: fleet.Blue, Instances: []fleet.InstanceHealth{holder, standby}})))
	m.redraw()
	marked := 0
	for _, line := range strings.Split(m.View(), "\n") {
		switch {
		case strings.Contains(line, "web-blue-0") && strings.Contains(line, "⛁"):
			marked++
		case strings.Contains(line, "web-blue-1") && strings.Contains(line, "⛁"):
			t.Errorf("the standby is marked: %q", line)
		}
	}
	if marked != 1 {
		t.Fatalf("the holder's row is not marked once:\n%s", m.View())
	}
}
