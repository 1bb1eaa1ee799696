package lb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// briefExample is the config document of the provider contract.
const briefExample = `{
  "generation": 3,
  "listen": "127.0.0.1:0",
  "admin": "127.0.0.1:0",
  "drainTimeout": "10s",
  "health": {"path": "/healthz", "interval": "1s", "timeout": "500ms",
             "healthyThreshold": 2, "unhealthyThreshold": 3},
  "groups": [
    {"name": "blue",  "weight": 100, "targets": [{"id": "hello-blue-0", "address": "127.0.0.1:41234"}]},
    {"name": "green", "weight": 0,   "targets": []}
  ]
}`

func TestLoadConfigContractExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(briefExample), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Generation != 3 || c.DrainTimeout.Std() != 10*time.Second || c.Health.Timeout.Std() != 500*time.Millisecond ||
		c.Health.UnhealthyThreshold != 3 || len(c.Groups) != 2 || c.Groups[0].Targets[0].Address != "127.0.0.1:41234" {
		t.Fatalf("decoded %+v", c)
	}
	// Durations write back as strings, so the document round-trips.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"drainTimeout":"10s"`) || !strings.Contains(string(b), `"timeout":"500ms"`) {
		t.Errorf("marshalled %s", b)
	}
	c2, err := ParseConfig("roundtrip", b)
	if err != nil || c2.Health != c.Health {
		t.Errorf("round trip: %v %+v", err, c2)
	}
}

func TestLoadConfigDefaultsAddresses(t *testing.T) {
	doc := strings.Replace(briefExample, `"listen": "127.0.0.1:0"`, `"listen": ":8080"`, 1)
	doc = strings.Replace(doc, `"admin": "127.0.0.1:0",`, ``, 1)
	c, err := ParseConfig("lb.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Admin != DefaultAddress {
		t.Errorf("listen %q admin %q", c.Listen, c.Admin)
	}
}

func TestProxyDefaultsAndRestartFields(t *testing.T) {
	doc := strings.Replace(briefExample, `"drainTimeout": "10s",`, `"drainTimeout": "10s", "proxy": {"requestTimeout": "5s"},`, 1)
	c, err := ParseConfig("lb.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultProxy
	want.RequestTimeout = Duration(5 * time.Second)
	if c.Proxy != want {
		t.Errorf("proxy = %+v, want the defaults but requestTimeout %+v", c.Proxy, want)
	}
	next := *c
	next.Proxy.RequestTimeout, next.Proxy.UpstreamHeaderTimeout, next.Proxy.ExposeTarget = Duration(time.Second), Duration(time.Second), true
	if f := c.RestartField(&next); f != "" {
		t.Errorf("per-request settings need a restart: %s", f)
	}
	next.Proxy.IdleTimeout = Duration(time.Second)
	if f := c.RestartField(&next); f != "proxy.idleTimeout" {
		t.Errorf("RestartField = %q, want proxy.idleTimeout", f)
	}
	next = *c
	next.Proxy.MaxHeaderBytes = 0 // the default, written or not
	if f := c.RestartField(&next); f != "" {
		t.Errorf("a default spelled as 0 needs a restart: %s", f)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"weight over 100", `"weight": 100`, `"weight": 101`, "lb.json: groups[0].weight: must be 0..100, got 101"},
		{"negative weight", `"weight": 0`, `"weight": -1`, "groups[1].weight: must be 0..100, got -1"},
		{"duplicate target", `"targets": []`, `"targets": [{"id": "hello-blue-0", "address": "127.0.0.1:1"}]`,
			`groups[1].targets[0].id: duplicate target id "hello-blue-0" (also groups[0].targets[0])`},
		{"duplicate group", `"name": "green"`, `"name": "blue"`, `groups[1].name: duplicate group name "blue"`},
		{"empty group name", `"name": "green"`, `"name": ""`, `groups[1].name: must not be empty`},
		{"empty target id", `"id": "hello-blue-0"`, `"id": ""`, `groups[0].targets[0].id: must not be empty`},
		{"bad address", `"127.0.0.1:41234"`, `"127.0.0.1"`, `groups[0].targets[0].address: "127.0.0.1" is not host:port`},
		{"port 0 target", `"127.0.0.1:41234"`, `"127.0.0.1:0"`, `groups[0].targets[0].address: "127.0.0.1:0": port must be a number 1..65535`},
		{"healthy threshold", `"healthyThreshold": 2`, `"healthyThreshold": 0`, "health.healthyThreshold: must be >= 1, got 0"},
		{"unhealthy threshold", `"unhealthyThreshold": 3`, `"unhealthyThreshold": 0`, "health.unhealthyThreshold: must be >= 1, got 0"},
		{"zero timeout", `"timeout": "500ms"`, `"timeout": "0s"`, "health.timeout: must be > 0, got 0s"},
		{"zero interval", `"interval": "1s"`, `"interval": "0s"`, "health.interval: must be > 0"},
		{"path", `"path": "/healthz"`, `"path": "healthz"`, `health.path: must start with /, got "healthz"`},
		{"negative drain", `"drainTimeout": "10s"`, `"drainTimeout": "-1s"`, "drainTimeout: must be >= 0"},
		{"bad duration", `"drainTimeout": "10s"`, `"drainTimeout": "10 seconds"`, `lb.json:5: duration "10 seconds": time: unknown unit`},
		{"number duration", `"drainTimeout": "10s"`, `"drainTimeout": 10`, `lb.json:5: duration must be a string such as "10s", got 10`},
		{"unknown field", `"generation": 3,`, `"generation": 3, "weights": 1,`, `lb.json:2: unknown field "weights"`},
		{"wrong type", `"weight": 100`, `"weight": "100"`, `lb.json:9: field groups.weight: expected int, got JSON string`},
		{"syntax", `"groups": [`, `"groups": [,`, `lb.json:8: invalid JSON`},
		{"listen", `"listen": "127.0.0.1:0"`, `"listen": "localhost"`, `listen: "localhost" is not host:port`},
		{"trailing data", "\n  ]\n}", "\n  ]\n} {}", "lb.json:12: unexpected data after the config object"},
		{"header bytes", `"drainTimeout": "10s",`, `"drainTimeout": "10s", "proxy": {"maxHeaderBytes": 2000000},`,
			"proxy.maxHeaderBytes: must be 0 (default) or 1..1048576, got 2000000"},
		{"negative timeout", `"drainTimeout": "10s",`, `"drainTimeout": "10s", "proxy": {"upstreamHeaderTimeout": "-1s"},`,
			"proxy.upstreamHeaderTimeout: must be >= 0 (0 is the default), got -1s"},
		{"proxy unknown field", `"drainTimeout": "10s",`, `"drainTimeout": "10s", "proxy": {"exposeTargets": true},`,
			`lb.json:5: unknown field "exposeTargets"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(briefExample, tt.from, tt.to, 1)
			if doc == briefExample {
				t.Fatalf("test edit %q did not apply", tt.from)
			}
			_, err := ParseConfig("lb.json", []byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
