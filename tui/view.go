package tui

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/muesli/termenv"
)

// styles are the console's colours. Every state also has a symbol, so the screen reads
// the same without colour (NO_COLOR, or a terminal without any).
type styles struct {
	title, dim, bold, ok, bad, warn, run, blue, green, key, banner lipgloss.Style
}

func newStyles(p termenv.Profile) styles {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(p)
	s := r.NewStyle
	return styles{
		title:  s().Bold(true),
		dim:    s().Faint(true),
		bold:   s().Bold(true),
		ok:     s().Foreground(lipgloss.Color("2")),
		bad:    s().Foreground(lipgloss.Color("1")).Bold(true),
		warn:   s().Foreground(lipgloss.Color("3")),
		run:    s().Foreground(lipgloss.Color("6")),
		blue:   s().Foreground(lipgloss.Color("4")),
		green:  s().Foreground(lipgloss.Color("2")),
		key:    s().Reverse(true),
		banner: s().Reverse(true).Bold(true),
	}
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

const leftWidth = 31

// render draws the whole screen: exactly height lines, none wider than width.
func (m *Model) render() string {
	w, h := m.width, m.height
	if w < 20 || h < 6 {
		return fit("kiln: terminal too small", w)
	}
	now := m.opts.Now()
	var lines []string
	lines = append(lines, m.header(now, w))
	lines = append(lines, m.status(now)...)
	if m.help {
		lines = append(lines, m.helpLines()...)
	} else {
		colH, resH := m.layout()
		left := m.timeline(now, colH)
		right := m.right(now, w-leftWidth-1, colH)
		for i := 0; i < colH; i++ {
			l, r := "", ""
			if i < len(left) {
				l = left[i]
			}
			if i < len(right) {
				r = right[i]
			}
			lines = append(lines, fit(l, leftWidth)+m.st.dim.Render("│")+r)
		}
		lines = append(lines, m.resourceLines(resH)...)
		lines = append(lines, m.logLines(m.logRows())...)
	}
	lines = append(lines, m.keys())
	for len(lines) < h {
		lines = append(lines[:len(lines)-1], "", lines[len(lines)-1])
	}
	if len(lines) > h {
		lines = append(lines[:h-1], lines[len(lines)-1])
	}
	for i := range lines {
		lines[i] = fit(lines[i], w)
	}
	return strings.Join(lines, "\n")
}

// layout splits the height between the columns, the resource operations and the log.
func (m *Model) layout() (colH, resH int) {
	body := m.height - 2 - m.statusRows()
	resH = 3
	if body >= 30 {
		resH = 5
	}
	colH = body - resH - 1 - 6 // the log keeps a title and at least 6 lines
	if want := m.columnsWant(); colH > want {
		colH = want
	}
	if colH < 4 {
		colH = 4
	}
	return colH, resH
}

func (m *Model) columnsWant() int {
	n := len(m.s.phases) + 1
	r := 2 + len(m.s.metrics)
	for _, sl := range m.s.sortedSlots() {
		r += 1 + len(m.s.instances[sl])
	}
	if len(m.s.metrics) > 0 {
		r++
	}
	if r > n {
		n = r
	}
	return max(n, 9)
}

// logRows is how many log lines fit below everything else.
func (m *Model) logRows() int {
	colH, resH := m.layout()
	n := m.height - 2 - m.statusRows() - colH - resH - 1
	return max(n, 1)
}

func fit(s string, w int) string {
	if sw := ansi.StringWidth(s); sw > w {
		return ansi.Truncate(s, w, "…")
	} else if sw < w {
		return s + strings.Repeat(" ", w-sw)
	}
	return s
}

func (m *Model) header(now time.Time, w int) string {
	s := m.s
	if m.idle() && m.fleet != nil {
		return m.fleetHeader(w)
	}
	svc := s.service
	if svc == "" {
		svc = "waiting for the rollout…"
	}
	from, to := "nothing", "?"
	if s.from != nil {
		from = s.from.String()
	}
	if s.to != nil {
		to = s.to.String()
	}
	elapsed := "-"
	if !s.started.IsZero() {
		d := now.Sub(s.started)
		if s.fin != nil {
			d = s.fin.Duration
		}
		elapsed = clock(d)
	}
	left := fmt.Sprintf(" %s  %s → %s", m.st.title.Render("kiln "+svc), from, to)
	return spread(left, fmt.Sprintf("%s  %s ", s.target, elapsed), w)
}

// spread puts left and right at the two ends of a line of width w.
func spread(left, right string, w int) string {
	pad := w - ansi.StringWidth(left) - ansi.StringWidth(right)
	if pad < 1 {
		pad = 1
	}
	return left + strings.Repeat(" ", pad) + right
}

// fleetHeader is the header between rollouts: the service and what it serves.
func (m *Model) fleetHeader(w int) string {
	f := m.fleet
	live := "nothing live"
	if f.Live != nil {
		live = "live " + f.Live.String() + " on " + string(f.LiveSlot)
	}
	left := fmt.Sprintf(" %s  %s", m.st.title.Render("kiln "+f.Service), live)
	right := f.Target + " "
	if f.Endpoint != "" {
		right = f.Target + "  " + fleet.URL(f.Endpoint) + " "
	}
	return spread(left, right, w)
}

func clock(d time.Duration) string {
	d = d.Truncate(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// statusRows is how many lines the status takes: two when it explains a failure.
func (m *Model) statusRows() int {
	if m.confirm == "" && m.s.problem != nil {
		return 2
	}
	return 1
}

// status says what is happening now, or what went wrong and what to do about it.
func (m *Model) status(now time.Time) []string {
	if m.confirm == "" && m.s.problem != nil {
		p := m.s.problem
		return []string{m.st.bad.Render("✗ " + p.what + ": " + p.why), m.st.warn.Render("  → " + p.todo)}
	}
	return []string{m.statusLine(now)}
}

func (m *Model) statusLine(now time.Time) string {
	s := m.s
	switch {
	case m.confirm == rollout.CmdPromote:
		return m.st.banner.Render(" promote: skip the remaining steps and send 100% to the new release? y/n ")
	case m.confirm == rollout.CmdAbort:
		return m.st.banner.Render(" abort: send traffic back to the stable slot and remove the new one? y/n ")
	case m.confirm == cmdRollback:
		return m.st.banner.Render(" " + m.rollbackQuestion() + " y/n ")
	case m.notice != "" && now.Sub(m.noticeAt) < noticeFor:
		if m.noticeOK {
			return m.st.ok.Render("✓ " + m.notice)
		}
		return m.st.warn.Render("! " + m.notice)
	case m.idle():
		return m.fleetLine(now)
	case s.fin != nil:
		return m.st.ok.Render(fmt.Sprintf("✓ %s in %s", s.fin.Outcome, round(s.fin.Duration)))
	case s.paused != nil && s.paused.Indefinite:
		return m.st.warn.Render("‖ PAUSED until you decide: p resume · enter promote · a abort")
	case s.paused != nil:
		// A paused timed hold is frozen: what is left runs once resumed.
		return m.st.warn.Render(fmt.Sprintf("‖ PAUSED (%s of the pause left): p resume · enter promote · a abort", s.paused.Remaining.Truncate(time.Second)))
	case s.healing != "":
		return m.st.warn.Render("⟳ repairing the target: " + s.healing)
	case s.service == "":
		return m.st.dim.Render("waiting for the first event")
	}
	for _, r := range s.phases {
		if r.state == running {
			return m.st.run.Render(m.spin(now)+" "+phaseName(r.phase, r.step)) + m.st.dim.Render(" "+r.waits)
		}
	}
	return m.st.dim.Render("between phases")
}

// rollbackQuestion is what r asks before it acts.
func (m *Model) rollbackQuestion() string {
	to, _ := m.rollbackTo()
	if to == nil {
		return "rollback?"
	}
	if m.active() {
		return "rollback: send all traffic back to " + to.Version + " and remove the new release?"
	}
	return "rollback: roll " + to.Version + " out again, blue-green, through the health gates?"
}

// fleetLine says what serves between rollouts and what r would do.
func (m *Model) fleetLine(now time.Time) string {
	f := m.fleet
	switch {
	case m.rollingBack:
		return m.st.run.Render(m.spin(now) + " starting the rollback…")
	case m.statusErr != "":
		return m.st.warn.Render("! the fleet cannot be read: " + m.statusErr)
	case f == nil:
		return m.st.dim.Render("reading the fleet…")
	case !f.Deployed:
		return m.st.dim.Render("○ nothing deployed yet: kiln rollout starts the first release")
	}
	line := "● no rollout running"
	if fin := m.s.fin; fin != nil {
		line = fmt.Sprintf("✓ last rollout %s in %s", fin.Outcome, round(fin.Duration))
	}
	if f.Live != nil {
		line += " · live " + f.Live.Version
	}
	if f.Previous != nil {
		line += " · r rolls back to " + f.Previous.Version
	}
	return m.st.ok.Render(line)
}

func (m *Model) spin(now time.Time) string {
	return spinner[int(now.UnixMilli()/100)%len(spinner)]
}

func (m *Model) timeline(now time.Time, rows int) []string {
	title := " PHASES"
	if m.idle() {
		if m.s.service == "" {
			return m.history(now, rows)
		}
		title = " LAST ROLLOUT"
		if m.s.to != nil {
			title += " → " + m.s.to.Version
		}
	}
	out := []string{m.st.title.Render(title)}
	ph := m.s.phases
	// Keep the running (or last started) phase in view when the timeline is long.
	if len(ph) > rows-1 {
		cur := 0
		for i, r := range ph {
			if r.state != pending && r.state != skipped {
				cur = i
			}
		}
		start := cur - (rows-1)/2
		start = max(0, min(start, len(ph)-(rows-1)))
		ph = ph[start : start+rows-1]
	}
	for _, r := range ph {
		var sym, dur string
		st := m.st.dim
		switch r.state {
		case pending:
			sym = "○"
		case running:
			sym, st, dur = m.spin(now), m.st.run, round(now.Sub(r.started)).String()
			if m.s.paused != nil {
				sym, st = "‖", m.st.warn
			}
		case done:
			sym, st, dur = "✓", m.st.ok, round(r.dur).String()
		case failed:
			sym, st, dur = "✗", m.st.bad, round(r.dur).String()
		case skipped:
			sym, dur = "–", "skipped"
		}
		name := phaseName(r.phase, r.step)
		name = strings.Replace(name, "-promotion-analysis", "-analysis", 1)
		out = append(out, st.Render(fmt.Sprintf(" %s %-19s", sym, ansi.Truncate(name, 19, "…")))+fmt.Sprintf("%8s", dur))
	}
	return out
}

// history is the left column of a status console before any rollout was seen: the
// service's recent rollouts, newest first.
func (m *Model) history(now time.Time, rows int) []string {
	out := []string{m.st.title.Render(" HISTORY")}
	if m.fleet == nil || len(m.fleet.History) == 0 {
		return append(out, m.st.dim.Render("  no rollouts yet"))
	}
	for _, h := range m.fleet.History {
		if len(out) == rows {
			break
		}
		sym, st := "●", m.st.run
		switch h.Outcome {
		case string(rollout.Promoted):
			sym, st = "✓", m.st.ok
		case string(rollout.Unchanged), string(rollout.Refused):
			sym, st = "–", m.st.dim
		case string(rollout.RolledBack), string(rollout.Failed), string(rollout.RollbackFailed), string(rollout.Interrupted):
			sym, st = "✗", m.st.bad
		}
		age := round(now.Sub(h.Started)).Truncate(time.Second)
		out = append(out, st.Render(fmt.Sprintf(" %s %-9s %-11s", sym, ansi.Truncate(h.Version, 9, "…"), ansi.Truncate(h.Outcome, 11, "…")))+
			m.st.dim.Render(fmt.Sprintf("%7s", ago(age)+" ago")))
	}
	return out
}

// ago writes an age in its largest unit: 45s, 12m, 3h, 9d.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func (m *Model) right(now time.Time, w, rows int) []string {
	s := m.s
	if m.idle() && m.fleet != nil {
		return m.fleetColumn(now, w, rows)
	}
	var out []string
	out = append(out, m.st.title.Render(" TRAFFIC"))
	out = append(out, m.trafficBar(w-1, s.weights))
	for _, sl := range s.sortedSlots() {
		role := ""
		if sl == s.slot && s.service != "" {
			role = " (new)"
		}
		out = append(out, m.slotLines(now, sl, role, s.instances[sl])...)
	}
	if len(s.metrics) > 0 {
		out = append(out, m.st.title.Render(" ANALYSIS"))
		for _, mt := range s.metrics {
			out = append(out, m.metricLine(mt))
		}
	}
	if len(out) > rows {
		out = out[:rows]
	}
	return out
}

// fleetColumn is the right column between rollouts: traffic and every instance's health.
func (m *Model) fleetColumn(now time.Time, w, rows int) []string {
	f := m.fleet
	out := []string{m.st.title.Render(" TRAFFIC"), m.trafficBar(w-1, f.Weights)}
	slots, by := m.fleetBySlot()
	for _, sl := range slots {
		role := ""
		if f.Live != nil && sl == f.LiveSlot {
			role = " (live)"
		}
		out = append(out, m.slotLines(now, sl, role, by[sl])...)
	}
	if len(out) > rows {
		out = out[:rows]
	}
	return out
}

// slotLines is a slot's title, with how many of its instances are healthy, then a line
// per instance.
func (m *Model) slotLines(now time.Time, sl fleet.Slot, role string, hs []fleet.InstanceHealth) []string {
	healthy := 0
	for _, h := range hs {
		if h.State == fleet.Healthy {
			healthy++
		}
	}
	out := []string{m.st.title.Render(fmt.Sprintf(" %s%s", strings.ToUpper(string(sl)), role)) + fmt.Sprintf(" %d/%d healthy", healthy, len(hs))}
	for _, h := range hs {
		out = append(out, m.instance(now, h))
	}
	return out
}

func (m *Model) trafficBar(w int, weights map[fleet.Slot]int) string {
	b, g := weights[fleet.Blue], weights[fleet.Green]
	labelL, labelR := fmt.Sprintf(" blue %3d%% ", b), fmt.Sprintf(" %3d%% green", g)
	bw := w - len(labelL) - len(labelR)
	if bw < 4 {
		return labelL + labelR
	}
	nb := 0
	if b+g > 0 {
		nb = int(math.Round(float64(bw) * float64(b) / float64(b+g)))
	}
	// Different glyphs for the two slots: the split reads without colour too.
	bar := m.st.blue.Render(strings.Repeat("█", nb)) + m.st.green.Render(strings.Repeat("▒", bw-nb))
	if b+g == 0 {
		bar = m.st.dim.Render(strings.Repeat("·", bw))
	}
	return labelL + bar + labelR
}

func (m *Model) instance(now time.Time, h fleet.InstanceHealth) string {
	sym, st := "?", m.st.dim
	switch h.State {
	case fleet.Healthy:
		sym, st = "✓", m.st.ok
	case fleet.Unhealthy:
		sym, st = "✗", m.st.bad
	case fleet.Initial:
		sym, st = "○", m.st.run
	case fleet.Draining:
		sym, st = "↓", m.st.warn
	}
	last := "-"
	if !h.LastCheck.IsZero() {
		last = round(now.Sub(h.LastCheck)).Truncate(time.Second).String() + " ago"
	}
	line := st.Render(fmt.Sprintf("  %s %-18s %-9s", sym, ansi.Truncate(h.ID, 18, "…"), h.State)) + fmt.Sprintf(" %7s ↻%d", last, h.Restarts)
	if h.Backup == "active" {
		line += " ⛁" // its kiln-backup agent holds the table's lease
	}
	if h.LastError != "" {
		line += m.st.bad.Render(" " + h.LastError)
	}
	return line
}

func (m *Model) metricLine(mt *metric) string {
	v := "n/a"
	if mt.value != nil {
		v = fmt.Sprintf("%.4g", *mt.value)
	}
	sym, st := "●", m.st.run
	switch strings.ToLower(mt.result) {
	case "successful", "passed":
		sym, st = "✓", m.st.ok
	case "failed", "error":
		sym, st = "✗", m.st.bad
	case "inconclusive":
		sym, st = "?", m.st.warn
	}
	return st.Render(fmt.Sprintf("  %s %s", sym, mt.name)) +
		fmt.Sprintf(" %s vs %s %s %d✓ %d✗ %d?", v, mt.threshold, sparkline(&mt.samples, 10), mt.passed, mt.failed, mt.inc)
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last n samples scaled between their minimum and maximum.
func sparkline(r *ring[float64], n int) string {
	vs := r.tail(n, 0)
	if len(vs) == 0 {
		return ""
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	var b strings.Builder
	for _, v := range vs {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(sparks)-1))
		}
		b.WriteRune(sparks[i])
	}
	return b.String()
}

func (m *Model) resourceLines(rows int) []string {
	out := []string{m.st.title.Render(" RESOURCES") + m.st.dim.Render(fmt.Sprintf("  %d operation(s)", m.s.resources.len()))}
	for _, r := range m.s.resources.tail(rows-1, 0) {
		op := r.op
		sym, st, what := "●", m.st.run, "running"
		switch op.Status {
		case fleet.OpDone:
			sym, st, what = "✓", m.st.ok, round(op.Duration).String()
		case fleet.OpFailed:
			sym, st, what = "✗", m.st.bad, "FAILED: "+op.Error
		}
		out = append(out, st.Render(fmt.Sprintf("  %s %-18s %s %s", sym, op.Op, shortType(op.Type), op.Name))+" "+what)
	}
	for len(out) < rows {
		out = append(out, "")
	}
	return out
}

func (m *Model) logLines(rows int) []string {
	title := " LOG"
	if m.scroll > 0 {
		title += fmt.Sprintf("  ↑ %d newer line(s) below: end to follow", m.scroll)
	}
	out := []string{m.st.title.Render(title)}
	for _, l := range m.s.log.tail(rows, m.scroll) {
		stamp := "        "
		if m.opts.Status != nil {
			// A status console's log spans rollouts: wall-clock times.
			stamp = l.at.In(m.opts.Now().Location()).Format(" 15:04:05")
		} else if !m.s.started.IsZero() {
			stamp = fmt.Sprintf("%8s", "+"+clock(l.at.Sub(m.s.started)))
		}
		text := l.text
		if l.bad {
			text = m.st.bad.Render("✗ " + text)
		}
		out = append(out, m.st.dim.Render(stamp)+" "+text)
	}
	return out
}

func (m *Model) keys() string {
	k := func(key, what string) string { return m.st.key.Render(key) + " " + what }
	if m.idle() {
		return " " + strings.Join([]string{k("r", "rollback"), k("↑↓", "scroll log"), k("?", "help"), k("q", "leave")}, "  ")
	}
	if m.closed || m.s.fin != nil {
		return " " + strings.Join([]string{k("q", "leave"), k("↑↓", "scroll log"), k("?", "help")}, "  ")
	}
	pause := "pause"
	if m.s.paused != nil {
		pause = "resume"
	}
	return " " + strings.Join([]string{k("p", pause), k("enter", "promote"), k("a", "abort"), k("r", "rollback"), k("↑↓", "log"), k("?", "help"), k("q", "detach")}, "  ")
}

func (m *Model) helpLines() []string {
	return []string{
		"",
		m.st.title.Render(" KEYS"),
		"  p         pause the rollout at its next wait; resume it when paused",
		"  enter     promote: skip the remaining steps and pauses (asks y/n)",
		"  a         abort: traffic back to the stable slot, new slot removed (asks y/n)",
		"  r         rollback to the previous release (asks y/n): during a rollout,",
		"            traffic goes back to the release it replaces; between rollouts",
		"            (kiln watch), the previous release is rolled out again",
		"  ↑ ↓ pgup pgdn end   scroll the log; end follows it again",
		"  ?         this help",
		"  q         leave: a running rollout goes on without the console",
		"",
		m.st.title.Render(" SYMBOLS"),
		"  ✓ done / healthy   ✗ failed / unhealthy   ○ pending / starting",
		"  " + spinner[0] + " running   – skipped   ↓ draining   ↻ restarts   ‖ paused",
		"  traffic: █ blue  ▒ green   ⛁ holds the backup lease (kiln-backup)",
	}
}
