package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// front is the proxy listener's own HTTP/1.1 server. It reads each request
// head itself and forwards the common shape, a bodyless HTTP/1.1 request in
// origin form, over the targets' pools on the connection's goroutine, with
// no header map, request clone or background read per request (see
// forward.go): net/http's server and httputil.ReverseProxy were most of the
// lb's CPU per request. Any other request (a body, an upgrade, Expect,
// HTTP/1.0, a head that is too large or malformed) hands the connection,
// unread bytes included, to the net/http server and ReverseProxy for the
// rest of its life, so that their behaviour (and answers such as 400 and
// 431) stays the reference for everything the lean path does not serve.
type front struct {
	s       *Server
	l       net.Listener
	px      Proxy // the listener's bounds, which a reload cannot change
	handoff *handoffListener

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*frontConn]struct{}
}

// frontConn is one client connection served by the lean path.
type frontConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32 // connIdle, connActive or connClosed
	ip    string       // the client's address, for X-Forwarded-For
	out   []byte       // the request head sent to the target, reused
}

// States of a frontConn, so that a shutdown closes idle connections and
// lets active ones finish their request.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// leanHeadMax bounds the request head the lean path reads; a larger one
// goes to net/http, which applies proxy.maxHeaderBytes.
const leanHeadMax = 8 << 10

func newFront(s *Server, l net.Listener, px Proxy) *front {
	return &front{s: s, l: l, px: px, conns: map[*frontConn]struct{}{},
		handoff: &handoffListener{addr: l.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}}
}

// serve accepts connections until the listener is closed.
func (f *front) serve() error {
	var backoff time.Duration
	for {
		c, err := f.l.Accept()
		if err != nil {
			if f.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() { // as net/http.Server.Serve does: EMFILE and the like pass
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				f.s.log.Warn("lb accept", "err", err, "retryIn", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		fc := &frontConn{c: c, br: bufio.NewReaderSize(c, leanHeadMax), bw: bufio.NewWriterSize(c, 4<<10)}
		if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
			fc.ip = host
		}
		f.mu.Lock()
		if f.closing.Load() {
			f.mu.Unlock()
			c.Close()
			return nil
		}
		f.conns[fc] = struct{}{}
		f.mu.Unlock()
		go f.serveConn(fc)
	}
}

func (f *front) serveConn(fc *frontConn) {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			f.s.log.Error("lb connection panicked", "panic", v, "stack", string(debug.Stack()))
		}
		if !handedOff {
			fc.c.Close()
		}
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
	}()
	limit := min(leanHeadMax, f.px.MaxHeaderBytes)
	// The first request's head is due within readHeaderTimeout of the
	// accept; later ones within it of their first byte.
	headDeadline := time.Now().Add(f.px.ReadHeaderTimeout.Std())
	for first := true; ; first = false {
		if first {
			_ = fc.c.SetReadDeadline(headDeadline)
		} else {
			_ = fc.c.SetReadDeadline(time.Now().Add(f.px.IdleTimeout.Std()))
		}
		if _, err := fc.br.Peek(1); err != nil {
			return
		}
		if !first && !headBuffered(fc.br) {
			// The head's first bytes came alone: the rest is due
			// within readHeaderTimeout. (Usually the whole head comes
			// at once, and a deadline would only cost a timer update.)
			_ = fc.c.SetReadDeadline(time.Now().Add(f.px.ReadHeaderTimeout.Std()))
		}
		if !fc.state.CompareAndSwap(connIdle, connActive) {
			return // closed by a shutdown
		}
		n, err := peekHead(fc.br, limit)
		if err != nil {
			return
		}
		var lr leanRequest
		ok := false
		if n > 0 {
			raw, _ := fc.br.Peek(n)
			lr, ok = parseHead(raw, fc)
		}
		if !ok {
			handedOff = true
			f.handOff(fc)
			return
		}
		_, _ = fc.br.Discard(n)
		if !f.s.forward(fc, &lr, f.closing.Load()) || lr.close {
			return
		}
		fc.state.Store(connIdle)
		if f.closing.Load() {
			return
		}
	}
}

// headBuffered reports whether br already holds a complete head.
func headBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, []byte("\r\n\r\n"))
}

// peekHead waits until br holds a complete head (a request's or an
// answer's), without consuming it, and returns its length, or 0 when the
// head does not fit in limit bytes or has a bare LF line ending: net/http
// reads those.
func peekHead(br *bufio.Reader, limit int) (int, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return i + 4, nil
		}
		if len(buf) >= limit || bytes.Contains(buf, []byte("\n\n")) {
			return 0, nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// handOff gives the connection, with what it buffered, to the net/http
// server.
func (f *front) handOff(fc *frontConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	_ = fc.c.SetReadDeadline(time.Time{})
	f.handoff.give(&replayConn{Conn: fc.c, br: fc.br})
}

// shutdown stops accepting, closes idle connections and waits for active
// ones to finish their request, until ctx ends; then it closes them all.
// Connections handed to net/http are that server's to drain.
func (f *front) shutdown(ctx context.Context) error {
	f.closing.Store(true)
	f.l.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		left := len(f.conns)
		for fc := range f.conns {
			if fc.state.CompareAndSwap(connIdle, connClosed) {
				fc.c.Close()
			}
		}
		f.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			f.close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// close closes the listener and every connection at once.
func (f *front) close() {
	f.closing.Store(true)
	f.l.Close()
	f.mu.Lock()
	for fc := range f.conns {
		fc.state.Store(connClosed)
		fc.c.Close()
	}
	f.mu.Unlock()
}

// handoffListener is the net/http server's listener: it yields the
// connections the lean path hands over.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// replayConn reads what the lean path buffered before the rest of the
// connection.
type replayConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// CloseWrite lets net/http half-close after an error answer (such as 431),
// so that the client reads it before the connection ends.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
