package targets

import (
	"testing"
	"time"
)

type paced time.Duration

func (p paced) HealthInterval() time.Duration { return time.Duration(p) }

func TestAConsoleReadsAPacedTargetNoMoreOftenThanItAsks(t *testing.T) {
	for _, tc := range []struct {
		tgt  any
		want time.Duration
	}{
		{struct{}{}, time.Second},                 // not paced: every second
		{paced(5 * time.Second), 5 * time.Second}, // aws
		{paced(time.Millisecond), time.Second},    // never faster than every second
	} {
		if got := ConsoleInterval(tc.tgt); got != tc.want {
			t.Errorf("ConsoleInterval(%T %v) = %v, want %v", tc.tgt, tc.tgt, got, tc.want)
		}
	}
}
