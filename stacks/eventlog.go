package stacks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// eventLogPoll is how often the event log is read while the engine runs: short next to
// any resource operation, long enough to cost nothing.
const eventLogPoll = 20 * time.Millisecond

// tailEventLog passes each engine event the CLI writes to path (`--event-log`, one JSON
// object a line) to fn as it is written, until exited is closed and the file has been
// read to its end. The file may not exist yet when it starts.
func tailEventLog(path string, exited <-chan struct{}, fn func(events.EngineEvent)) {
	var (
		r       *bufio.Reader
		partial []byte
	)
	for {
		// Whatever the engine wrote before it exited is in the file by now: one more
		// read after exited is closed gets all of it.
		var last bool
		select {
		case <-exited:
			last = true
		default:
		}
		if r == nil {
			if f, err := os.Open(path); err == nil {
				defer f.Close()
				r = bufio.NewReader(f)
			}
		}
		for r != nil {
			line, err := r.ReadBytes('\n')
			partial = append(partial, line...)
			if err != nil {
				break
			}
			decodeEvent(partial, fn)
			partial = nil
		}
		if last {
			decodeEvent(partial, fn)
			return
		}
		select {
		case <-exited:
		case <-time.After(eventLogPoll):
		}
	}
}

// decodeEvent passes line to fn if it is an engine event; a line the engine did not
// finish (it was killed) is left out.
func decodeEvent(line []byte, fn func(events.EngineEvent)) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var e apitype.EngineEvent
	if err := json.Unmarshal(line, &e); err != nil {
		return
	}
	fn(events.EngineEvent{EngineEvent: e})
}
