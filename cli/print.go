package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// printer turns engine events into output. The console (tui) is the third consumer of
// the same stream.
type printer interface {
	event(rollout.Event)
}

// jsonPrinter writes one JSON object per event: the CI format.
type jsonPrinter struct{ w io.Writer }

func (p jsonPrinter) event(ev rollout.Event) {
	b, err := rollout.MarshalEvent(ev)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"event": "error", "error": err.Error()})
	}
	p.w.Write(append(b, '\n'))
}

// linePrinter writes human lines.
type linePrinter struct {
	w     io.Writer
	slot  fleet.Slot
	start time.Time
}

func (p *linePrinter) printf(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *linePrinter) event(ev rollout.Event) {
	switch e := ev.(type) {
	case rollout.RolloutStarted:
		p.slot, p.start = e.Slot, e.At
		from := "nothing live"
		if e.From != nil {
			from = e.From.String()
		}
		p.printf("rollout %s on %s: live %s; new release goes to slot %s", e.Service, e.Target, from, e.Slot)
	case rollout.PhaseStarted:
		p.printf("%s %-8s", p.stamp(e.At), phaseName(e.Phase, e.Step))
	case rollout.PhaseFinished:
		if e.Error != "" {
			p.printf("%s %-8s FAILED after %s: %s", p.stamp(e.At), phaseName(e.Phase, e.Step), round(e.Duration), e.Error)
		} else {
			p.printf("%s %-8s done in %s", p.stamp(e.At), phaseName(e.Phase, e.Step), round(e.Duration))
		}
	case rollout.Recovered:
		what := "resuming"
		if e.Aborting {
			what = "undoing"
		}
		p.printf("         %s rollout %s, left at %s by a kiln that stopped", what, e.ID, phaseName(e.Phase, e.Step))
	case rollout.Paused:
		if e.Indefinite {
			p.printf("         PAUSED until a human decides: kiln rollout resume | promote | abort")
		} else {
			p.printf("         PAUSED with %s of the pause left: kiln rollout resume | promote | abort", round(e.Remaining))
		}
	case rollout.Resumed:
		if e.Promoted {
			p.printf("         promoted: remaining steps, pauses and step analyses skipped")
		} else {
			p.printf("         resumed")
		}
	case rollout.AnalysisMeasured:
		v := "n/a"
		if e.Value != nil {
			v = fmt.Sprintf("%.4g", *e.Value)
		}
		reason := ""
		if e.Reason != "" {
			reason = " (" + e.Reason + ")"
		}
		p.printf("         analysis %s: %s = %s, want %s: %s%s [%d passed, %d failed, %d inconclusive]",
			e.Analysis, e.Metric, v, e.Threshold, e.Result, reason, e.Passed, e.Failed, e.Inconclusive)
	case rollout.Healing:
		if e.Error != "" {
			p.printf("         repair FAILED: %s", e.Error)
		} else {
			p.printf("         repairing the target (%s): re-creating what died", e.Cause)
		}
	case rollout.AnalysisFinished:
		p.printf("         analysis %s: %s %s", e.Analysis, e.Outcome, e.Message)
	case rollout.Baked:
		p.printf("         baked %s", e.Release)
	case rollout.ResourceChanged:
		switch e.Status {
		case fleet.OpDone:
			p.printf("         %-18s %s %s (%s)", e.Op, shortType(e.Type), e.Name, round(e.Duration))
		case fleet.OpFailed:
			p.printf("         %-18s %s %s FAILED: %s", e.Op, shortType(e.Type), e.Name, e.Error)
		}
	case rollout.HealthChanged:
		p.printf("         slot %s: %s", e.Slot, summarize(e.Instances))
	case rollout.TrafficShifted:
		p.printf("         traffic: blue %d%% / green %d%%", e.Weights[fleet.Blue], e.Weights[fleet.Green])
	case rollout.Finished:
		mark := "OK"
		switch e.Outcome {
		case rollout.RolledBack, rollout.Interrupted:
			mark = "FAILED"
		case rollout.RollbackFailed:
			mark = "NEEDS ATTENTION"
		}
		reason := ""
		if e.Reason != "" {
			reason = " [" + string(e.Reason) + "]"
		}
		p.printf("%s %s%s in %s: %s", mark, e.Outcome, reason, round(e.Duration), e.Message)
		if e.Live != nil {
			p.printf("live: %s", e.Live)
		}
	}
}

func phaseName(ph rollout.Phase, step int) string {
	if step > 0 {
		return fmt.Sprintf("%s %d", ph, step)
	}
	return string(ph)
}

func (p *linePrinter) stamp(t time.Time) string {
	return fmt.Sprintf("%7s", "+"+round(t.Sub(p.start)).String())
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

func shortType(t string) string {
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		return t[i+1:]
	}
	return t
}

// summarize says how many instances are in which state, and the last error seen.
func summarize(hs []fleet.InstanceHealth) string {
	healthy := 0
	var others []string
	lastErr := ""
	for _, h := range hs {
		if h.State == fleet.Healthy {
			healthy++
		} else {
			others = append(others, string(h.State))
		}
		if h.LastError != "" {
			lastErr = h.LastError
		}
	}
	s := fmt.Sprintf("%d/%d healthy", healthy, len(hs))
	if len(others) > 0 {
		s += " (" + strings.Join(others, ", ") + ")"
	}
	if lastErr != "" {
		s += "; last error: " + lastErr
	}
	return s
}
