// Package control carries pause, resume, promote and abort from another terminal (or the
// console) to a running rollout, over a unix socket owned by the rollout's process. One
// request per connection: a JSON line {"command": "pause"}, answered by {"ok": true} or
// {"error": "..."}.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/rollout"
)

// SocketPath is where the rollout of service with the given state directory listens: in
// the state directory's control/ directory, which only its owner may create or enter.
// (A predictable name under the shared temporary directory let another local user make
// that directory first, to block rollouts or to answer for them.)
func SocketPath(stateDir, service string) string {
	return filepath.Join(stateDir, "control", service+".sock")
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
// lock is what decides that, so this is only a guard). The socket's directory must be
// this user's own, mode 0700, and a connection from another user is refused.
func Serve(ctx context.Context, path string, controls chan<- rollout.Control, hub *Hub) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), fileperm.Dir); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := checkDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	live := withAddr(path, func(addr string) error {
		c, err := net.DialTimeout("unix", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	if live == nil {
		return nil, fmt.Errorf("control socket %s is in use by another kiln", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var l *net.UnixListener
	err := withAddr(path, func(addr string) error {
		ln, err := net.Listen("unix", addr)
		if err == nil {
			l = ln.(*net.UnixListener)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The address may name the directory through a descriptor that is closed by now:
	// the socket is removed by its real path.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(path, fileperm.File); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket: %w", err)
	}
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
			go func() {
				if err := checkPeer(conn); err != nil {
					json.NewEncoder(conn).Encode(response{Error: err.Error()})
					hangUp(conn)
					return
				}
				handle(ctx, conn, controls, hub)
			}()
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}, nil
}

// maxRequest bounds a request line: the longest valid one is a few dozen bytes.
const maxRequest = 1 << 10

// maxDrain bounds what is read and dropped after the answer: what a peer sent beyond its
// request.
const maxDrain = 64 << 10

// hangUp ends a connection once its answer is written. Closing a unix socket with unread
// input resets it, and the peer would lose the answer (an "ok" to an abort that
// happened): the write side is shut first and what the peer sent beyond its request is
// read and dropped, within bounds.
func hangUp(conn net.Conn) {
	if uc, ok := conn.(*net.UnixConn); ok && uc.CloseWrite() == nil {
		uc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(uc, maxDrain))
	}
	conn.Close()
}

func handle(ctx context.Context, conn net.Conn, controls chan<- rollout.Control, hub *Hub) {
	defer hangUp(conn)
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req request
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&req); err != nil {
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
	conn, err := dial(ctx, path)
	if err != nil {
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
