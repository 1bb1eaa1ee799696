package tui

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/muesli/termenv"
)

// burstEvent returns the i-th event of a noisy rollout: resource operations, health
// reports, measurements, traffic shifts and phases, all with distinct names so nothing
// is deduplicated for free.
func burstEvent(i int, now time.Time) rollout.Event {
	switch i % 6 {
	case 0:
		return rollout.ResourceChanged{At: now, ResourceOp: fleet.ResourceOp{Op: "update", Type: "test:fake:Instance", Name: fmt.Sprint("web-", i), Status: fleet.OpDone, Duration: time.Millisecond}}
	case 1:
		return rollout.HealthChanged{At: now, Slot: fleet.Green, Instances: []fleet.InstanceHealth{
			{ID: "web-green-0", Slot: fleet.Green, State: fleet.Healthy, LastCheck: now, Restarts: i},
			{ID: "web-green-1", Slot: fleet.Green, State: fleet.Unhealthy, LastCheck: now, LastError: strings.Repeat("x", 400)}}}
	case 2:
		v := float64(i % 100)
		return rollout.AnalysisMeasured{At: now, Analysis: "error-rate", Metric: fmt.Sprint("m", i%40), Value: &v, Threshold: "< 50", Result: "successful", Passed: i}
	case 3:
		return rollout.TrafficShifted{At: now, Weights: map[fleet.Slot]int{fleet.Blue: 100 - i%100, fleet.Green: i % 100}}
	case 4:
		return rollout.PhaseStarted{At: now, Phase: rollout.PhaseStep, Step: i % 200}
	}
	return rollout.PhaseFinished{At: now, Phase: rollout.PhaseStep, Step: i % 200, Duration: time.Millisecond}
}

// quitOnClose ends the program when the stream closes, so a benchmark can time how long
// the console takes to catch up with everything sent.
type quitOnClose struct{ *Model }

func (q quitOnClose) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	_, cmd := q.Model.Update(msg)
	if _, ok := msg.(StreamClosedMsg); ok {
		return q, tea.Quit
	}
	return q, cmd
}

// runProgram runs a console with the real renderer (to io.Discard) and the real
// forwarder, feeds it n events at rate events a second (0: as fast as possible), and
// returns how long after the last send the console had applied everything.
func runProgram(tb testing.TB, n, rate int) (lag time.Duration, m *Model) {
	m = New(Options{Plan: plan, Profile: termenv.ANSI256, FrameInterval: 50 * time.Millisecond})
	p := tea.NewProgram(quitOnClose{m}, tea.WithInput(nil), tea.WithOutput(io.Discard), tea.WithAltScreen())
	events := make(chan rollout.Event, 64)
	stop := make(chan struct{})
	go forward(events, stop, p.Send)
	done := make(chan error, 1)
	go func() { _, err := p.Run(); done <- err }()
	p.Send(tea.WindowSizeMsg{Width: 80, Height: 24})
	start := time.Now()
	const tick = time.Millisecond
	perTick := rate / 1000
	for i := 0; i < n; i++ {
		if rate > 0 && i%perTick == 0 {
			// Pace against the start, so a slow send is caught up rather than drifting.
			if d := time.Until(start.Add(time.Duration(i/perTick) * tick)); d > 0 {
				time.Sleep(d)
			}
		}
		events <- burstEvent(i, time.Now())
	}
	sent := time.Now()
	close(events)
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	close(stop)
	if m.s.events != n {
		tb.Fatalf("applied %d events, sent %d", m.s.events, n)
	}
	return time.Since(sent), m
}

func heapKB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / 1024
}

// BenchmarkApply is the cost of folding one event into the state (no drawing).
func BenchmarkApply(b *testing.B) {
	m := New(Options{Plan: plan, Profile: termenv.Ascii})
	now := time.Now()
	evs := make([]rollout.Event, 1024)
	for i := range evs {
		evs[i] = burstEvent(i, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.s.apply(evs[i%len(evs)])
	}
}

// BenchmarkRender is the cost of one full frame at 80x24 with every pane full.
func BenchmarkRender(b *testing.B) {
	m := New(Options{Plan: plan, Profile: termenv.ANSI256})
	now := time.Now()
	for i := 0; i < 5000; i++ {
		m.s.apply(burstEvent(i, now))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.redraw()
	}
}

// BenchmarkBurst pushes events through the real program as fast as they can be sent:
// ns/op is per event, so 1e9/(ns/op) is the rate the console sustains.
func BenchmarkBurst(b *testing.B) {
	b.ReportAllocs()
	lag, m := runProgram(b, b.N, 0)
	b.ReportMetric(float64(lag.Microseconds())/1000, "drain-ms")
	b.ReportMetric(float64(m.frames), "frames")
}

// BenchmarkPaced10k sends 10,000 events a second for seconds(b.N) and reports how far
// behind the console was when the last one was sent (drain-ms), how many frames it drew
// (capped at 20 a second by the 50ms frame interval, plus resizes), and the heap in use
// after it, which stays flat however long the burst lasts.
func BenchmarkPaced10k(b *testing.B) {
	for _, secs := range []int{1, 5} {
		b.Run(fmt.Sprintf("%ds", secs), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				before := heapKB()
				lag, m := runProgram(b, 10_000*secs, 10_000)
				b.ReportMetric(float64(lag.Microseconds())/1000, "drain-ms")
				b.ReportMetric(float64(m.frames)/float64(secs), "frames/s")
				b.ReportMetric(heapKB()-before, "heap-growth-KB")
				runtime.KeepAlive(m)
			}
		})
	}
}
