package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/rollout"
)

// connPair is a connected pair of unix stream sockets: a real connection, whose write
// side the client can close after its request.
func connPair(t testing.TB) (server, client *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// FuzzRequest sends whatever bytes a peer may send as its request. Whatever they are, the
// rollout answers exactly one JSON line, {"ok": true} or {"error": "..."} and nothing
// else, handles no more than one command, and only a command the request really spelled.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"command": "pause"}`, `{"command":"resume"}` + "\n", `{"command": "promote"}`, `{"command": "abort"}`,
		`{"command": "watch"}`, `{"command": "reboot"}`, `{"command": ""}`, `{}`, `null`, `[]`, `"abort"`,
		`{"command": "abort"}{"command": "pause"}`, `{"command": "abort"`, `{"command": 7}`,
		`{"command": "\u0000abort"}`, "", "\n", "\xff\xfe", strings.Repeat(" ", 2000) + `{"command": "abort"}`,
		`{"command": "` + strings.Repeat("a", 5000) + `"}`, strings.Repeat("[", 3000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > maxDrain/2 {
			input = input[:maxDrain/2] // beyond what the rollout reads and drops
		}
		server, client := connPair(t)
		defer client.Close()
		controls := make(chan rollout.Control)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var got []rollout.Command
		engine := make(chan struct{})
		go func() {
			defer close(engine)
			for {
				select {
				case c := <-controls:
					got = append(got, c.Command)
					c.Reply <- nil
				case <-ctx.Done():
					return
				}
			}
		}()
		hub := NewHub(1)
		hub.Close() // a watch is answered at once: the rollout is ending
		handled := make(chan struct{})
		go func() {
			defer close(handled)
			handle(ctx, server, controls, hub)
		}()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		client.Write(input) // may fail once the rollout stopped reading: that is its right
		client.CloseWrite()
		answer, err := io.ReadAll(client)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", input, err)
		}
		<-handled
		cancel()
		<-engine

		line, rest, ok := bytes.Cut(answer, []byte("\n"))
		if !ok || len(rest) != 0 {
			t.Fatalf("answer to %q is not one line: %q", input, answer)
		}
		var resp map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&resp); err != nil || len(resp) != 1 || (resp["ok"] != true && resp["error"] == nil) {
			t.Fatalf("answer to %q is not {ok} or {error}: %q", input, line)
		}
		if len(got) > 1 {
			t.Fatalf("one request handled %d commands: %v", len(got), got)
		}
		if len(got) == 1 {
			var req request
			if err := json.NewDecoder(bytes.NewReader(input)).Decode(&req); err != nil || req.Command != got[0] {
				t.Fatalf("request %q reached the rollout as %q", input, got[0])
			}
			if resp["ok"] != true {
				t.Fatalf("the rollout accepted %q but the answer is %q", got[0], line)
			}
		}
	})
}
