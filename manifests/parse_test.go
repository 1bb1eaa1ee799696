package manifests_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/kilnhq/kiln/manifests"
)

// fakeCatalog is a Catalog held in memory.
type fakeCatalog map[string][]string

func (c fakeCatalog) Names() []string {
	var out []string
	for n := range c {
		out = append(out, n)
	}
	return out
}

func (c fakeCatalog) Versions(name string) []*version.Version {
	var out []*version.Version
	for _, s := range c[name] {
		out = append(out, version.Must(version.NewVersion(s)))
	}
	return out
}

// testCatalog lists versions out of order on purpose: resolution must not rely on order.
var testCatalog = fakeCatalog{
	"kiln-metrics": {"0.2.0", "1.0.0", "0.1.0", "0.3.0-beta.1"},
	"kiln-backup":  {"0.1.0"},
	"kiln-empty":   {},
}

// base is a valid manifest setting every field. Table cases edit it; line numbers in their
// expectations refer to it.
const base = `apiVersion: kiln/v1
service: hello
version: 1.4.0
app:
  main: ./cmd/hello
  args: ["--verbose", 3]
  env:
    GREETING: hi
components:
  kiln-metrics: ">= 0.1, < 1.0"
fleet:
  size: 2
  port: 8080
  health:
    path: /healthz
    interval: 2s
    timeout: 1s
    healthyThreshold: 2
    unhealthyThreshold: 3
rollout:
  strategy: blue-green
  progressDeadline: 10m
  drainTimeout: 15s
target:
  local:
    listen: 127.0.0.1:8080
images:
  keep: 5
`

// edit applies old→new replacements to base; each old must occur exactly once.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	return editDoc(t, base, pairs...)
}

// editDoc applies old→new replacements to doc; each old must occur exactly once.
func editDoc(t *testing.T, doc string, pairs ...string) string {
	t.Helper()
	s := doc
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("edit: %q occurs %d times in base", pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// acceptCase is a manifest that must decode, and what must hold of the result.
type acceptCase struct {
	name  string
	text  string
	check func(*manifests.Manifest) bool
}

// runAccepts runs the cases; show picks what a failure prints of the manifest.
func runAccepts(t *testing.T, show func(*manifests.Manifest) any, cases []acceptCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifests.Parse("kiln.yaml", []byte(tc.text), testCatalog)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tc.check(m) {
				t.Errorf("unexpected manifest: %+v", show(m))
			}
		})
	}
}

func TestParseLocalLB(t *testing.T) {
	doc := edit(t, "    listen: 127.0.0.1:8080\n", `    listen: 127.0.0.1:8080
    lb:
      maxHeaderBytes: 16384
      readHeaderTimeout: 5s
      idleTimeout: 2m
      requestTimeout: 90s
      upstreamHeaderTimeout: 45s
      exposeTarget: true
`)
	m, err := manifests.Parse("kiln.yaml", []byte(doc), testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	want := manifests.LocalLB{MaxHeaderBytes: 16384, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
		RequestTimeout: 90 * time.Second, UpstreamHeaderTimeout: 45 * time.Second, ExposeTarget: true}
	if got := m.Target.Local.LB; got != want {
		t.Errorf("target.local.lb = %+v, want %+v", got, want)
	}
	// A field left out stays zero: the target gives it kiln lb's default.
	doc = edit(t, "    listen: 127.0.0.1:8080\n", "    listen: 127.0.0.1:8080\n    lb:\n      requestTimeout: 5s\n")
	if m, err = manifests.Parse("kiln.yaml", []byte(doc), testCatalog); err != nil {
		t.Fatal(err)
	}
	if got := m.Target.Local.LB; got != (manifests.LocalLB{RequestTimeout: 5 * time.Second}) {
		t.Errorf("target.local.lb = %+v, want only requestTimeout 5s", got)
	}
}

func TestParseFullManifest(t *testing.T) {
	m, err := manifests.Parse("dir/kiln.yaml", []byte(base), testCatalog)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	absDir, _ := filepath.Abs("dir")
	want := &manifests.Manifest{
		APIVersion: "kiln/v1",
		Service:    "hello",
		Version:    version.Must(version.NewSemver("1.4.0")),
		App: manifests.App{
			Main: "./cmd/hello",
			Args: []string{"--verbose", "3"},
			Env:  map[string]string{"GREETING": "hi"},
			At:   manifests.Position{Line: 5, Column: 9},
		},
		Components: map[string]string{"kiln-metrics": ">= 0.1, < 1.0"},
		Resolved: []manifests.ResolvedComponent{{
			Name: "kiln-metrics", Constraint: ">= 0.1, < 1.0", Version: version.Must(version.NewVersion("0.2.0")),
		}},
		Fleet: manifests.Fleet{Size: 2, Port: 8080, Health: manifests.Health{
			Path: "/healthz", Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3,
		}},
		Rollout: manifests.Rollout{Strategy: "blue-green", ProgressDeadline: 10 * time.Minute, DrainTimeout: 15 * time.Second,
			Steps: []manifests.Step{{Weight: 100}}, ScaleDownDelay: 30 * time.Second},
		Target: manifests.Target{Local: &manifests.LocalTarget{Listen: "127.0.0.1:8080"}},
		Images: manifests.Images{Keep: 5},
		Dir:    absDir,
		File:   "dir/kiln.yaml",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse mismatch\n got: %+v\nwant: %+v", m, want)
	}
}

const minimal = `apiVersion: kiln/v1
service: tiny
version: "2"
app:
  binary: bin/tiny
fleet:
  size: 1
  port: 3000
  health:
    path: /
target:
  local: {}
`

func TestParseAppliesDefaults(t *testing.T) {
	m, err := manifests.Parse("/srv/tiny/kiln.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := m.Fleet.Health; got != (manifests.Health{Path: "/", Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}) {
		t.Errorf("health defaults = %+v", got)
	}
	if got := m.Rollout; !reflect.DeepEqual(got, manifests.Rollout{
		Strategy: "blue-green", ProgressDeadline: 10 * time.Minute, DrainTimeout: 15 * time.Second,
		Steps: []manifests.Step{{Weight: 100}}, ScaleDownDelay: 30 * time.Second, AbortScaleDownDelay: 0,
	}) {
		t.Errorf("rollout defaults = %+v", got)
	}
	if m.Target.Local == nil || m.Target.Local.Listen != "127.0.0.1:8080" || m.Target.AWS != nil {
		t.Errorf("target = %+v", m.Target)
	}
	if m.Images.Keep != 5 {
		t.Errorf("images.keep = %d, want 5", m.Images.Keep)
	}
	if m.Version.String() != "2.0.0" {
		t.Errorf("version = %s", m.Version)
	}
	if got := m.BinaryPath(); got != "/srv/tiny/bin/tiny" {
		t.Errorf("BinaryPath = %q", got)
	}
	if m.Components != nil || m.Resolved != nil {
		t.Errorf("components = %v, resolved = %v; want none", m.Components, m.Resolved)
	}
}

func TestParseAccepts(t *testing.T) {
	runAccepts(t, func(m *manifests.Manifest) any { return m }, []acceptCase{
		{"version as a number", edit(t, "version: 1.4.0", "version: 1.4"),
			func(m *manifests.Manifest) bool { return m.Version.String() == "1.4.0" }},
		{"pre-release version", edit(t, "version: 1.4.0", "version: 1.4.0-rc.1+build.5"),
			func(m *manifests.Manifest) bool { return m.Version.Prerelease() == "rc.1" }},
		{"40-character service", edit(t, "service: hello", "service: a"+strings.Repeat("b", 38)+"9"),
			func(m *manifests.Manifest) bool { return len(m.Service) == 40 }},
		{"main as an import path", edit(t, "main: ./cmd/hello", "main: example.com/hello/cmd/hello"),
			func(m *manifests.Manifest) bool { return m.App.Main == "example.com/hello/cmd/hello" }},
		{"main in a parent dir", edit(t, "main: ./cmd/hello", "main: ../../tools/./hello/"),
			func(m *manifests.Manifest) bool { return m.App.Main == "../../tools/./hello/" }},
		{"main as the manifest dir", edit(t, "main: ./cmd/hello", "main: ."),
			func(m *manifests.Manifest) bool { return m.App.Main == "." }},
		{"absolute binary", edit(t, "main: ./cmd/hello", "binary: /opt/hello/bin/hello"),
			func(m *manifests.Manifest) bool { return m.BinaryPath() == "/opt/hello/bin/hello" }},
		{"env values as written", edit(t, "GREETING: hi", "DEBUG: true\n    RATIO: 0.50"),
			func(m *manifests.Manifest) bool { return m.App.Env["DEBUG"] == "true" && m.App.Env["RATIO"] == "0.50" }},
		{"newest satisfying version", edit(t, `">= 0.1, < 1.0"`, `">= 0.1"`),
			func(m *manifests.Manifest) bool { return m.Resolved[0].Version.String() == "1.0.0" }},
		{"pre-release only when asked", edit(t, `">= 0.1, < 1.0"`, `"0.3.0-beta.1"`),
			func(m *manifests.Manifest) bool { return m.Resolved[0].Version.String() == "0.3.0-beta.1" }},
		{"resolved sorted by name", edit(t, `kiln-metrics: ">= 0.1, < 1.0"`, "kiln-metrics: \"~> 0.1\"\n  kiln-backup: 0.1"),
			func(m *manifests.Manifest) bool {
				return len(m.Resolved) == 2 && m.Resolved[0].Name == "kiln-backup" && m.Resolved[1].Version.String() == "0.2.0"
			}},
		{"listen port 0", edit(t, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0"),
			func(m *manifests.Manifest) bool { return m.Target.Local.Listen == "127.0.0.1:0" }},
		{"empty local target", edit(t, "  local:\n    listen: 127.0.0.1:8080", "  local:"),
			func(m *manifests.Manifest) bool { return m.Target.Local.Listen == manifests.DefaultListen }},
		{"drain timeout 0", edit(t, "drainTimeout: 15s", "drainTimeout: 0s"),
			func(m *manifests.Manifest) bool { return m.Rollout.DrainTimeout == 0 }},
		{"timeout equal to interval", edit(t, "timeout: 1s", "timeout: 2s"),
			func(m *manifests.Manifest) bool { return m.Fleet.Health.Timeout == 2*time.Second }},
		{"unused anchor", edit(t, "size: 2", "size: &n 2"),
			func(m *manifests.Manifest) bool { return m.Fleet.Size == 2 }},
		{"comments and document marker", "# kiln\n---\n" + base + "...\n",
			func(m *manifests.Manifest) bool { return m.Service == "hello" }},
	})
}

// TestParseRejects has one case per rule. want holds substrings of the error text (each error
// is "file:line:col: path: message"); the case must yield exactly len(want) errors.
func TestParseRejects(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string
	}{
		// Document level.
		{"empty file", "", []string{"kiln.yaml:1:1: (document): the file is empty"}},
		{"only comments", "# nothing yet\n", []string{"kiln.yaml:1:1: (document): the file is empty"}},
		{"null document", "~\n", []string{"kiln.yaml:1:1: (document): the document is empty (null)"}},
		{"list at top level", "- a\n- b\n", []string{"kiln.yaml:1:1: (document): the document must be a mapping of fields (apiVersion, service, version, app, fleet, target, ...), got a list"}},
		{"scalar at top level", "hello\n", []string{`kiln.yaml:1:1: (document): the document must be a mapping of fields (apiVersion, service, version, app, fleet, target, ...), got the string "hello"`}},
		{"two documents", base + "---\nservice: other\n", []string{"kiln.yaml:30:1: (document): a second YAML document starts here"}},
		{"syntax error", edit(t, "size: 2", "size: 2: 3"), []string{"kiln.yaml:12:1: (document): invalid YAML: mapping values are not allowed in this context"}},
		{"unknown anchor", edit(t, "size: 2", "size: *nope"), []string{"(document): invalid YAML: unknown anchor 'nope' referenced"}},

		// Structure.
		{"unknown top-level field", edit(t, "images:", "imagez:"),
			[]string{`kiln.yaml:27:1: imagez: unknown field "imagez" (did you mean "images"?); known fields: apiVersion, service, version, app, components, fleet, rollout, target, images`}},
		{"unknown nested field", edit(t, "interval: 2s", "intervall: 2s"),
			[]string{`kiln.yaml:16:5: fleet.health.intervall: unknown field "intervall" (did you mean "interval"?); known fields: path, interval, timeout, healthyThreshold, unhealthyThreshold`}},
		{"field in the wrong case", edit(t, "healthyThreshold: 2", "healthythreshold: 2"),
			[]string{`fleet.health.healthythreshold: unknown field "healthythreshold" (did you mean "healthyThreshold"?)`}},
		{"unknown field far from any", edit(t, "images:", "replicas: 3\nimages:"),
			[]string{`kiln.yaml:27:1: replicas: unknown field "replicas"; known fields:`}},
		{"duplicate key", edit(t, "service: hello\n", "service: hello\nservice: again\n"),
			[]string{`kiln.yaml:3:1: service: duplicate key "service" (first set on line 2)`}},
		{"alias", edit(t, "size: 2", "size: &n 2", "port: 8080", "port: *n"), []string{"kiln.yaml:13:9: fleet.port: aliases (*n) are not supported; write the value out"}},
		{"merge key", edit(t, "fleet:\n", "fleet:\n  <<: {size: 3}\n"), []string{"kiln.yaml:12:3: fleet: merge keys (<<) are not supported"}},
		{"complex key", edit(t, "images:\n", "? [a]\n: b\nimages:\n"), []string{"kiln.yaml:27:3: (document): keys must be plain names, got a list"}},
		{"section of the wrong type", edit(t, "fleet:\n  size: 2\n  port: 8080\n  health:\n    path: /healthz\n    interval: 2s\n    timeout: 1s\n    healthyThreshold: 2\n    unhealthyThreshold: 3\n", "fleet: big\n"),
			[]string{`kiln.yaml:11:8: fleet: expected a mapping, got the string "big"`}},
		{"custom tag", edit(t, "service: hello", "service: !name hello"), []string{"kiln.yaml:2:10: service: expected a string, got a value tagged !name"}},

		// apiVersion, service, version.
		{"missing apiVersion", edit(t, "apiVersion: kiln/v1\n", ""), []string{"kiln.yaml:1:1: apiVersion: required field is missing"}},
		{"other apiVersion", edit(t, "kiln/v1", "kiln/v2"), []string{`kiln.yaml:1:13: apiVersion: unsupported apiVersion "kiln/v2" (this kiln reads "kiln/v1")`}},
		{"apiVersion not a string", edit(t, "kiln/v1", "1"), []string{"kiln.yaml:1:13: apiVersion: expected a string, got the integer 1"}},
		{"missing service", edit(t, "service: hello\n", ""), []string{"kiln.yaml:1:1: service: required field is missing"}},
		{"empty service", edit(t, "service: hello", "service:"), []string{"kiln.yaml:2:9: service: expected a string, got nothing (null)"}},
		{"upper-case service", edit(t, "service: hello", "service: Hello"), []string{`kiln.yaml:2:10: service: invalid service name "Hello"`}},
		{"service ending in -", edit(t, "service: hello", "service: hello-"), []string{`service: invalid service name "hello-"`}},
		{"service starting with a digit", edit(t, "service: hello", "service: 1hello"), []string{`service: invalid service name "1hello"`}},
		{"41-character service", edit(t, "service: hello", "service: "+strings.Repeat("a", 41)), []string{"service: invalid service name"}},
		{"garbage version", edit(t, "version: 1.4.0", "version: banana"), []string{`kiln.yaml:3:10: version: invalid version "banana"`}},
		{"version with spaces", edit(t, "version: 1.4.0", "version: 1.4.0 beta"), []string{`version: invalid version "1.4.0 beta"`}},
		{"missing version", edit(t, "version: 1.4.0\n", ""), []string{"kiln.yaml:1:1: version: required field is missing"}},

		// app.
		{"missing app", edit(t, "app:\n  main: ./cmd/hello\n  args: [\"--verbose\", 3]\n  env:\n    GREETING: hi\n", ""), []string{"kiln.yaml:1:1: app: required field is missing"}},
		{"main and binary", edit(t, "main: ./cmd/hello", "main: ./cmd/hello\n  binary: ./bin/hello"),
			[]string{"kiln.yaml:6:3: app: set only one of main (a Go package built at bake time) or binary (a prebuilt executable)"}},
		{"neither main nor binary", edit(t, "  main: ./cmd/hello\n", ""), []string{"kiln.yaml:5:3: app: one of main (a Go package built at bake time) or binary (a prebuilt executable) is required"}},
		{"absolute main", edit(t, "main: ./cmd/hello", "main: /src/hello"), []string{`kiln.yaml:5:9: app.main: "/src/hello" is absolute`}},
		{"empty main", edit(t, "main: ./cmd/hello", `main: ""`), []string{"kiln.yaml:5:9: app.main: must not be empty"}},
		{"main with spaces", edit(t, "main: ./cmd/hello", `main: "my package"`), []string{`app.main: invalid package path "my package"`}},
		{"main with an empty element", edit(t, "main: ./cmd/hello", "main: ./cmd//hello"), []string{`app.main: invalid package path "./cmd//hello"`}},
		{"import path with ..", edit(t, "main: ./cmd/hello", "main: example.com/../hello"), []string{`app.main: invalid package path "example.com/../hello"`}},
		{"import path starting with a dot", edit(t, "main: ./cmd/hello", "main: .hidden/hello"), []string{`app.main: invalid package path ".hidden/hello"`}},
		{"empty binary", edit(t, "main: ./cmd/hello", `binary: ""`), []string{`kiln.yaml:5:11: app.binary: invalid binary path ""`}},
		{"args not a list", edit(t, `args: ["--verbose", 3]`, "args: --verbose"), []string{`kiln.yaml:6:9: app.args: expected a list, got the string "--verbose"`}},
		{"arg not a string", edit(t, `args: ["--verbose", 3]`, "args: [[a]]"), []string{"kiln.yaml:6:10: app.args[0]: expected a string, got a list"}},
		{"null arg", edit(t, `args: ["--verbose", 3]`, "args: [a, null]"), []string{"kiln.yaml:6:13: app.args[1]: expected a string, got nothing (null)"}},
		{"env not a mapping", edit(t, "  env:\n    GREETING: hi", "  env: [GREETING]"), []string{"kiln.yaml:7:8: app.env: expected a mapping, got a list"}},
		{"lower-case env key", edit(t, "GREETING: hi", "greeting: hi"), []string{`kiln.yaml:8:5: app.env.greeting: invalid variable name "greeting"`}},
		{"env key with a digit first", edit(t, "GREETING: hi", "1X: hi"), []string{`app.env.1X: invalid variable name "1X"`}},
		{"env PORT", edit(t, "GREETING: hi", "PORT: 80"), []string{"kiln.yaml:8:5: app.env.PORT: PORT is set by kiln and reserved"}},
		{"env KILN_", edit(t, "GREETING: hi", "KILN_SERVICE: x"), []string{"kiln.yaml:8:5: app.env.KILN_SERVICE: KILN_SERVICE is set by kiln and reserved"}},
		{"env value a mapping", edit(t, "GREETING: hi", "GREETING: {a: b}"), []string{"kiln.yaml:8:15: app.env.GREETING: expected a string, got a mapping"}},
		{"unknown app field", edit(t, "  env:\n", "  environment: {}\n  env:\n"), []string{`kiln.yaml:7:3: app.environment: unknown field "environment"; known fields: main, binary, args, env`}},

		// components.
		{"components not a mapping", edit(t, `  kiln-metrics: ">= 0.1, < 1.0"`, "  - kiln-metrics"), []string{"kiln.yaml:10:3: components: expected a mapping, got a list"}},
		{"bad constraint", edit(t, `">= 0.1, < 1.0"`, `">= banana"`), []string{`kiln.yaml:10:17: components.kiln-metrics: invalid version constraint ">= banana"`}},
		{"unknown component", edit(t, "kiln-metrics:", "kiln-metricz:"),
			[]string{`kiln.yaml:10:3: components.kiln-metricz: unknown component "kiln-metricz" (did you mean "kiln-metrics"?); available: kiln-backup, kiln-empty, kiln-metrics`}},
		{"nothing satisfies", edit(t, `">= 0.1, < 1.0"`, `">= 2.0"`),
			[]string{`kiln.yaml:10:17: components.kiln-metrics: no version satisfies ">= 2.0" (available: 0.1.0, 0.2.0, 0.3.0-beta.1, 1.0.0)`}},
		{"component without versions", edit(t, "kiln-metrics:", "kiln-empty:"), []string{`kiln.yaml:10:15: components.kiln-empty: no version satisfies ">= 0.1, < 1.0" (available: none)`}},
		{"constraint not a string", edit(t, `">= 0.1, < 1.0"`, "[1]"), []string{"kiln.yaml:10:17: components.kiln-metrics: expected a string, got a list"}},

		// fleet.
		{"missing fleet", edit(t, "fleet:\n  size: 2\n  port: 8080\n  health:\n    path: /healthz\n    interval: 2s\n    timeout: 1s\n    healthyThreshold: 2\n    unhealthyThreshold: 3\n", ""),
			[]string{"kiln.yaml:1:1: fleet: required field is missing"}},
		{"size 0", edit(t, "size: 2", "size: 0"), []string{"kiln.yaml:12:9: fleet.size: must be between 1 and 100, got 0"}},
		{"size 101", edit(t, "size: 2", "size: 101"), []string{"fleet.size: must be between 1 and 100, got 101"}},
		{"size huge", edit(t, "size: 2", "size: 99999999999999999999"), []string{"fleet.size: expected an integer, got the number 99999999999999999999"}},
		{"size beyond int32", edit(t, "size: 2", "size: 9999999999"), []string{"fleet.size: must be between 1 and 100, got 9999999999"}},
		{"size tagged but not a number", edit(t, "size: 2", "size: !!int two"), []string{`kiln.yaml:12:9: fleet.size: invalid integer "two"`}},
		{"size as text", edit(t, "size: 2", "size: two"), []string{`kiln.yaml:12:9: fleet.size: expected an integer, got the string "two"`}},
		{"size fractional", edit(t, "size: 2", "size: 2.5"), []string{"fleet.size: expected an integer, got the number 2.5"}},
		{"missing size", edit(t, "  size: 2\n", ""), []string{"kiln.yaml:12:3: fleet.size: required field is missing"}},
		{"port 0", edit(t, "port: 8080", "port: 0"), []string{"kiln.yaml:13:9: fleet.port: must be between 1 and 65535, got 0"}},
		{"port 65536", edit(t, "port: 8080", "port: 65536"), []string{"fleet.port: must be between 1 and 65535, got 65536"}},
		{"missing health", edit(t, "  health:\n    path: /healthz\n    interval: 2s\n    timeout: 1s\n    healthyThreshold: 2\n    unhealthyThreshold: 3\n", ""),
			[]string{"kiln.yaml:12:3: fleet.health: required field is missing"}},
		{"missing health path", edit(t, "    path: /healthz\n", ""), []string{"kiln.yaml:15:5: fleet.health.path: required field is missing"}},
		{"relative health path", edit(t, "path: /healthz", "path: healthz"), []string{`kiln.yaml:15:11: fleet.health.path: invalid path "healthz"`}},
		{"health path with a space", edit(t, "path: /healthz", `path: "/health z"`), []string{`fleet.health.path: invalid path "/health z"`}},
		{"bad interval", edit(t, "interval: 2s", "interval: fast"), []string{`kiln.yaml:16:15: fleet.health.interval: invalid duration "fast"`}},
		{"interval without unit", edit(t, "interval: 2s", "interval: 2"), []string{`fleet.health.interval: invalid duration "2"`}},
		{"zero interval", edit(t, "interval: 2s", "interval: 0s"), []string{"kiln.yaml:16:15: fleet.health.interval: must be greater than 0, got 0s"}},
		{"negative timeout", edit(t, "timeout: 1s", "timeout: -1s"), []string{"kiln.yaml:17:14: fleet.health.timeout: must be greater than 0, got -1s"}},
		{"timeout over interval", edit(t, "timeout: 1s", "timeout: 3s"), []string{"kiln.yaml:17:14: fleet.health.timeout: timeout 3s is longer than interval 2s"}},
		{"default timeout over interval", edit(t, "    timeout: 1s\n", "", "interval: 2s", "interval: 500ms"),
			[]string{"kiln.yaml:16:15: fleet.health.timeout: timeout 1s is longer than interval 500ms"}},
		{"healthyThreshold 0", edit(t, "healthyThreshold: 2", "healthyThreshold: 0"), []string{"kiln.yaml:18:23: fleet.health.healthyThreshold: must be between 1 and 10, got 0"}},
		{"unhealthyThreshold 11", edit(t, "unhealthyThreshold: 3", "unhealthyThreshold: 11"), []string{"kiln.yaml:19:25: fleet.health.unhealthyThreshold: must be between 1 and 10, got 11"}},

		// rollout.
		{"other strategy", edit(t, "strategy: blue-green", "strategy: canary"), []string{`kiln.yaml:21:13: rollout.strategy: unsupported strategy "canary" (only "blue-green" is available)`}},
		{"bad deadline", edit(t, "progressDeadline: 10m", "progressDeadline: soon"), []string{`kiln.yaml:22:21: rollout.progressDeadline: invalid duration "soon"`}},
		{"zero deadline", edit(t, "progressDeadline: 10m", "progressDeadline: 0s"), []string{"rollout.progressDeadline: must be greater than 0"}},
		{"deadline shorter than health", edit(t, "progressDeadline: 10m", "progressDeadline: 3s"),
			[]string{"kiln.yaml:22:21: rollout.progressDeadline: 3s is shorter than the 4s an instance needs to become healthy (fleet.health.interval 2s x healthyThreshold 2)"}},
		{"default deadline shorter than health", edit(t, "    interval: 2s\n", "    interval: 6m\n", "  progressDeadline: 10m\n", ""),
			[]string{"kiln.yaml:16:15: fleet.health.interval: an instance needs 12m0s (interval x healthyThreshold 2) to become healthy, longer than the default rollout.progressDeadline 10m0s; set rollout.progressDeadline"}},
		{"negative drain", edit(t, "drainTimeout: 15s", "drainTimeout: -1s"), []string{"kiln.yaml:23:17: rollout.drainTimeout: must not be negative, got -1s"}},
		{"rollout a list", edit(t, "  strategy: blue-green\n  progressDeadline: 10m\n  drainTimeout: 15s\n", "  - blue-green\n"), []string{"kiln.yaml:21:3: rollout: expected a mapping, got a list"}},

		// target.
		{"missing target", edit(t, "target:\n  local:\n    listen: 127.0.0.1:8080\n", ""), []string{"kiln.yaml:1:1: target: required field is missing"}},
		{"empty target", edit(t, "target:\n  local:\n    listen: 127.0.0.1:8080\n", "target: {}\n"), []string{"kiln.yaml:24:9: target: one target is required: local (this machine) or aws (EC2 behind an Application Load Balancer)"}},
		// Both: the aws settings are still checked, and the local target's fleet rules apply.
		{"both targets", edit(t, "  local:\n", "  aws: {region: eu-west-1, vpc: vpc-0123abcd}\n  local:\n"),
			[]string{"kiln.yaml:25:3: target: set only one of local or aws"}},
		{"listen without port", edit(t, "listen: 127.0.0.1:8080", "listen: nope"), []string{`kiln.yaml:26:13: target.local.listen: invalid address "nope"`}},
		{"listen without host", edit(t, "listen: 127.0.0.1:8080", `listen: ":8080"`), []string{`target.local.listen: address ":8080" has no host`}},
		{"listen on a name", edit(t, "listen: 127.0.0.1:8080", "listen: example.com:80"), []string{`target.local.listen: host "example.com" must be an IP address or localhost`}},
		{"listen port too big", edit(t, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:99999"), []string{`target.local.listen: port "99999" must be a number from 0 to 65535`}},
		{"unknown local field", edit(t, "listen: 127.0.0.1:8080", "lisen: 127.0.0.1:8080"), []string{`kiln.yaml:26:5: target.local.lisen: unknown field "lisen" (did you mean "listen"?); known fields: listen`}},

		// images.
		{"keep 1", edit(t, "keep: 5", "keep: 1"), []string{"kiln.yaml:28:9: images.keep: must be at least 2, got 1"}},
		{"keep as text", edit(t, "keep: 5", `keep: "5"`), []string{`images.keep: expected an integer, got the string "5"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifests.Parse("kiln.yaml", []byte(tc.text), testCatalog)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors %q", m, tc.want)
			}
			if m != nil {
				t.Errorf("Parse returned a manifest with its error")
			}
			var errs manifests.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want manifests.Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestParseReportsEveryErrorSorted(t *testing.T) {
	text := edit(t,
		"kiln/v1", "kiln/v9",
		"size: 2", "size: 0",
		"service: hello", "service: Hello",
		"interval: 2s", "interval: fast",
		"keep: 5", "keep: 1",
		"GREETING: hi", "PORT: 1",
	)
	_, err := manifests.Parse("kiln.yaml", []byte(text), testCatalog)
	var errs manifests.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not manifests.Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Path)
	}
	want := []string{"apiVersion", "service", "app.env.PORT", "fleet.size", "fleet.health.interval", "images.keep"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths = %q, want %q\n%v", got, want, err)
	}
	if n := strings.Count(err.Error(), "\n"); n != len(want)-1 {
		t.Errorf("Error() has %d lines, want one per problem:\n%v", n+1, err)
	}

	var first *manifests.Error
	if !errors.As(err, &first) {
		t.Fatal("errors.As(*manifests.Error) failed")
	}
	if first.File != "kiln.yaml" || first.Line != 1 || first.Column != 13 || first.Path != "apiVersion" {
		t.Errorf("first error = %+v", first)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kiln.yaml")
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifests.Load(path, testCatalog)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if m.Dir != dir || m.File != path {
		t.Errorf("Dir, File = %q, %q; want %q, %q", m.Dir, m.File, dir, path)
	}

	if _, err := manifests.Load(filepath.Join(dir, "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(edit(t, "size: 2", "size: -1")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = manifests.Load(bad, testCatalog)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":12:9: fleet.size:") {
		t.Errorf("Load(bad) = %v, want an error at %s:12:9", err, bad)
	}
}

func TestStarterValidates(t *testing.T) {
	for _, service := range []string{"hello", "My_App", "", "9lives"} {
		data := manifests.Starter(service)
		m, err := manifests.Parse("kiln.yaml", data, nil)
		if err != nil {
			t.Fatalf("Starter(%q) does not validate:\n%v\n%s", service, err, data)
		}
		if m.Service != manifests.ServiceName(service) {
			t.Errorf("Starter(%q) service = %q", service, m.Service)
		}
	}
}

func TestServiceName(t *testing.T) {
	cases := map[string]string{
		"hello":                   "hello",
		"My_App":                  "my-app",
		"  spaced  out ":          "spaced-out",
		"9lives":                  "app-9lives",
		"":                        "app",
		"---":                     "app",
		"Ünïcode":                 "n-code",
		strings.Repeat("ab-", 30): "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-a",
	}
	for in, want := range cases {
		got := manifests.ServiceName(in)
		if got != want {
			t.Errorf("ServiceName(%q) = %q, want %q", in, got, want)
		}
		if err := manifests.CheckServiceName(got); err != nil {
			t.Errorf("ServiceName(%q) = %q is invalid: %v", in, got, err)
		}
	}
}

func TestParseRejectsHugeFile(t *testing.T) {
	data := []byte(base + "# " + strings.Repeat("x", 256<<10) + "\n")
	_, err := manifests.Parse("kiln.yaml", data, testCatalog)
	if err == nil || !strings.Contains(err.Error(), "kiln.yaml:1:1: (document): the file is") {
		t.Errorf("Parse(huge) = %v", err)
	}
}
