package lb

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzAdmin drives the admin API with any method, path and body, after
// writing any config document for POST /reload to read. Whatever arrives,
// the lb answers with a status of its API, a JSON answer where it promises
// one, and a routing table that is either the old one or the new valid one.
func FuzzAdmin(f *testing.F) {
	f.Add("POST", "/reload", []byte(briefExample), []byte(nil))
	f.Add("GET", "/status", []byte(briefExample), []byte(nil))
	f.Add("GET", "/healthz", []byte("{}"), []byte("x"))
	f.Add("POST", "/reload", []byte(`{"generation": 4, "listen": "127.0.0.1:0", "proxy": {"maxHeaderBytes": -1}}`), []byte("{}"))
	f.Add("POST", "/reload", []byte(`{"generation": 5, "health": {"path": "/", "interval": "1s", "timeout": "1s", "healthyThreshold": 1, "unhealthyThreshold": 1}, "groups": [{"name": "a", "weight": 100, "targets": [{"id": "a", "address": "h:1"}]}]}`), []byte(nil))
	f.Add("DELETE", "/reload/../status", []byte("[]"), []byte(nil))
	f.Fuzz(func(t *testing.T, method, path string, config, body []byte) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?%\x00\x7f") {
			return // not an HTTP request line a client could send
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return // nor is this (a control character, say): net/http refuses it before any handler
		}
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "lb.json")
		if err := os.WriteFile(cfgPath, []byte(briefExample), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := New(cfgPath, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
			t.Fatal(err)
		}
		before := s.Status()
		w := httptest.NewRecorder()
		s.adminHandler().ServeHTTP(w, httptest.NewRequest(method, path, bytes.NewReader(body)))

		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		default:
			t.Fatalf("%s %s answered %d: %s", method, path, w.Code, w.Body)
		}
		if w.Header().Get("Content-Type") == "application/json" && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: invalid JSON answer %q", method, path, w.Body)
		}
		after := s.Status()
		want, err := ParseConfig("lb.json", config)
		switch {
		case method == "POST" && path == "/reload" && w.Code == http.StatusOK:
			if err != nil {
				t.Fatalf("reload accepted a config ParseConfig refuses: %v", err)
			}
			if after.Generation != want.Generation || len(after.Groups) != len(want.Groups) {
				t.Fatalf("after reload the lb runs generation %d with %d groups, the file has %d with %d",
					after.Generation, len(after.Groups), want.Generation, len(want.Groups))
			}
		case after.Generation != before.Generation || len(after.Groups) != len(before.Groups):
			t.Fatalf("%s %s answered %d but changed the table: %+v -> %+v", method, path, w.Code, before, after)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
