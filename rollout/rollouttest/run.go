package rollouttest

import (
	"context"

	"github.com/kilnhq/kiln/rollout"
)

// Run runs one rollout on e (whose Events it sets) and returns its result and every event
// it sent, in order.
func Run(ctx context.Context, e *rollout.Engine, req rollout.Request, b rollout.Baker) (rollout.Finished, []rollout.Event) {
	ch := make(chan rollout.Event)
	var evs []rollout.Event
	done := make(chan struct{})
	go func() {
		for ev := range ch {
			evs = append(evs, ev)
		}
		close(done)
	}()
	e.Events = ch
	fin := e.Run(ctx, req, b)
	close(ch)
	<-done
	return fin, evs
}
