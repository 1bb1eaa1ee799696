package tui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/kilnhq/kiln/rollout"
)

// EventsMsg carries engine events to the model. The forwarder batches what is waiting on
// the channel into one message, so a burst costs one Update per batch.
type EventsMsg []rollout.Event

// StreamClosedMsg says the engine closed its event channel: the rollout is over.
type StreamClosedMsg struct{}

// frameMsg asks for the next frame.
type frameMsg time.Time

// controlResult is the engine's answer to a control the console sent.
type controlResult struct {
	cmd rollout.Command
	err error
}

// Model is the console: the rollout's state, folded from its events, and what the
// operator is doing (confirming, reading help, scrolling the log).
type Model struct {
	opts   Options
	s      *state
	width  int
	height int
	st     styles

	confirm  rollout.Command // awaiting y/n for this command
	help     bool
	scroll   int // log lines scrolled up from the newest
	notice   string
	noticeOK bool
	noticeAt time.Time
	pending  rollout.Command // sent, not yet answered
	closed   bool
	detached bool

	// The fleet between rollouts (Options.Status).
	fleet       *Status
	statusErr   string
	rollingBack bool // a rollback started with r runs

	dirty  bool
	frame  string
	frames int // frames drawn, for the benchmark
}

// New returns a console for one rollout.
func New(opts Options) *Model {
	opts.defaults()
	m := &Model{opts: opts, s: newState(opts.Plan), width: opts.Width, height: opts.Height, st: newStyles(opts.Profile)}
	m.redraw()
	return m
}

// Detached reports whether the operator left the console with q while a rollout ran.
func (m *Model) Detached() bool { return m.detached }

// Init starts the frame clock and, for a status console, the first reading of the fleet.
func (m *Model) Init() tea.Cmd { return tea.Batch(m.nextFrame(), m.readStatus()) }

func (m *Model) nextFrame() tea.Cmd {
	return tea.Tick(m.opts.FrameInterval, func(t time.Time) tea.Msg { return frameMsg(t) })
}

// Update applies a message. Events only change the state; the screen is redrawn on the
// next frame, so the frame rate is capped whatever the event rate. Keys, resizes and
// control answers redraw at once, so the console answers the operator without delay.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case EventsMsg:
		for _, ev := range msg {
			m.s.apply(ev)
		}
		m.dirty = true
		return m, nil
	case StreamClosedMsg:
		m.closed, m.confirm = true, ""
		m.redraw()
		if m.opts.ExitWhenDone {
			return m, tea.Quit
		}
		return m, nil
	case statusTick:
		return m, m.readStatus()
	case statusMsg:
		m.foldStatus(msg)
		m.redraw()
		return m, m.nextStatus()
	case healthMsg:
		m.foldHealth(msg)
		m.dirty = true
		return m, m.nextStatus()
	case rollbackDone:
		m.rollingBack = false
		if msg.err != nil {
			m.note("rollback refused: "+clip(msg.err.Error()), false)
		}
		m.redraw()
		return m, m.readStatus()
	case frameMsg:
		// Always redraw: the elapsed time and the spinner move even without events.
		m.redraw()
		return m, m.nextFrame()
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.redraw()
		return m, nil
	case controlResult:
		m.pending = ""
		if msg.err != nil {
			m.note(string(msg.cmd)+" refused: "+clip(msg.err.Error()), false)
		} else {
			m.note(string(msg.cmd)+" accepted", true)
		}
		m.redraw()
		return m, nil
	case tea.KeyMsg:
		cmd := m.key(msg)
		m.redraw()
		return m, cmd
	}
	return m, nil
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	key := k.String()
	if m.confirm != "" {
		c := m.confirm
		m.confirm = ""
		if key == "y" || key == "Y" {
			if c == cmdRollback {
				return m.rollback()
			}
			return m.send(c)
		}
		m.note(string(c)+" cancelled", true)
		return nil
	}
	switch key {
	case "q", "ctrl+c":
		// Leaving never stops the rollout: it goes on without the console.
		if m.opts.Status != nil {
			m.detached = m.active() || m.rollingBack
		} else {
			m.detached = !m.closed
		}
		return tea.Quit
	case "?", "h":
		m.help = !m.help
	case "esc":
		m.help = false
	case "up", "k":
		m.scrollBy(1)
	case "down", "j":
		m.scrollBy(-1)
	case "pgup":
		m.scrollBy(m.logRows())
	case "pgdown":
		m.scrollBy(-m.logRows())
	case "end", "G":
		m.scroll = 0
	case "p":
		if !m.controllable() {
			return nil
		}
		if m.s.paused != nil {
			return m.send(rollout.CmdResume)
		}
		return m.send(rollout.CmdPause)
	case "enter":
		if m.controllable() {
			m.confirm = rollout.CmdPromote
		}
	case "a":
		if m.controllable() {
			m.confirm = rollout.CmdAbort
		}
	case "r":
		m.askRollback()
	}
	return nil
}

// controllable reports whether controls can still reach a rollout, and says why not.
func (m *Model) controllable() bool {
	switch {
	case m.opts.Status != nil && !m.active():
		m.note("no rollout is running: kiln rollout starts one", false)
	case m.s.fin != nil || m.closed:
		m.note("the rollout has finished: nothing to control", false)
	case m.opts.Control == nil:
		m.note("read-only console: no control channel", false)
	case m.pending != "":
		m.note(string(m.pending)+" is still on its way", false)
	default:
		return true
	}
	return false
}

func (m *Model) send(c rollout.Command) tea.Cmd {
	m.pending = c
	m.note("sending "+string(c)+"…", true)
	control := m.opts.Control
	return func() tea.Msg { return controlResult{cmd: c, err: control(c)} }
}

// note shows a short message on the status line for noticeFor.
func (m *Model) note(text string, ok bool) {
	m.notice, m.noticeOK, m.noticeAt = text, ok, m.opts.Now()
}

// noticeFor is how long a note stays before the status line shows the rollout again.
const noticeFor = 3 * time.Second

func (m *Model) scrollBy(n int) {
	m.scroll += n
	if max := m.s.log.len() - m.logRows(); m.scroll > max {
		m.scroll = max
	}
	if m.scroll < 0 {
		m.scroll = 0
	}
}

// View returns the last frame drawn.
func (m *Model) View() string { return m.frame }

func (m *Model) redraw() {
	m.frame = m.render()
	m.dirty = false
	m.frames++
}
