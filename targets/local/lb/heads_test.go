package lb

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
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
