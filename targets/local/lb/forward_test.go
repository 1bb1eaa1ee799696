package lb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoHeadBackend answers every request with what it received, as JSON.
func echoHeadBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		body, _ := io.ReadAll(r.Body)
		writeJSON(w, http.StatusOK, receivedRequest{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

type receivedRequest struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

// exchange writes a raw request on c and reads the answer.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// TestLeanAndHandedOffRequestsReachTheTargetAlike sends the same headers
// once on the lean path (a GET) and once through net/http and ReverseProxy
// (a POST with a body), on one keep-alive connection, and checks that the
// target sees the same forwarded request.
func TestLeanAndHandedOffRequestsReachTheTargetAlike(t *testing.T) {
	addr := echoHeadBackend(t)
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "echo-0", Address: addr}}}), Options{})
	h.waitHealth("echo-0", HealthHealthy)
	c := h.rawConn()
	br := bufio.NewReader(c)
	const headers = "Host: app.example\r\nX-Custom: one\r\nX-Custom: two\r\nX-Forwarded-For: 1.1.1.1\r\nForwarded: for=6.6.6.6\r\n" +
		"X-Forwarded-Proto: https\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nProxy-Authorization: Basic x\r\n"
	var seen []receivedRequest
	for _, raw := range []string{
		"GET /p/a%2Fb?q=1 HTTP/1.1\r\n" + headers + "\r\n",
		"POST /p/a%2Fb?q=1 HTTP/1.1\r\n" + headers + "Content-Length: 4\r\n\r\nbody",
		"GET /p/a%2Fb?q=1 HTTP/1.1\r\n" + headers + "\r\n", // now on net/http's side of the connection
	} {
		resp, body := exchange(t, c, br, raw)
		if resp.StatusCode != 200 || resp.Header.Get(HeaderGroup) != "blue" || resp.Header.Get(HeaderTarget) != "echo-0" {
			t.Fatalf("%.30q: %d %v", raw, resp.StatusCode, resp.Header)
		}
		var got receivedRequest
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, got)
	}
	for i, got := range seen {
		h := got.Header
		if got.URI != "/p/a%2Fb?q=1" || got.Host != "app.example" ||
			strings.Join(h["X-Custom"], ",") != "one,two" ||
			strings.Join(h["X-Forwarded-For"], ",") != "127.0.0.1" || h.Get("X-Forwarded-Host") != "app.example" ||
			h.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("request %d reached the target as %+v", i, got)
		}
		for _, hop := range []string{"Forwarded", "Keep-Alive", "Proxy-Authorization"} {
			if _, ok := h[hop]; ok {
				t.Errorf("request %d: %s reached the target", i, hop)
			}
		}
	}
	if seen[1].Body != "body" {
		t.Errorf("POST body = %q", seen[1].Body)
	}
}

// framingBackend answers in every way HTTP/1.1 frames a body.
func framingBackend(t *testing.T, sseNext chan struct{}) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "first,")
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "second")
		w.Header().Set("X-Sum", "2")
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		_, _ = w.Write(largeBody())
	})
	mux.HandleFunc("/close-delimited", hijackedAnswer("HTTP/1.0 200 OK\r\nX-Old: yes\r\nConnection: X-Old\r\n\r\nuntil the end"))
	mux.HandleFunc("/last", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set(HeaderGroup, "forged")
		w.Header().Set("Keep-Alive", "timeout=1")
		_, _ = io.WriteString(w, "last on this connection")
	})
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/not-modified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final")
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		<-sseNext // sent only once the client read the first event
		_, _ = io.WriteString(w, "data: 2\n\n")
	})
	mux.HandleFunc("/unasked-upgrade", hijackedAnswer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// hijackedAnswer writes answer as is on the connection, then closes it.
func hijackedAnswer(answer string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = bw.WriteString(answer)
		_ = bw.Flush()
	}
}

func largeBody() []byte {
	return bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
}

// TestAnswersOfEveryFramingReachTheClient reads answers of every framing
// through the lean path, one after the other on one keep-alive connection.
func TestAnswersOfEveryFramingReachTheClient(t *testing.T) {
	sseNext := make(chan struct{})
	addr := framingBackend(t, sseNext)
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "f-0", Address: addr}}}), Options{})
	h.waitHealth("f-0", HealthHealthy)
	c := h.rawConn()
	br := bufio.NewReader(c)
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		resp, body := exchange(t, c, br, method+" "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n")
		if resp.Header.Get(HeaderGroup) != "blue" {
			t.Errorf("%s %s: no %s in %v", method, path, HeaderGroup, resp.Header)
		}
		return resp, body
	}

	resp, body := get("GET", "/chunked")
	if resp.StatusCode != 200 || body != "first,second" || resp.Trailer.Get("X-Sum") != "2" ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("chunked: %d %q trailer %v framing %v", resp.StatusCode, body, resp.Trailer, resp.TransferEncoding)
	}

	resp, body = get("GET", "/large")
	if resp.StatusCode != 200 || resp.ContentLength != 1<<20 || body != string(largeBody()) {
		t.Errorf("large: %d, length %d, %d bytes read, equal %v", resp.StatusCode, resp.ContentLength, len(body), body == string(largeBody()))
	}

	// The target closes its connection after this answer; the client's
	// stays open.
	resp, body = get("GET", "/last")
	if resp.StatusCode != 200 || body != "last on this connection" || resp.Close || resp.Header.Get("Keep-Alive") != "" ||
		len(resp.Header[HeaderGroup]) != 1 {
		t.Errorf("last: %d %q close %v %v", resp.StatusCode, body, resp.Close, resp.Header)
	}

	resp, body = get("HEAD", "/large")
	if resp.StatusCode != 200 || resp.ContentLength != 1<<20 || body != "" {
		t.Errorf("HEAD: %d, length %d, body %q", resp.StatusCode, resp.ContentLength, body)
	}

	resp, body = get("GET", "/close-delimited")
	if resp.StatusCode != 200 || body != "until the end" || resp.Header.Get("X-Old") != "" || resp.Close {
		t.Errorf("close-delimited: %d %q %v close %v", resp.StatusCode, body, resp.Header, resp.Close)
	}

	resp, body = get("GET", "/no-content")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("no content: %d %q", resp.StatusCode, body)
	}

	resp, body = get("GET", "/not-modified")
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `"v1"` || body != "" {
		t.Errorf("not modified: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	resp, body = get("GET", "/early-hints")
	if resp.StatusCode != 200 || body != "final" {
		t.Errorf("early hints: %d %q", resp.StatusCode, body)
	}

	resp, body = get("GET", "/unasked-upgrade")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unasked upgrade: %d %q", resp.StatusCode, body)
	}

	// A stream is flushed as it arrives: the backend sends its second event
	// only once the client has read the first.
	if _, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("data: 1\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: 1\n\n" {
		t.Fatalf("first event = %q, %v", first, err)
	}
	close(sseNext)
	if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "data: 2\n\n" {
		t.Fatalf("second event = %q, %v", rest, err)
	}

	if r := h.get("/large"); r.code != 200 {
		t.Errorf("after all that, a new connection: %+v", r)
	}
}

func TestPipelinedRequestsAndClose(t *testing.T) {
	b := newBackend(t, "blue-0")
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}}), Options{})
	h.waitHealth("blue-0", HealthHealthy)
	c := h.rawConn()
	const get = "GET / HTTP/1.1\r\nHost: lb\r\n\r\n"
	if _, err := io.WriteString(c, get+get+"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 3 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "blue-0" || resp.Close != (i == 2) {
			t.Fatalf("answer %d: %d %q close %v", i, resp.StatusCode, body, resp.Close)
		}
	}
	if !closedByPeer(c) {
		t.Fatal("the lb kept the connection after Connection: close")
	}
}

// TestRequestsTheLeanPathDoesNotServe checks requests net/http answers
// once the lean path handed it the connection.
func TestRequestsTheLeanPathDoesNotServe(t *testing.T) {
	b := newBackend(t, "blue-0")
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}}), Options{})
	h.waitHealth("blue-0", HealthHealthy)

	c := h.rawConn()
	resp, _ := exchange(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: lb\r\nBad header\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed header: %d, want 400", resp.StatusCode)
	}

	// Expect: 100-continue: the body follows net/http's interim answer.
	c = h.rawConn()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("interim answer %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	resp, body := exchange(t, c, br, "hello")
	if resp.StatusCode != 200 || body != "hello" {
		t.Errorf("after 100 Continue: %d %q", resp.StatusCode, body)
	}

	resp, body = exchange(t, c, br, "GET / HTTP/1.0\r\nHost: lb\r\n\r\n")
	if resp.StatusCode != 200 || body != "blue-0" {
		t.Errorf("HTTP/1.0: %d %q", resp.StatusCode, body)
	}
}
