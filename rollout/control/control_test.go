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
	stop, err := Serve(context.Background(), path, controls)
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
	stop, err := Serve(context.Background(), path, controls)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(context.Background(), path, controls); err == nil {
		t.Fatal("a second server took a live socket")
	}
	stop()
	os.WriteFile(path, nil, 0o600) // what a killed kiln leaves behind, near enough
	stop2, err := Serve(context.Background(), path, controls)
	if err != nil {
		t.Fatalf("a stale socket file blocked a new rollout: %v", err)
	}
	stop2()
}
