package lb

import (
	"bytes"
	"net/http"
	"strings"
)

// leanRequest is a request the lean path forwards: its head, as the target
// gets it, in the connection's out buffer.
type leanRequest struct {
	out    []byte
	method string
	path   []byte // the request target, for logs
	close  bool   // the client asked to close the connection after it
}

// parseHead parses a request head (ending with its blank line) and writes
// the head the target gets into fc.out, as ReverseProxy would: hop-by-hop
// headers dropped, X-Forwarded-For/Host/Proto set by the lb. ok is
// false when the request is not one the lean path serves: not HTTP/1.1, a
// target not in origin form or that net/http would rewrite, a body, Upgrade,
// Expect, TE or Trailer, a Connection option other than close and
// keep-alive, a missing or repeated Host, or anything malformed.
func parseHead(raw []byte, fc *frontConn) (lr leanRequest, ok bool) {
	line, rest, ok := nextLine(raw)
	if !ok {
		return lr, false
	}
	method, after, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(after, []byte(" "))
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || !isToken(method) || !leanTarget(target) {
		return lr, false
	}
	out := append(fc.out[:0], line...)
	out = append(out, "\r\n"...)
	var host []byte
	hosts := 0
	for {
		var name, value []byte
		var end bool
		if name, value, rest, end, ok = nextField(rest); !ok {
			return lr, false
		}
		if end {
			break
		}
		switch {
		case headerIs(name, "Host"):
			hosts++
			host = value
		case headerIs(name, "Content-Length"):
			if string(value) != "0" {
				return lr, false
			}
		case headerIs(name, "Transfer-Encoding"), headerIs(name, "Upgrade"), headerIs(name, "Expect"),
			headerIs(name, "Te"), headerIs(name, "Trailer"):
			return lr, false
		case headerIs(name, "Connection"):
			if lr.close, ok = connectionOptions(value, lr.close); !ok {
				return lr, false
			}
			continue
		case headerIs(name, "Keep-Alive"), headerIs(name, "Proxy-Connection"), headerIs(name, "Proxy-Authenticate"),
			headerIs(name, "Proxy-Authorization"), headerIs(name, "Forwarded"), headerIs(name, "X-Forwarded-For"),
			headerIs(name, "X-Forwarded-Host"), headerIs(name, "X-Forwarded-Proto"):
			continue // hop-by-hop, or the client's claims the lb replaces below
		}
		out = append(out, name...)
		out = append(out, ": "...)
		out = append(out, value...)
		out = append(out, "\r\n"...)
	}
	if hosts != 1 || !validHost(host) {
		return lr, false
	}
	// The lb is the edge: the client's own forwarding headers are dropped,
	// as ReverseProxy's Rewrite mode does.
	if fc.ip != "" {
		out = append(append(append(out, "X-Forwarded-For: "...), fc.ip...), "\r\n"...)
	}
	out = append(append(append(out, "X-Forwarded-Host: "...), host...), "\r\n"...)
	out = append(out, "X-Forwarded-Proto: http\r\n\r\n"...)
	fc.out = out
	lr.out = out
	lr.method = methodString(method)
	lr.path = out[len(method)+1 : len(method)+1+len(target)]
	return lr, true
}

// nextLine splits the first line off b; ok is false unless it ends with
// CRLF (a bare LF is net/http's to judge).
func nextLine(b []byte) (line, rest []byte, ok bool) {
	end := bytes.IndexByte(b, '\n')
	if end < 1 || b[end-1] != '\r' {
		return nil, nil, false
	}
	return b[:end-1], b[end+1:], true
}

// nextField splits the next field line off b: end is true at the blank
// line that ends a head, ok false at a malformed line (obsolete line
// folding included), which net/http judges.
func nextField(b []byte) (name, value, rest []byte, end, ok bool) {
	line, rest, ok := nextLine(b)
	if !ok || len(line) == 0 {
		return nil, nil, rest, ok, ok
	}
	name, value, found := bytes.Cut(line, []byte(":"))
	value = bytes.Trim(value, " \t")
	return name, value, rest, false, found && isToken(name) && validValue(value)
}

// connectionOptions reads a Connection field: close is true if it (or an
// earlier one) says close; ok is false for any option but close and
// keep-alive, since those name fields to drop, which the lean path leaves
// to net/http and ReverseProxy.
func connectionOptions(value []byte, closeBefore bool) (close, ok bool) {
	close = closeBefore
	for tok := range strings.SplitSeq(string(value), ",") {
		switch tok = strings.TrimSpace(tok); {
		case strings.EqualFold(tok, "close"):
			close = true
		case tok == "" || strings.EqualFold(tok, "keep-alive"):
		default:
			return close, false
		}
	}
	return close, true
}

// methodString returns m as a string, without allocating for the usual
// methods.
func methodString(m []byte) string {
	for _, name := range usualMethods {
		if string(m) == name {
			return name
		}
	}
	return string(m)
}

var usualMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions}

func headerIs(name []byte, canonical string) bool {
	return len(name) == len(canonical) && strings.EqualFold(string(name), canonical)
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd returns the set of ASCII letters, digits and the characters of
// extra.
func alnumAnd(extra string) (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// validValue reports whether a header value has no control character but
// tab, as net/http requires.
func validValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the characters of a host[:port], a bracketed IPv6
// address or a registered name; net/http judges anything else.
func validHost(h []byte) bool {
	for _, c := range h {
		if c >= 0x80 || !(tokenChar[c] || strings.IndexByte("[]:", c) >= 0) {
			return false
		}
	}
	return true
}

// leanTarget reports whether a request target is in origin form and would
// reach the target unchanged through ReverseProxy (which re-encodes the
// path and drops query parameters it cannot parse): unreserved characters,
// sub-delimiters, ':', '@', '/', well-formed %-escapes, and a query without
// ';'.
func leanTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' || bytes.HasPrefix(t, []byte("//")) {
		return false
	}
	inQuery := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		case c == '?':
			inQuery = true
		case c == ';':
			if inQuery {
				return false
			}
		case c >= 0x80 || !pathChar[c]:
			return false
		}
	}
	return true
}

var pathChar = alnumAnd("-._~!$&'()*+,=:@/")

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseAnswerHead accepts the plain answer (to a request other than HEAD)
// the lean path copies as it is buffered, without http.ReadResponse's
// header map and allocations: HTTP/1.1, a final status with a body (not
// 204 or 304), one Content-Length,
// no hop-by-hop field but Connection (close or keep-alive) and Keep-Alive,
// no Pragma (net/http adds Cache-Control for it), not an event stream (those
// are flushed as they arrive), well-formed fields. Anything else is read by
// http.ReadResponse and written by writeAnswer.
func parseAnswerHead(raw []byte) (a rawAnswer, ok bool) {
	line, rest, ok := nextLine(raw)
	if !ok || len(line) < len("HTTP/1.1 200") || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return a, false
	}
	code, ok := parseDigits(line[9:12])
	if !ok || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return a, false
	}
	a.code, a.length = int(code), -1
	for {
		var name, value []byte
		var end bool
		if name, value, rest, end, ok = nextField(rest); !ok {
			return a, false
		}
		if end {
			break
		}
		switch {
		case headerIs(name, "Content-Length"):
			n, ok := parseDigits(value)
			if !ok || a.length >= 0 {
				return a, false
			}
			a.length = n
		case headerIs(name, "Connection"):
			if a.close, ok = connectionOptions(value, a.close); !ok {
				return a, false
			}
		case headerIs(name, "Content-Type"):
			if len(value) >= len("text/event-stream") && strings.EqualFold(string(value[:len("text/event-stream")]), "text/event-stream") {
				return a, false
			}
		case headerIs(name, "Transfer-Encoding"), headerIs(name, "Trailer"), headerIs(name, "Te"), headerIs(name, "Upgrade"),
			headerIs(name, "Proxy-Connection"), headerIs(name, "Proxy-Authenticate"), headerIs(name, "Proxy-Authorization"),
			headerIs(name, "Pragma"):
			return a, false
		}
	}
	return a, a.length >= 0
}

// parseDigits parses a decimal number of at most 18 digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
