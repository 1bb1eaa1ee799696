package lb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	const tail = "X-Forwarded-Host: lb\r\nX-Forwarded-Proto: http\r\n\r\n"
	for _, tc := range []struct {
		name  string
		head  string
		want  string // the head the target gets; "" when the request is handed to net/http
		close bool
	}{
		{name: "plain GET", head: "GET /a?b=1 HTTP/1.1\r\nHost: lb\r\nAccept: */*\r\n\r\n",
			want: "GET /a?b=1 HTTP/1.1\r\nHost: lb\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.9\r\n" + tail},
		{name: "hop-by-hop and forwarding headers replaced",
			head: "GET / HTTP/1.1\r\nhost:  lb \r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic x\r\n" +
				"Proxy-Connection: keep-alive\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n" +
				"X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Kiln-Target: forged\r\n\r\n",
			want: "GET / HTTP/1.1\r\nhost: lb\r\nX-Kiln-Target: forged\r\nX-Forwarded-For: 10.0.0.9\r\n" + tail},
		{name: "close asked", head: "HEAD /x HTTP/1.1\r\nHost: lb\r\nConnection: Keep-Alive, close\r\n\r\n",
			want: "HEAD /x HTTP/1.1\r\nHost: lb\r\nX-Forwarded-For: 10.0.0.9\r\n" + tail, close: true},
		{name: "empty body", head: "DELETE /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\n\r\n",
			want: "DELETE /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\nX-Forwarded-For: 10.0.0.9\r\n" + tail},
		{name: "escapes and sub-delimiters", head: "GET /a%20b/c;v=1/@x:y!$&'()*+,=~ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			want: "GET /a%20b/c;v=1/@x:y!$&'()*+,=~ HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-For: 10.0.0.9\r\n" +
				"X-Forwarded-Host: [::1]:8080\r\nX-Forwarded-Proto: http\r\n\r\n"},
		{name: "empty Host", head: "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			want: "GET / HTTP/1.1\r\nHost: \r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Host: \r\nX-Forwarded-Proto: http\r\n\r\n"},

		{name: "HTTP/1.0", head: "GET / HTTP/1.0\r\nHost: lb\r\n\r\n"},
		{name: "body", head: "POST / HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\n\r\n"},
		{name: "chunked body", head: "POST / HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "upgrade", head: "GET / HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
		{name: "expect", head: "GET / HTTP/1.1\r\nHost: lb\r\nExpect: 100-continue\r\n\r\n"},
		{name: "te", head: "GET / HTTP/1.1\r\nHost: lb\r\nTE: trailers\r\n\r\n"},
		{name: "connection names a header", head: "GET / HTTP/1.1\r\nHost: lb\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n"},
		{name: "no Host", head: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
		{name: "two Hosts", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "bad Host", head: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{name: "folded line", head: "GET / HTTP/1.1\r\nHost: lb\r\nX-A: 1\r\n 2\r\n\r\n"},
		{name: "bad header name", head: "GET / HTTP/1.1\r\nHost: lb\r\nBad Name: 1\r\n\r\n"},
		{name: "no colon", head: "GET / HTTP/1.1\r\nHost: lb\r\nBad\r\n\r\n"},
		{name: "control in value", head: "GET / HTTP/1.1\r\nHost: lb\r\nX-A: a\x01b\r\n\r\n"},
		{name: "absolute form", head: "GET http://lb/ HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "asterisk", head: "OPTIONS * HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "double slash", head: "GET //x HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "semicolon in query", head: "GET /?a=1;b=2 HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "bad escape", head: "GET /%zz HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "short escape", head: "GET /a%2 HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "quote in path", head: "GET /a\"b HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "fragment", head: "GET /a#b HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "bad method", head: "G(T / HTTP/1.1\r\nHost: lb\r\n\r\n"},
		{name: "extra space", head: "GET  / HTTP/1.1\r\nHost: lb\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &frontConn{ip: "10.0.0.9"}
			lr, ok := parseHead([]byte(tc.head), fc)
			if tc.want == "" {
				if ok {
					t.Fatalf("served by the lean path as %q; want it handed to net/http", lr.out)
				}
				return
			}
			if !ok {
				t.Fatal("handed to net/http; want the lean path")
			}
			if string(lr.out) != tc.want || lr.close != tc.close {
				t.Errorf("head = %q, close %v\nwant   %q, close %v", lr.out, lr.close, tc.want, tc.close)
			}
		})
	}
}

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

// FuzzLeanHead checks the lean path's head parser against net/http's: a
// head the lean path serves is one net/http reads the same way (method,
// target, Host, no body, Connection: close), and the head the target gets
// is a valid request carrying exactly the client's end-to-end headers plus
// the lb's X-Forwarded-*, as ReverseProxy would send it.
func FuzzLeanHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: lb\r\n\r\n",
		"HEAD /a%20b?x=1 HTTP/1.1\r\nhost: lb:80\r\nConnection: close\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: lb\r\nX-Forwarded-For: 1.1.1.1\r\nKeep-Alive: 5\r\nContent-Length: 0\r\n\r\n",
		"DELETE /x HTTP/1.1\r\nHost: [::1]\r\nConnection: keep-alive\r\nAccept:\t*/* \r\n\r\n",
		"POST / HTTP/1.1\r\nHost: lb\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(seed)
	}
	dropped := map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
		"Proxy-Authorization": true, "Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true}
	f.Fuzz(func(t *testing.T, head string) {
		n, err := peekHead(bufio.NewReaderSize(strings.NewReader(head), leanHeadMax), leanHeadMax)
		if err != nil || n == 0 {
			return // never a complete head, or one for net/http
		}
		lr, ok := parseHead([]byte(head[:n]), &frontConn{ip: "10.0.0.9"})
		if !ok {
			return
		}
		in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head[:n])))
		if err != nil {
			t.Fatalf("the lean path serves %q, which net/http refuses: %v", head[:n], err)
		}
		if in.Method != lr.method || in.ProtoMinor != 1 || in.ContentLength != 0 || len(in.TransferEncoding) != 0 ||
			in.Close != lr.close || string(lr.path) != in.RequestURI {
			t.Fatalf("lean %+v, net/http %s %s HTTP/1.%d length %d close %v", lr, in.Method, in.RequestURI, in.ProtoMinor, in.ContentLength, in.Close)
		}
		out, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(lr.out)))
		if err != nil {
			t.Fatalf("the target gets %q: %v", lr.out, err)
		}
		if out.Method != in.Method || out.RequestURI != in.RequestURI || out.Host != in.Host || out.ContentLength != 0 {
			t.Fatalf("the target gets %q for %q", lr.out, head[:n])
		}
		want := http.Header{}
		for k, vs := range in.Header {
			if !dropped[k] {
				want[k] = vs
			}
		}
		want["X-Forwarded-For"] = []string{"10.0.0.9"}
		want["X-Forwarded-Host"] = []string{in.Host}
		want["X-Forwarded-Proto"] = []string{"http"}
		if !reflect.DeepEqual(out.Header, want) {
			t.Fatalf("the target gets headers %v for %q, want %v", out.Header, head[:n], want)
		}
	})
}

func TestParseAnswerHead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		head   string
		ok     bool
		code   int
		length int64
		close  bool
	}{
		{name: "plain", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\n", ok: true, code: 200, length: 3},
		{name: "no reason", head: "HTTP/1.1 404\r\ncontent-length: 0\r\n\r\n", ok: true, code: 404},
		{name: "close", head: "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 10\r\nKeep-Alive: timeout=1\r\n\r\n", ok: true, code: 500, length: 10, close: true},

		{name: "no length", head: "HTTP/1.1 200 OK\r\n\r\n"},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"},
		{name: "bad length", head: "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n"},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "HTTP/1.0", head: "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n"},
		{name: "interim", head: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"},
		{name: "no content", head: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"},
		{name: "not modified", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"},
		{name: "event stream", head: "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\nContent-Length: 3\r\n\r\n"},
		{name: "connection names a field", head: "HTTP/1.1 200 OK\r\nConnection: X-A\r\nContent-Length: 3\r\n\r\n"},
		{name: "upgrade", head: "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\n"},
		{name: "pragma", head: "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 3\r\n\r\n"},
		{name: "folded", head: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 3\r\n\r\n"},
		{name: "status glued to reason", head: "HTTP/1.1 200OK\r\nContent-Length: 3\r\n\r\n"},
		{name: "bad status", head: "HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := parseAnswerHead([]byte(tc.head))
			if ok != tc.ok || ok && (a.code != tc.code || a.length != tc.length || a.close != tc.close) {
				t.Errorf("= %+v, %v; want ok %v code %d length %d close %v", a, ok, tc.ok, tc.code, tc.length, tc.close)
			}
		})
	}
}

// FuzzAnswerHead checks the copy of a plain answer against net/http's
// reading of it: an answer head the lean path copies as is must be one
// http.ReadResponse reads with the same status, length and keep-alive,
// and the client must get its end-to-end fields, the lb's group and the
// body.
func FuzzAnswerHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\r\nok",
		"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nX-Kiln-Group: forged\r\n\r\n",
		"HTTP/1.1 299\r\nkeep-alive: timeout=5\r\nX-A: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\nhello",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		n, err := peekHead(bufio.NewReaderSize(strings.NewReader(answer), 4<<10), 4<<10)
		if err != nil || n == 0 {
			return
		}
		a, ok := parseAnswerHead([]byte(answer[:n]))
		if !ok || a.length > int64(len(answer)-n) {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), otherRequest)
		if err != nil {
			t.Fatalf("the lean path copies %q, which net/http refuses: %v", answer[:n], err)
		}
		if resp.StatusCode != a.code || resp.ContentLength != a.length || resp.Close != a.close || len(resp.TransferEncoding) != 0 {
			t.Fatalf("lean %+v, net/http %d length %d close %v framing %v", a, resp.StatusCode, resp.ContentLength, resp.Close, resp.TransferEncoding)
		}
		body, _ := io.ReadAll(resp.Body)

		conn, peer := net.Pipe()
		defer peer.Close()
		a.u, a.c, a.headLen = newUpstream("target"), &upConn{conn: conn, br: bufio.NewReaderSize(strings.NewReader(answer), 4<<10)}, n
		defer a.u.closeIdle()
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		if err := copyRawAnswer(bw, &a, &pick{proxy: &Proxy{}, group: "blue"}, false); err != nil {
			t.Fatal(err)
		}
		got, err := http.ReadResponse(bufio.NewReader(&out), otherRequest)
		if err != nil {
			t.Fatalf("the client gets %q: %v", out.String(), err)
		}
		gotBody, _ := io.ReadAll(got.Body)
		want := resp.Header.Clone()
		for _, k := range []string{"Connection", "Keep-Alive", "Date"} {
			delete(want, k)
		}
		delete(got.Header, "Date")
		want[HeaderGroup] = []string{"blue"}
		if got.StatusCode != a.code || !reflect.DeepEqual(got.Header, want) || !bytes.Equal(gotBody, body) || got.Close {
			t.Fatalf("the client gets %q for %q", out.String(), answer)
		}
	})
}
