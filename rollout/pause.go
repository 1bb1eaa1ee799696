package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// control applies a command received while waiting. It reports whether the rollout must
// abort. A pause asked for while no hold runs takes effect at the next hold.
func (r *run) control(c Control) bool {
	var err error
	abort := false
	switch c.Command {
	case CmdPause:
		if r.paused {
			err = errors.New("the rollout is already paused")
		} else {
			r.pauseRequested = true
		}
	case CmdResume:
		if !r.paused && !r.pauseRequested {
			err = errors.New("the rollout is not paused")
		}
		r.pauseRequested = false
	case CmdPromote:
		r.promoted, r.pauseRequested = true, false
	case CmdAbort:
		abort = true
	default:
		err = fmt.Errorf("unknown command %q", c.Command)
	}
	if c.Reply != nil {
		c.Reply <- err
	}
	return abort
}

// hold waits d (or, when indefinite, until resumed or promoted) while the new slot
// serves; pause freezes the remaining time, promote and resume end the hold, abort
// fails it. The new slot's health is watched all along: losing it fails the hold.
func (r *run) hold(ctx context.Context, d time.Duration, indefinite bool) error {
	remaining := d
	end := r.now().Add(d)
	if r.pauseRequested {
		r.paused, r.pauseRequested = true, false
	}
	if indefinite {
		r.paused = true
	}
	if r.paused {
		r.e.emit(Paused{At: r.now(), Remaining: remaining, Indefinite: indefinite})
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-r.e.Controls:
			wasPaused := r.paused
			if r.control(c) {
				return errAborted
			}
			switch {
			case r.promoted:
				r.paused = false
				r.e.emit(Resumed{At: r.now(), Promoted: true})
				return nil
			case r.pauseRequested && !wasPaused:
				r.paused, r.pauseRequested = true, false
				remaining = end.Sub(r.now())
				r.e.emit(Paused{At: r.now(), Remaining: remaining, Indefinite: indefinite})
			case c.Command == CmdResume && wasPaused:
				r.paused = false
				r.e.emit(Resumed{At: r.now()})
				if indefinite {
					return nil
				}
				end = r.now().Add(remaining)
			}
		case <-r.e.clock().After(r.poll()):
			if !r.paused && !r.now().Before(end) {
				return nil
			}
			if r.applied.Slots[r.cp.Slot].Weight > 0 {
				if err := r.checkServing(ctx); err != nil {
					return err
				}
			}
		}
	}
}
