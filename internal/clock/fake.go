package clock

import (
	"sync"
	"time"
)

// Fake is a clock for tests that moves only when someone waits on it: After(d) moves it d
// forward and fires at once, so a test of a 30-minute deadline takes no wall time and
// every timestamp is exact. The zero value starts at the zero time; it is safe for
// concurrent use.
type Fake struct {
	mu    sync.Mutex
	now   time.Time
	waits int
}

// NewFake returns a fake clock that reads start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After moves the clock d forward and returns a channel that has already fired.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.waits++
	ch := make(chan time.Time, 1)
	ch <- f.now
	return ch
}

// Advance lets d pass without anyone waiting (time passing while a test does something).
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Waits reports how many times After was called: how often the code under test waited.
func (f *Fake) Waits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waits
}

var _ Clock = (*Fake)(nil)
