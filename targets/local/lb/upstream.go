package lb

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// upstream is one target's pool of keep-alive HTTP/1.1 connections. A
// request is written and its answer read on the handler's own goroutine,
// without the hand-offs between goroutines net/http's Transport makes for
// every request (they were most of the lb's cost per request), and a request
// is never sent twice behind the caller's back.
type upstream struct {
	address string
	dialer  net.Dialer

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

// upConn is one connection to a target.
type upConn struct {
	conn   net.Conn
	raw    syscall.RawConn // for the liveness probe; nil if the conn has none
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

const (
	maxIdlePerTarget    = 256
	upstreamIdleTimeout = 90 * time.Second
	dialTimeout         = 5 * time.Second
)

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

func newUpstream(address string) *upstream {
	return &upstream{address: address, dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
}

// get returns an idle connection that is still open, or dials a new one. A
// failed dial is a *dialError: nothing of the request was sent.
func (u *upstream) get(ctx context.Context) (*upConn, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		c := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if time.Since(c.idleAt) < upstreamIdleTimeout && c.open() {
			return c, nil
		}
		c.conn.Close()
	}
	nc, err := u.dialer.DialContext(ctx, "tcp", u.address)
	if err != nil {
		return nil, &dialError{err: err}
	}
	c := &upConn{conn: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c, nil
}

// put returns a connection whose last answer was read to its end.
func (u *upstream) put(c *upConn) {
	// No deadline while idle: a passed one would fail the liveness peek.
	_ = c.conn.SetDeadline(time.Time{})
	c.idleAt = time.Now()
	u.mu.Lock()
	if len(u.idle) < maxIdlePerTarget {
		u.idle = append(u.idle, c)
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	c.conn.Close()
}

// closeIdle closes every idle connection.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// open reports whether an idle connection can carry a request: the target
// has not closed it and sent nothing unasked. One non-blocking peek, where
// the Transport keeps a goroutine reading every idle connection.
func (c *upConn) open() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	var buf [1]byte
	open := false
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readability
	})
	return err == nil && open
}

// answer is a target's answer: resp, or for a lean request whose answer
// has the plain shape parseAnswerHead accepts, raw.
type answer struct {
	resp *http.Response
	raw  rawAnswer
}

// rawAnswer is an answer whose head is still buffered on its connection,
// for the lean path to copy as is (see forward.go's copyRawAnswer).
type rawAnswer struct {
	u       *upstream
	c       *upConn
	headLen int   // bytes of the head buffered in c.br
	code    int   // status code
	length  int64 // body bytes after the head
	close   bool  // the target closes the connection after it
}

// done gives the connection back to the pool if the answer was read to its
// end and the target keeps the connection, and closes it otherwise.
func (a *rawAnswer) done(complete bool) {
	if complete && !a.close {
		a.u.put(a.c)
		return
	}
	a.c.conn.Close()
}

// roundTrip sends a request over one connection and reads the answer's
// headers within headerTimeout, and all of it by deadline (if not zero).
// head, when not nil, is a complete bodyless request head, written as is,
// and a plain answer to it comes back raw; otherwise req is written. req's
// method tells how the answer is framed. ctx ending (the client leaving)
// aborts the exchange. Once roundTrip returns without a *dialError the
// request may have reached the target. The answer's body gives the
// connection back to the pool when it was read to its end.
func (u *upstream) roundTrip(ctx context.Context, req *http.Request, head []byte, headerTimeout time.Duration, deadline time.Time, wrote func()) (answer, error) {
	c, err := u.get(ctx)
	if err != nil {
		return answer{}, err
	}
	// The client leaving or the request deadline unblocks reads and writes.
	stop := noStop
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (answer, error) {
		stop()
		c.conn.Close() // ends a body writer too, once its client body read returns
		if ctx.Err() != nil {
			return answer{}, context.Cause(ctx)
		}
		return answer{}, err
	}

	headerDeadline := time.Now().Add(headerTimeout)
	if !deadline.IsZero() && deadline.Before(headerDeadline) {
		headerDeadline = deadline
	}
	_ = c.conn.SetWriteDeadline(deadline)
	_ = c.conn.SetReadDeadline(headerDeadline)
	wrote()
	var written chan error
	switch {
	case head != nil:
		if err := c.writeHead(head); err != nil {
			return fail(err)
		}
	case req.Body == nil || req.Body == http.NoBody:
		if err := c.write(req); err != nil {
			return fail(err)
		}
	default:
		// The target may answer before it read the whole body (or echo
		// it as it reads): write the body while reading the answer.
		written = make(chan error, 1)
		go func() { written <- c.write(req) }()
	}

	if head != nil && req.Method != http.MethodHead { // an answer to HEAD has no body whatever its length says
		// No context to watch: a lean request is sent without one.
		headLen, err := peekHead(c.br, c.br.Size())
		if err != nil {
			return fail(err)
		}
		if headLen > 0 {
			raw, _ := c.br.Peek(headLen)
			if a, ok := parseAnswerHead(raw); ok {
				_ = c.conn.SetReadDeadline(deadline)
				a.u, a.c, a.headLen = u, c, headLen
				return answer{raw: a}, nil
			}
		}
	}
	resp, err := readResponse(c.br, req)
	if err != nil {
		return fail(err)
	}
	_ = c.conn.SetReadDeadline(deadline)
	if ctx.Err() != nil {
		_ = c.conn.SetDeadline(aLongTimeAgo) // the AfterFunc ran before the line above
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &upgradedBody{c: c, stop: stop}
		return answer{resp: resp}, nil
	}
	resp.Body = &upBody{u: u, c: c, body: resp.Body, stop: stop, written: written, reuse: !resp.Close && !req.Close}
	return answer{resp: resp}, nil
}

// noStop stands for context.AfterFunc's stop when the context never ends.
func noStop() bool { return true }

func (c *upConn) writeHead(head []byte) error {
	if _, err := c.bw.Write(head); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *upConn) write(req *http.Request) error {
	if err := req.Write(c.bw); err != nil {
		return err
	}
	return c.bw.Flush()
}

// readResponse reads the final answer, skipping informational ones (100
// Continue and the like); 101 Switching Protocols is final.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if resp.StatusCode < 100 {
			return nil, errors.New("invalid status code in the target's answer")
		}
	}
}

// upBody is an answer's body; closing it gives the connection back to the
// pool if the body was read to its end and the request was fully written.
type upBody struct {
	u       *upstream
	c       *upConn
	body    io.ReadCloser
	stop    func() bool
	written chan error
	reuse   bool
	eof     bool
	closed  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	reuse := b.reuse && b.eof && b.stop() // stop is false if the deadline AfterFunc ran
	if b.written != nil {
		select {
		case err := <-b.written:
			reuse = reuse && err == nil
		default:
			// The target answered before the whole request body was sent.
			reuse = false
		}
	}
	if reuse {
		b.u.put(b.c)
		return nil
	}
	return b.c.conn.Close()
}

// upgradedBody is the target's side of a switched protocol (WebSocket):
// the proxy reads and writes it until either side closes.
type upgradedBody struct {
	c    *upConn
	stop func() bool
}

func (b *upgradedBody) Read(p []byte) (int, error)  { return b.c.br.Read(p) }
func (b *upgradedBody) Write(p []byte) (int, error) { return b.c.conn.Write(p) }
func (b *upgradedBody) Close() error {
	b.stop()
	return b.c.conn.Close()
}
