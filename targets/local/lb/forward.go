package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Requests that tell http.ReadResponse how an answer is framed (a HEAD
// answer has no body); it only reads their method.
var (
	headRequest  = &http.Request{Method: http.MethodHead}
	otherRequest = &http.Request{Method: http.MethodGet}
)

// forward sends a lean request to a target and copies the answer to the
// client, all on the connection's goroutine. It reports whether the
// connection can carry another request; closing says the lb is shutting
// down, so the answer asks the client to close.
func (s *Server) forward(fc *frontConn, lr *leanRequest, closing bool) bool {
	s.total.Add(1)
	p := pick{proxy: &s.table.Load().cfg.Proxy}
	p.deadline = time.Now().Add(p.proxy.RequestTimeout.Std())
	// The client's side ends a little later, so that a 504 can still be
	// sent.
	_ = fc.c.SetWriteDeadline(p.deadline.Add(answerGrace))
	closeAfter := lr.close || closing
	req := otherRequest
	if lr.method == http.MethodHead {
		req = headRequest
	}
	// No context: the lean path reads nothing from the client while a
	// request is out, so it learns of a client that left only when it
	// writes the answer; the request deadline bounds the target's side.
	a, t, err := s.send(context.Background(), &p, req, lr.out)
	if err == nil && a.resp != nil && a.resp.StatusCode == http.StatusSwitchingProtocols {
		a.resp.Body.Close() // unasked for: the request had no Upgrade
		t.release()
		err = errUnaskedUpgrade
	}
	if err != nil {
		code, named := s.upstreamFailure(&p, lr.method, string(lr.path), err)
		return writeFailure(fc.bw, code, named, &p, closeAfter) == nil && !closeAfter
	}
	if a.resp == nil {
		err = copyRawAnswer(fc.bw, &a.raw, &p, closeAfter)
	} else {
		err = writeAnswer(fc.bw, a.resp, lr.method == http.MethodHead, &p, closeAfter)
		a.resp.Body.Close()
	}
	t.release()
	return err == nil && !closeAfter
}

// copyRawAnswer copies a plain answer (see parseAnswerHead) to the client:
// the status line as net/http's server writes it, the target's fields but
// the hop-by-hop ones and those the lb sets itself, then the body.
func copyRawAnswer(bw *bufio.Writer, a *rawAnswer, p *pick, closeConn bool) error {
	br := a.c.br
	head, _ := br.Peek(a.headLen)
	writeStatus(bw, a.code)
	_, rest, _ := nextLine(head)
	hasDate := false
	for {
		var line []byte
		line, rest, _ = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch {
		case headerIs(name, "Connection"), headerIs(name, "Keep-Alive"), headerIs(name, HeaderGroup),
			headerIs(name, HeaderTarget) && p.proxy.ExposeTarget:
			continue
		case headerIs(name, "Date"):
			hasDate = true
		}
		_, _ = bw.Write(line)
		_, _ = bw.WriteString("\r\n")
	}
	_, _ = br.Discard(a.headLen)
	writeField(bw, HeaderGroup, p.group)
	if p.proxy.ExposeTarget {
		writeField(bw, HeaderTarget, p.target)
	}
	endHead(bw, hasDate, closeConn)
	var err error
	if n := a.length; n <= int64(br.Buffered()) {
		body, _ := br.Peek(int(n))
		_, _ = bw.Write(body)
		_, _ = br.Discard(int(n))
	} else {
		_, err = io.CopyN(bw, br, n)
	}
	a.done(err == nil)
	if err != nil {
		return err
	}
	return bw.Flush()
}

var errUnaskedUpgrade = errors.New("the target switched protocols unasked")

// writeFailure writes the lb's own answer with code.
func writeFailure(bw *bufio.Writer, code int, named bool, p *pick, closeConn bool) error {
	body := failureText(code)
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Length": {strconv.Itoa(len(body))}}
	if named {
		setTargetHeaders(h, p)
	}
	writeStatus(bw, code)
	writeHeader(bw, h, closeConn)
	_, _ = bw.WriteString(body)
	return bw.Flush()
}

func writeStatus(bw *bufio.Writer, code int) {
	var num [3]byte
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		_, _ = bw.WriteString(text)
	} else {
		_, _ = bw.WriteString("status code ")
		_, _ = bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	}
	_, _ = bw.WriteString("\r\n")
}

// writeHeader writes h and ends the head (see endHead).
func writeHeader(bw *bufio.Writer, h http.Header, closeConn bool) {
	writeFields(bw, h)
	_, hasDate := h["Date"]
	endHead(bw, hasDate, closeConn)
}

// endHead writes a Date if the head has none (as net/http's server does),
// Connection: close if asked, and the blank line that ends the head.
func endHead(bw *bufio.Writer, hasDate, closeConn bool) {
	if !hasDate {
		var date [len(http.TimeFormat) + 8]byte
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(time.Now().UTC().AppendFormat(date[:0], http.TimeFormat))
		_, _ = bw.WriteString("\r\n")
	}
	if closeConn {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeAnswer copies a target's answer to the client as ReverseProxy and
// net/http's server would: hop-by-hop headers dropped, the group (and
// target) named, a body of known length copied as is, any other body
// re-chunked with its trailers, and streamed answers (chunked or
// text/event-stream) flushed as they arrive.
func writeAnswer(bw *bufio.Writer, resp *http.Response, head bool, p *pick, closeConn bool) error {
	h := resp.Header
	removeHopHeaders(h)
	setTargetHeaders(h, p)
	code := resp.StatusCode
	bodyless := head || code == http.StatusNoContent || code == http.StatusNotModified
	chunked := !bodyless && resp.ContentLength < 0
	writeStatus(bw, code)
	if chunked {
		delete(h, "Content-Length")
		if len(resp.Trailer) > 0 {
			keys := make([]string, 0, len(resp.Trailer))
			for k := range resp.Trailer {
				keys = append(keys, k)
			}
			h["Trailer"] = []string{strings.Join(keys, ", ")}
		}
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	writeHeader(bw, h, closeConn)
	switch {
	case bodyless:
	case chunked:
		if err := copyFlushing(bw, resp.Body, true); err != nil {
			return err
		}
		_, _ = bw.WriteString("0\r\n")
		writeFields(bw, resp.Trailer)
		_, _ = bw.WriteString("\r\n")
	case strings.HasPrefix(h.Get("Content-Type"), "text/event-stream"):
		if err := copyFlushing(bw, resp.Body, false); err != nil {
			return err
		}
	default:
		if _, err := io.Copy(bw, resp.Body); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeFields writes header or trailer fields, one line per value.
func writeFields(bw *bufio.Writer, t http.Header) {
	for k, vs := range t {
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
}

func writeField(bw *bufio.Writer, name, value string) {
	_, _ = bw.WriteString(name)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(value)
	_, _ = bw.WriteString("\r\n")
}

// copyFlushing copies body to the client as it arrives, as chunks if
// chunked, flushing after every read.
func copyFlushing(bw *bufio.Writer, body io.Reader, chunked bool) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if chunked {
				var size [16]byte
				_, _ = bw.Write(strconv.AppendInt(size[:0], int64(n), 16))
				_, _ = bw.WriteString("\r\n")
			}
			_, _ = bw.Write(buf[:n])
			if chunked {
				_, _ = bw.WriteString("\r\n")
			}
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hopHeaders are the headers that concern one connection, never forwarded
// (RFC 9110 section 7.6.1, and the list ReverseProxy drops).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopHeaders drops hop-by-hop headers from an answer, and those its
// Connection header names.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = http.CanonicalHeaderKey(strings.TrimSpace(name)); name != "" {
				delete(h, name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}
