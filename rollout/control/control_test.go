package control

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/kilnhq/kiln/rollout"
)

func TestCommandsReachTheRolloutAndItsAnswerComesBack(t *testing.T) {
	path := SocketPath(t.TempDir(), "shop")
	controls := make(chan rollout.Control)
	stop, err := Serve(context.Background(), path, controls, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go func() {
		for c := range controls {
			if c.Command == rollout.CmdResume {
				c.Reply <- errors.New("the rollout is not paused")
				continue
			}
			c.Reply <- nil
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Send(ctx, path, rollout.CmdPause); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := Send(ctx, path, rollout.CmdResume); err == nil || err.Error() != "the rollout is not paused" {
		t.Fatalf("resume: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode().Perm(), err)
	}
	stop()
	if err := Send(ctx, path, rollout.CmdAbort); !errors.Is(err, ErrNoRollout) {
		t.Fatalf("after stop: %v, want ErrNoRollout", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the socket file outlived the rollout")
	}
}

func TestAStaleSocketIsReplacedButALiveOneIsNot(t *testing.T) {
	path := SocketPath(t.TempDir(), "shop")
	controls := make(chan rollout.Control)
	stop, err := Serve(context.Background(), path, controls, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(context.Background(), path, controls, nil); err == nil {
		t.Fatal("a second server took a live socket")
	}
	stop()
	os.WriteFile(path, nil, 0o600) // what a killed kiln leaves behind, near enough
	stop2, err := Serve(context.Background(), path, controls, nil)
	if err != nil {
		t.Fatalf("a stale socket file blocked a new rollout: %v", err)
	}
	stop2()
}

func TestAWatcherGetsTheReplayThenLiveEventsUntilTheEnd(t *testing.T) {
	path := SocketPath(t.TempDir(), "shop")
	hub := NewHub(2)
	stop, err := Serve(context.Background(), path, make(chan rollout.Control), hub)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, l := range []string{`{"event":"rollout-started"}`, `{"n":1}`, `{"n":2}`, `{"n":3}`} {
		hub.Publish([]byte(l))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lines, err := Watch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The opening event, then the last two (the replay is bounded).
	for _, want := range []string{`{"event":"rollout-started"}`, `{"n":2}`, `{"n":3}`} {
		if got := string(<-lines); got != want {
			t.Fatalf("replay: got %s, want %s", got, want)
		}
	}
	hub.Publish([]byte(`{"n":4}`))
	if got := string(<-lines); got != `{"n":4}` {
		t.Fatalf("live: got %s", got)
	}
	hub.Close()
	if _, open := <-lines; open {
		t.Fatal("the stream did not end with the rollout")
	}
}

func TestASlowWatcherNeverBlocksTheRollout(t *testing.T) {
	hub := NewHub(10)
	_, ch, _ := hub.subscribe()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3*watcherBuffer; i++ {
			hub.Publish([]byte(`{}`))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing blocked on a watcher that reads nothing")
	}
	n := 0
	for range ch {
		n++
	}
	if n != watcherBuffer {
		t.Fatalf("the slow watcher got %d events before being dropped, want %d", n, watcherBuffer)
	}
}
