package control

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"sync"
)

// Hub keeps a running rollout's events and streams them to watchers (kiln watch). It
// never blocks the rollout: a watcher that falls behind is disconnected.
type Hub struct {
	mu      sync.Mutex
	first   []byte   // the opening event, kept so a late watcher knows what it watches
	history [][]byte // the most recent events, at most max
	max     int
	subs    map[chan []byte]struct{}
	closed  bool
}

// watcherBuffer is how many events a watcher may lag before it is dropped.
const watcherBuffer = 1024

// NewHub returns a hub that replays at most max recent events to a new watcher.
func NewHub(max int) *Hub {
	return &Hub{max: max, subs: map[chan []byte]struct{}{}}
}

// Publish records one event (a JSON line without its newline) and sends it to every
// watcher.
func (h *Hub) Publish(line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.first == nil {
		h.first = line
	} else {
		h.history = append(h.history, line)
		if len(h.history) > h.max {
			h.history = h.history[len(h.history)-h.max:]
		}
	}
	for ch := range h.subs {
		select {
		case ch <- line:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Close ends every watcher's stream: the rollout is over.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
	}
	h.subs = map[chan []byte]struct{}{}
}

func (h *Hub) subscribe() (replay [][]byte, ch chan []byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	if h.first != nil {
		replay = append(replay, h.first)
	}
	replay = append(replay, h.history...)
	ch = make(chan []byte, watcherBuffer)
	h.subs[ch] = struct{}{}
	return replay, ch, true
}

func (h *Hub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// stream writes the replay then every new event to conn, one per line, until the rollout
// ends or the watcher goes away.
func (h *Hub) stream(ctx context.Context, conn net.Conn) {
	replay, ch, ok := h.subscribe()
	if !ok {
		json.NewEncoder(conn).Encode(response{Error: "the rollout is ending"})
		return
	}
	defer h.unsubscribe(ch)
	w := bufio.NewWriter(conn)
	for _, line := range replay {
		w.Write(line)
		w.WriteByte('\n')
	}
	if w.Flush() != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case line, open := <-ch:
			if !open {
				return
			}
			w.Write(line)
			w.WriteByte('\n')
			if len(ch) == 0 && w.Flush() != nil {
				return
			}
		}
	}
}

// Watch connects to the rollout listening on path and returns its events, replay first,
// as JSON lines; the channel closes when the rollout ends or ctx is done.
func Watch(ctx context.Context, path string) (<-chan []byte, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(conn).Encode(request{Command: cmdWatch}); err != nil {
		conn.Close()
		return nil, err
	}
	out := make(chan []byte, 64)
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		defer close(out)
		defer conn.Close()
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			select {
			case out <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
