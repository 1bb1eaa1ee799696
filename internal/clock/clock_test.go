package clock

import (
	"context"
	"testing"
	"time"
)

func TestFakeMovesOnlyWhenWaitedOn(t *testing.T) {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	f := NewFake(start)
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("Now = %s, want %s", got, start)
	}
	if at := <-f.After(time.Minute); !at.Equal(start.Add(time.Minute)) {
		t.Fatalf("After fired at %s", at)
	}
	if err := Sleep(context.Background(), f, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Hour)
	if got, want := f.Now(), start.Add(time.Hour+90*time.Second); !got.Equal(want) {
		t.Fatalf("Now = %s, want %s", got, want)
	}
	if f.Waits() != 2 {
		t.Fatalf("Waits = %d, want 2 (Advance is not a wait)", f.Waits())
	}
}

func TestSleepOnADoneContextReturnsAtOnceWithoutMovingTime(t *testing.T) {
	f := &Fake{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, f, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if !f.Now().IsZero() || f.Waits() != 0 {
		t.Fatalf("a cancelled sleep moved the clock to %s", f.Now())
	}
}

func TestSleepOnTheRealClockEndsWhenTheContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if err := Sleep(ctx, Or(nil), time.Hour); err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}
