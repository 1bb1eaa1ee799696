package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/eventtext"
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

// linePrinter writes human lines, described by eventtext in its Columns layout: phase
// lines stamped with the time since the rollout started, details indented under them.
type linePrinter struct {
	w     io.Writer
	start time.Time
}

func (p *linePrinter) printf(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *linePrinter) event(ev rollout.Event) {
	if e, ok := ev.(rollout.RolloutStarted); ok {
		p.start = e.At
	}
	l, ok := eventtext.Describe(ev, eventtext.Columns)
	if !ok {
		return
	}
	switch l.Kind {
	case eventtext.Timed:
		p.printf("%s %s", p.stamp(l.At), l.Text)
	case eventtext.Detail:
		p.printf("         %s", l.Text)
	default:
		p.printf("%s", l.Text)
	}
}

func (p *linePrinter) stamp(t time.Time) string {
	return fmt.Sprintf("%7s", "+"+round(t.Sub(p.start)).String())
}

// result writes what a command reports when it ends: v as one JSON object (or list) when
// the output is JSON, else the text lines text writes.
func (a *app) result(v any, text func(w io.Writer)) error {
	if a.jsonOutput() {
		return json.NewEncoder(a.stdout).Encode(v)
	}
	text(a.stdout)
	return nil
}

// The rest of the command words durations, phases and resource types as events do.
var (
	round     = eventtext.Round
	phaseName = eventtext.Phase
	shortType = eventtext.ShortType
)
