package lb

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawConn dials the lb's proxy listener for tests that speak HTTP by hand.
func (h *harness) rawConn() net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", h.ready.Listen)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reads from c until the peer closes it, and reports whether it
// did so within a bound only a missing timeout reaches.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowlorisClientIsCutOff(t *testing.T) {
	// The first request's head, and a later one's on a kept-alive
	// connection (whose first byte comes alone), are both bounded.
	for _, served := range []int{0, 1} {
		t.Run(fmt.Sprintf("after %d served", served), func(t *testing.T) {
			b := newBackend(t, "blue-0")
			cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}})
			cfg.Proxy.ReadHeaderTimeout = Duration(300 * time.Millisecond)
			h := startLB(t, cfg, Options{})
			h.waitHealth("blue-0", HealthHealthy)

			c := h.rawConn()
			br := bufio.NewReader(c)
			for range served {
				if resp, _ := exchange(t, c, br, "GET / HTTP/1.1\r\nHost: lb\r\n\r\n"); resp.StatusCode != 200 {
					t.Fatalf("a complete request: %d", resp.StatusCode)
				}
			}
			// One header line every 50ms never completes the request.
			stop := make(chan struct{})
			go func() {
				if _, err := io.WriteString(c, "G"); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
				if _, err := io.WriteString(c, "ET / HTTP/1.1\r\nHost: lb\r\n"); err != nil {
					return
				}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if _, err := io.WriteString(c, "X-Drip: 1\r\n"); err != nil {
						return
					}
				}
			}()
			defer close(stop)
			if !closedByPeer(c) {
				t.Fatal("the lb kept a connection whose headers never ended")
			}
			if n := b.hits.Load(); n != int64(served) {
				t.Errorf("the target saw %d requests, want %d: the slow one reached it", n, served)
			}
			if r := h.get("/"); r.code != 200 {
				t.Fatalf("a normal request after the slow one: %+v", r)
			}
		})
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	b := newBackend(t, "blue-0")
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}})
	cfg.Proxy.MaxHeaderBytes = 8 << 10
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	send := func(size int) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.ready.Listen+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", size))
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(64 << 10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: status %d, want 431", code)
	}
	if n := b.hits.Load(); n != 0 {
		t.Errorf("an oversized request reached the target (%d hits)", n)
	}
	if code := send(2 << 10); code != http.StatusOK {
		t.Fatalf("2 KiB header: status %d, want 200", code)
	}
}

// stuckBackend accepts requests and never answers them until the test ends.
func stuckBackend(t *testing.T) (addr string, hits *atomic.Int64) {
	hits = new(atomic.Int64)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		hits.Add(1)
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.Listener.Addr().String(), hits
}

func TestTargetThatNeverAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy Proxy
	}{
		{"upstream header timeout", Proxy{UpstreamHeaderTimeout: Duration(200 * time.Millisecond), ExposeTarget: true}},
		{"request deadline", Proxy{RequestTimeout: Duration(200 * time.Millisecond), ExposeTarget: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, hits := stuckBackend(t)
			cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "stuck-0", Address: addr}}})
			cfg.Proxy = tc.proxy
			h := startLB(t, cfg, Options{})
			h.waitHealth("stuck-0", HealthHealthy)

			r := h.get("/")
			if r.code != http.StatusGatewayTimeout || r.target != "stuck-0" || !strings.Contains(r.body, "upstream timeout") {
				t.Fatalf("answer = %+v, want 504 from stuck-0", r)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("the target saw the request %d times, want 1", n)
			}
			st := h.status()
			if st.Requests.Failed != 1 || st.Groups[0].Targets[0].Inflight != 0 {
				t.Errorf("status after the timeout = %+v", st)
			}
			if !strings.Contains(h.logs.String(), "upstream error") {
				t.Errorf("the timeout was not logged")
			}
		})
	}
}

func TestTargetHeaderOnlyWhenAsked(t *testing.T) {
	b := newBackend(t, "blue-0")
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target(), {ID: "blue-dead", Address: "127.0.0.1:1"}}})
	cfg.Proxy = Proxy{}
	cfg.Health.HealthyThreshold = 1
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	if r := h.get("/"); r.code != 200 || r.group != "blue" || r.target != "" {
		t.Fatalf("default answer = %+v, want the group and no target", r)
	}
	cfg.Generation = 2
	cfg.Proxy.ExposeTarget = true
	h.writeConfig(cfg)
	if code, body := h.reload(); code != 200 {
		t.Fatalf("reload = %d %s", code, body)
	}
	if r := h.get("/"); r.code != 200 || r.target != "blue-0" {
		t.Fatalf("answer with exposeTarget = %+v", r)
	}
}

// upgradeBackend switches to an echo of raw bytes after a WebSocket
// handshake, and answers plain requests with "plain".
func upgradeBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		if r.Header.Get("Upgrade") != "websocket" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, _ = io.WriteString(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw) // echo until the client closes
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestUpgradeIsProxied(t *testing.T) {
	addr := upgradeBackend(t)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "ws-0", Address: addr}}})
	cfg.Proxy.RequestTimeout = Duration(100 * time.Millisecond) // upgraded connections are exempt
	h := startLB(t, cfg, Options{})
	h.waitHealth("ws-0", HealthHealthy)

	c := h.rawConn()
	_, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" || resp.Header.Get(HeaderTarget) != "ws-0" {
		t.Fatalf("handshake answer = %d %v", resp.StatusCode, resp.Header)
	}
	echo := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q = %q, %v", msg, got, err)
		}
	}
	echo("hello\n")
	if ts, _ := h.target("ws-0"); ts.Inflight != 1 {
		t.Errorf("an open upgraded connection counts as in flight; inflight = %d", ts.Inflight)
	}
	time.Sleep(300 * time.Millisecond) // past requestTimeout: the connection stays
	echo("still here\n")
	c.Close()
	waitFor(t, "upgraded connection released", func() bool {
		ts, _ := h.target("ws-0")
		return ts.Inflight == 0
	})
}

// TestUpgradeAfterPlainRequests upgrades a connection that first carried a
// lean request and then one net/http served (the lean path handed it
// over), each of which set a deadline on it: the upgraded connection
// outlives both (net/http clears them when ReverseProxy hijacks it).
func TestUpgradeAfterPlainRequests(t *testing.T) {
	addr := upgradeBackend(t)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "ws-0", Address: addr}}})
	cfg.Proxy.RequestTimeout = Duration(100 * time.Millisecond)
	h := startLB(t, cfg, Options{})
	h.waitHealth("ws-0", HealthHealthy)

	c := h.rawConn()
	br := bufio.NewReader(c)
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: lb\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: lb\r\nContent-Length: 1\r\n\r\nx",
	} {
		if resp, _ := exchange(t, c, br, req); resp.StatusCode != 200 {
			t.Fatalf("%.20q: %d", req, resp.StatusCode)
		}
	}
	resp, _ := exchange(t, c, br, "GET /ws HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answer = %d", resp.StatusCode)
	}
	time.Sleep(100*time.Millisecond + answerGrace + 200*time.Millisecond) // past the earlier requests' deadlines
	if _, err := io.WriteString(c, "still here\n"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("still here\n"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "still here\n" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

// resettingBackend reads a request for /boom and closes the connection
// without answering, as an app that crashes mid-request does.
func resettingBackend(t *testing.T) (addr string, booms *atomic.Int64) {
	booms = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/boom" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		booms.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), booms
}

func TestRequestThatReachedATargetIsNeverRetried(t *testing.T) {
	addr0, booms0 := resettingBackend(t)
	addr1, booms1 := resettingBackend(t)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: addr0}, {ID: "blue-1", Address: addr1}}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("blue-1", HealthHealthy)

	const n = 20
	for i := range n {
		// Warm both targets' pools first: net/http retries an idempotent
		// request on its own only over a reused connection.
		for range 2 {
			if r := h.get("/"); r.code != 200 {
				t.Fatalf("warm-up: %+v", r)
			}
		}
		var r result
		if i%2 == 0 {
			r = h.get("/boom")
		} else {
			resp, err := h.client.Post("http://"+h.ready.Listen+"/boom", "text/plain", strings.NewReader("once"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r.code = resp.StatusCode
		}
		if r.code != http.StatusBadGateway {
			t.Fatalf("request %d: %+v, want 502", i, r)
		}
		if got := booms0.Load() + booms1.Load(); got != int64(i+1) {
			t.Fatalf("after %d requests the targets saw %d (blue-0 %d, blue-1 %d): a request was sent twice",
				i+1, got, booms0.Load(), booms1.Load())
		}
	}
	if booms0.Load() == 0 || booms1.Load() == 0 {
		t.Errorf("both targets should have served /boom: %d, %d", booms0.Load(), booms1.Load())
	}
}
