package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Response headers naming the group and target that served a request. The
// target is named only when the config's proxy.exposeTarget asks for it.
const (
	HeaderGroup  = "X-Kiln-Group"
	HeaderTarget = "X-Kiln-Target"
)

// answerGrace is the time the lb's own answer (504 when the target missed
// the request deadline) gets to reach the client after the deadline.
const answerGrace = time.Second

// maxTries bounds the targets tried for one request when dials fail.
const maxTries = 3

// placeholderHost is the URL host between the rewrite and the round trip,
// where the chosen target's address replaces it.
const placeholderHost = "kiln-lb-target"

var errNoTarget = errors.New("no healthy target")

type pickKey struct{}

// pick records the choices made for one request.
type pick struct {
	proxy *Proxy // the settings in effect when the request arrived
	// deadline ends the request (proxy.requestTimeout); zero for an
	// upgraded connection.
	deadline time.Time
	group    string
	target   string
	tried    []*target
	// wrote is set once the request was written to a target: from then on
	// it is never sent again, to that target or another one.
	wrote bool
}

// ServeHTTP proxies one request to a target.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	p := &pick{proxy: &s.table.Load().cfg.Proxy}
	if !isUpgrade(r) {
		// An upgraded connection (WebSocket) lives as long as its peers
		// want; a plain request has a deadline, for the client's body and
		// answer here and for the target's side in upstream.roundTrip.
		// Connection deadlines cost no timer of their own, unlike a
		// context deadline.
		p.deadline = time.Now().Add(p.proxy.RequestTimeout.Std())
		// The client's side ends a little later, so that a 504 can still
		// be sent, and its connection's read error (which cancels the
		// request) does not come first.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(p.deadline.Add(answerGrace))
		_ = rc.SetWriteDeadline(p.deadline.Add(answerGrace))
	}
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), pickKey{}, p)))
}

// isUpgrade reports whether r asks to switch protocols (Connection: upgrade).
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

func (s *Server) newReverseProxy() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = placeholderHost
			pr.Out.Host = pr.In.Host // the app sees the Host the client asked for
			pr.SetXForwarded()
		},
		Transport:    roundTripper{s},
		ErrorHandler: s.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// setTargetHeaders names the group, and the target if the config asks for
// it, in an answer.
func setTargetHeaders(h http.Header, p *pick) {
	h.Set(HeaderGroup, p.group)
	if p.proxy.ExposeTarget {
		h.Set(HeaderTarget, p.target)
	}
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	p := r.Context().Value(pickKey{}).(*pick)
	if r.Context().Err() != nil {
		// The client went away; nobody reads this answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	code, named := s.upstreamFailure(p, r.Method, r.URL.Path, err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if named {
		setTargetHeaders(w.Header(), p)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, failureText(code))
}

// upstreamFailure counts and logs a request the lb answers itself because
// no target could serve it, and returns the answer's status code and
// whether the answer names the group (and target) that failed.
func (s *Server) upstreamFailure(p *pick, method, path string, err error) (code int, named bool) {
	s.failed.Add(1)
	if errors.Is(err, errNoTarget) {
		return http.StatusServiceUnavailable, false
	}
	var ne net.Error
	var de *dialError
	timedOut := errors.As(err, &ne) && ne.Timeout() && !errors.As(err, &de)
	if timedOut {
		err = fmt.Errorf("%w (proxy.requestTimeout %s, proxy.upstreamHeaderTimeout %s)", err, p.proxy.RequestTimeout.Std(), p.proxy.UpstreamHeaderTimeout.Std())
	}
	s.log.Warn("upstream error", "group", p.group, "target", p.target, "method", method, "path", path, "err", err)
	if timedOut {
		return http.StatusGatewayTimeout, true
	}
	return http.StatusBadGateway, true
}

// failureText is the body of the lb's own answer with code.
func failureText(code int) string {
	switch code {
	case http.StatusServiceUnavailable:
		return "kiln lb: no healthy target\n"
	case http.StatusGatewayTimeout:
		return "kiln lb: upstream timeout\n"
	}
	return "kiln lb: upstream error\n"
}

type roundTripper struct{ s *Server }

// RoundTrip sends the reverse proxy's request to a target (see send).
// ReverseProxy hands it a request of its own, which it may change.
func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.Context().Value(pickKey{}).(*pick)
	if req.Body != nil && req.Body != http.NoBody {
		// Request.Write closes the body; the server closes the real one.
		req.Body = noClose{req.Body}
	}
	a, t, err := rt.s.send(req.Context(), p, req, nil)
	if err != nil {
		return nil, err
	}
	resp := a.resp // never raw: there is no head
	resp.Body = releaseOnClose(resp.Body, t)
	setTargetHeaders(resp.Header, p)
	return resp, nil
}

// send sends a request to a chosen target, and retries on another healthy
// target when the dial fails, since then nothing of the request was sent.
// head, when not nil, is the bodyless request head to write instead of req
// (see upstream.roundTrip). The target returned counts the request in
// flight until the answer's body is released.
func (s *Server) send(ctx context.Context, p *pick, req *http.Request, head []byte) (answer, *target, error) {
	var lastErr error
	for range maxTries {
		t, g := s.acquire(p.tried)
		if t == nil {
			if lastErr != nil {
				break
			}
			return answer{}, nil, errNoTarget
		}
		p.tried = append(p.tried, t)
		p.group, p.target = g, t.id
		if head == nil {
			req.URL.Host = t.address
		}
		a, err := t.up.roundTrip(ctx, req, head, p.proxy.UpstreamHeaderTimeout.Std(), p.deadline, func() { p.wrote = true })
		if err == nil {
			return a, t, nil
		}
		t.inflight.Add(-1)
		lastErr = err
		var de *dialError
		if !errors.As(err, &de) || p.wrote || ctx.Err() != nil {
			break
		}
		s.log.Debug("dial failed, retrying on another target", "target", t.id, "err", err)
	}
	return answer{}, nil, lastErr
}

// acquire picks a target for a new request and counts it in flight. It
// re-checks that the table did not change between the pick and the count,
// so that a reload that swapped the table and then found a target idle can
// trust that no request will still start on it.
func (s *Server) acquire(tried []*target) (*target, string) {
	for {
		tb := s.table.Load()
		g, t := s.pick(tb, tried)
		if t == nil {
			return nil, ""
		}
		t.inflight.Add(1)
		if s.table.Load() == tb {
			return t, g.name
		}
		t.inflight.Add(-1)
	}
}

// pick chooses a group at random weighted by weight among groups with
// weight > 0 and at least one healthy, untried target, then round-robins
// over that group's healthy untried targets.
func (s *Server) pick(tb *table, tried []*target) (*group, *target) {
	usable := func(t *target) bool {
		if !t.healthy() {
			return false
		}
		for _, x := range tried {
			if x == t {
				return false
			}
		}
		return true
	}
	var eligible [8]*group
	elig := eligible[:0]
	total := 0
	for _, g := range tb.groups {
		if g.weight <= 0 {
			continue
		}
		for _, t := range g.targets {
			if usable(t) {
				elig = append(elig, g)
				total += g.weight
				break
			}
		}
	}
	if total == 0 {
		return nil, nil
	}
	var chosen *group
	r := s.intN(total)
	for _, g := range elig {
		if r < g.weight {
			chosen = g
			break
		}
		r -= g.weight
	}
	var buf [16]*target
	healthy := buf[:0]
	for _, t := range chosen.targets {
		if usable(t) {
			healthy = append(healthy, t)
		}
	}
	n := chosen.rr.Add(1) - 1
	return chosen, healthy[n%uint64(len(healthy))]
}

// bufferPool recycles the proxy's 32 KiB copy buffers, which otherwise
// dominate the lb's allocations per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

type noClose struct{ io.Reader }

func (noClose) Close() error { return nil }

// releaseOnClose decrements t's in-flight count when the response body is
// closed, which the reverse proxy does once the response is copied.
func releaseOnClose(body io.ReadCloser, t *target) io.ReadCloser {
	r := &releaser{t: t}
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		// Upgraded connections (101) must stay writable for the proxy.
		return &releaseRWC{ReadWriteCloser: rwc, r: r}
	}
	return &releaseRC{ReadCloser: body, r: r}
}

type releaser struct {
	t    *target
	done atomic.Bool
}

func (r *releaser) release() {
	if r.done.CompareAndSwap(false, true) {
		r.t.release()
	}
}

// release ends a request counted in flight by acquire.
func (t *target) release() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		// The last request of a removed target that outlived the
		// reload's drain: its connection just went idle.
		t.up.closeIdle()
	}
}

type releaseRC struct {
	io.ReadCloser
	r *releaser
}

func (b *releaseRC) Close() error {
	err := b.ReadCloser.Close()
	b.r.release()
	return err
}

type releaseRWC struct {
	io.ReadWriteCloser
	r *releaser
}

func (b *releaseRWC) Close() error {
	err := b.ReadWriteCloser.Close()
	b.r.release()
	return err
}
