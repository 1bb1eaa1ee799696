package tui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// Status is the fleet between rollouts, as kiln status reads it: what the console shows
// when no rollout runs.
type Status struct {
	Service, Target, Endpoint string
	// Live is the release serving traffic, from slot LiveSlot; nil when nothing serves.
	Live     *fleet.Release
	LiveSlot fleet.Slot
	Weights  map[fleet.Slot]int
	// Instances is every instance's health, as the load balancer last checked it.
	Instances []fleet.InstanceHealth
	// Previous is the release r rolls back to (the newest promoted one before Live whose
	// image is kept); nil when there is none.
	Previous *fleet.Release
	// Deployed is false when nothing was ever rolled out.
	Deployed bool
	// History is the service's recent rollouts, newest first.
	History []Past
}

// Past is one rollout of the service's history.
type Past struct {
	Version, Outcome string
	Started          time.Time
	Duration         time.Duration // zero while it runs
}

// maxHistory is how many past rollouts the console keeps.
const maxHistory = 20

// statusMsg is a reading of the fleet.
type statusMsg struct {
	st  Status
	err error
}

// statusTick asks for the next reading.
type statusTick struct{}

// rollbackDone says the rollback the console started has ended (err: it could not run).
type rollbackDone struct{ err error }

// cmdRollback is the confirmation the r key asks for. While a rollout runs it is an
// abort (traffic back to the stable release); between rollouts it rolls the previous
// release out again.
const cmdRollback rollout.Command = "rollback"

// DefaultStatusInterval is how often a status console reads the fleet between rollouts.
const DefaultStatusInterval = 2 * time.Second

// healthMsg is a reading of the instances' health during a rollout.
type healthMsg struct {
	hs  []fleet.InstanceHealth
	err error
}

// readStatus reads, in the background, the fleet between rollouts (Options.Status) or
// the instances' health while one runs (Options.Health): the rollout's own events say the
// rest, sooner.
func (m *Model) readStatus() tea.Cmd {
	switch {
	case m.opts.Status == nil && m.opts.Health == nil:
		return nil
	case m.active() && m.opts.Health != nil:
		health := m.opts.Health
		return func() tea.Msg {
			hs, err := health()
			return healthMsg{hs: hs, err: err}
		}
	case m.active() || m.opts.Status == nil:
		return m.nextStatus()
	}
	read := m.opts.Status
	return func() tea.Msg {
		st, err := read()
		return statusMsg{st: st, err: err}
	}
}

// foldHealth shows the instances as read; a failed reading keeps the last one (the
// engine reports what matters about health itself).
func (m *Model) foldHealth(msg healthMsg) {
	if msg.err != nil || !m.active() {
		return
	}
	by := map[fleet.Slot][]fleet.InstanceHealth{}
	for _, h := range msg.hs {
		by[h.Slot] = append(by[h.Slot], h)
	}
	for _, sl := range fleet.Slots {
		if len(by[sl]) == 0 {
			delete(m.s.instances, sl) // the slot has no instances (any more)
			continue
		}
		m.s.setInstances(sl, by[sl])
	}
}

func (m *Model) nextStatus() tea.Cmd {
	return tea.Tick(m.opts.StatusInterval, func(time.Time) tea.Msg { return statusTick{} })
}

// active reports whether a rollout is running as far as the console knows.
func (m *Model) active() bool {
	return m.s.service != "" && m.s.fin == nil && !m.closed
}

// idle reports whether the console shows the fleet rather than a rollout: a status
// console between rollouts.
func (m *Model) idle() bool {
	return m.opts.Status != nil && !m.active()
}

// rollbackTo is the release r would return to, and why there is none.
func (m *Model) rollbackTo() (*fleet.Release, string) {
	if m.active() {
		if m.s.from == nil {
			return nil, "nothing to roll back to: this is the service's first release (a aborts it)"
		}
		return m.s.from, ""
	}
	switch {
	case m.opts.Status == nil:
		return nil, "the rollout has finished: kiln rollback returns to the previous release"
	case m.rollingBack:
		return nil, "the rollback is still running"
	case m.statusErr != "":
		return nil, "the fleet cannot be read: " + m.statusErr
	case m.fleet == nil:
		return nil, "reading the fleet…"
	case m.fleet.Previous == nil:
		return nil, "nothing to roll back to: no earlier promoted release is kept"
	}
	return m.fleet.Previous, ""
}

// askRollback asks for confirmation of r, or says why there is nothing to do.
func (m *Model) askRollback() {
	if m.active() && !m.controllable() {
		return
	}
	if _, why := m.rollbackTo(); why != "" {
		m.note(why, false)
		return
	}
	m.confirm = cmdRollback
}

// rollback does what r asked for once confirmed.
func (m *Model) rollback() tea.Cmd {
	to, why := m.rollbackTo()
	if why != "" {
		m.note(why, false)
		return nil
	}
	if m.active() {
		m.note("rolling back to "+to.Version+"…", true)
		return m.send(rollout.CmdAbort)
	}
	m.rollingBack = true
	m.note("rolling "+to.Version+" out again…", true)
	wait := m.opts.Rollback(*to)
	return func() tea.Msg { return rollbackDone{err: wait()} }
}

// foldStatus keeps a reading of the fleet.
func (m *Model) foldStatus(msg statusMsg) {
	if msg.err != nil {
		m.statusErr = clip(msg.err.Error())
		return
	}
	st := msg.st
	hs := append([]fleet.InstanceHealth(nil), st.Instances...)
	fleet.SortHealth(hs)
	if len(hs) > 2*maxInstances {
		hs = hs[:2*maxInstances]
	}
	for i := range hs {
		hs[i].LastError = clip(hs[i].LastError)
	}
	st.Instances = hs
	if len(st.History) > maxHistory {
		st.History = st.History[:maxHistory]
	}
	m.fleet, m.statusErr = &st, ""
}

// fleetBySlot groups the fleet's instances by slot, blue first.
func (m *Model) fleetBySlot() ([]fleet.Slot, map[fleet.Slot][]fleet.InstanceHealth) {
	by := map[fleet.Slot][]fleet.InstanceHealth{}
	var slots []fleet.Slot
	for _, sl := range fleet.Slots {
		for _, h := range m.fleet.Instances {
			if h.Slot == sl {
				by[sl] = append(by[sl], h)
			}
		}
		if len(by[sl]) > 0 {
			slots = append(slots, sl)
		}
	}
	return slots, by
}
