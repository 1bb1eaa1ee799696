// Package control carries pause, resume, promote and abort from another terminal (or the
// console) to a running rollout, over a unix socket owned by the rollout's process. One
// request per connection: a JSON line {"command": "pause"}, answered by {"ok": true} or
// {"error": "..."}.
package control

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/rollout"
)

// SocketPath is where the rollout of service with the given state directory listens.
// Unix socket paths are short (108 bytes), so it lives in the temporary directory under
// a hash of the state directory rather than in the state directory itself.
func SocketPath(stateDir, service string) string {
	sum := sha256.Sum256([]byte(stateDir))
	return filepath.Join(os.TempDir(), "kiln-"+hex.EncodeToString(sum[:6]), service+".sock")
}

type request struct {
	Command rollout.Command `json:"command"`
}

type response struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// ErrNoRollout means no rollout of the service is running.
var ErrNoRollout = errors.New("no rollout is running for this service")

// cmdWatch asks for the rollout's event stream instead of sending a command.
const cmdWatch rollout.Command = "watch"

// Serve listens on path and forwards every command to controls until ctx ends; a watch
// request is answered with the hub's event stream (hub may be nil: no watching). A socket
// left by a killed kiln is replaced; a live one means another rollout runs (the stack
// lock is what decides that, so this is only a guard).
func Serve(ctx context.Context, path string, controls chan<- rollout.Control, hub *Hub) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another kiln", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go handle(ctx, conn, controls, hub)
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}, nil
}

func handle(ctx context.Context, conn net.Conn, controls chan<- rollout.Control, hub *Hub) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(response{Error: "bad request: " + err.Error()})
		return
	}
	if req.Command == cmdWatch {
		if hub == nil {
			json.NewEncoder(conn).Encode(response{Error: "this rollout cannot be watched"})
			return
		}
		conn.SetDeadline(time.Time{})
		hub.stream(ctx, conn)
		return
	}
	reply := make(chan error, 1)
	select {
	case controls <- rollout.Control{Command: req.Command, Reply: reply}:
	case <-ctx.Done():
		json.NewEncoder(conn).Encode(response{Error: "the rollout is ending"})
		return
	case <-time.After(20 * time.Second):
		json.NewEncoder(conn).Encode(response{Error: "the rollout is busy in a step that takes no commands; try again"})
		return
	}
	var resp response
	select {
	case err := <-reply:
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK = true
		}
	case <-ctx.Done():
		resp.Error = "the rollout is ending"
	}
	json.NewEncoder(conn).Encode(resp)
}

// Send delivers cmd to the rollout listening on path and returns its answer.
func Send(ctx context.Context, path string, cmd rollout.Command) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return ErrNoRollout
		}
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(request{Command: cmd}); err != nil {
		return err
	}
	var resp response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return fmt.Errorf("no answer from the rollout: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}
