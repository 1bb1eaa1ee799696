package components

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kilnhq/kiln/internal/strictyaml"
)

const validDef = `name: kiln-metrics
version: 0.1.0
binary: kiln-metrics
description: Serves metrics.
unit:
  mode: service
  schedule: ""
  args: ["--listen", "127.0.0.1:${KILN_PORT_METRICS}"]
  env: {}
  ports: [metrics]
  restart: always
policy: policy.json
`

const validPolicy = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}]}`

func parseTest(text string) (*Definition, error) {
	return parseDefinition("component.yaml", []byte(text), source{
		dirName:    "kiln-metrics",
		readPolicy: func(string) ([]byte, error) { return []byte(validPolicy), nil },
	})
}

func replaceOnce(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.Count(s, pairs[i]) != 1 {
			t.Fatalf("%q does not occur exactly once", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestParseDefinition(t *testing.T) {
	// A '$' that does not start ${ is literal text, as kiln boot treats it.
	d, err := parseTest(replaceOnce(t, validDef, `["--listen",`, `["--cost=$5", "$HOME", "--listen",`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "kiln-metrics" || d.Version.String() != "0.1.0" || d.Unit.Mode != ModeService || d.Unit.Restart != RestartAlways || string(d.policy) != validPolicy ||
		len(d.Unit.Args) != 4 || d.Unit.Args[0] != "--cost=$5" {
		t.Errorf("definition = %+v", d)
	}
}

func TestParseDefinitionRejects(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"empty", "", []string{"component.yaml:1:1: (document): the file is empty; it must be a mapping of fields (name, version, binary, description, settings, optionalSettings, unit, policy)"}},
		{"unknown field", replaceOnce(t, validDef, "policy:", "polcy: x\npolicy:"), []string{`component.yaml:12:1: polcy: unknown field "polcy" (did you mean "policy"?)`}},
		{"missing unit", replaceOnce(t, validDef, "unit:\n  mode: service\n  schedule: \"\"\n  args: [\"--listen\", \"127.0.0.1:${KILN_PORT_METRICS}\"]\n  env: {}\n  ports: [metrics]\n  restart: always\n", ""),
			[]string{"component.yaml:1:1: unit: required field is missing"}},
		{"bad name", replaceOnce(t, validDef, "name: kiln-metrics", "name: Kiln"), []string{`component.yaml:1:7: name: invalid component name "Kiln"`}},
		{"bad version", replaceOnce(t, validDef, "version: 0.1.0", "version: latest"), []string{`component.yaml:2:10: version: invalid version "latest"`}},
		{"binary with a slash", replaceOnce(t, validDef, "binary: kiln-metrics", "binary: bin/kiln-metrics"), []string{`component.yaml:3:9: binary: invalid binary name "bin/kiln-metrics"`}},
		{"two-line description", replaceOnce(t, validDef, "description: Serves metrics.", "description: \"a\\nb\""), []string{"component.yaml:4:14: description: must be one non-empty line"}},
		{"unknown mode", replaceOnce(t, validDef, "mode: service", "mode: daemon"), []string{`component.yaml:6:9: unit.mode: unknown mode "daemon" (use service or schedule)`}},
		{"schedule on a service", replaceOnce(t, validDef, `schedule: ""`, "schedule: 1h"), []string{"component.yaml:7:13: unit.schedule: a service unit runs continuously"}},
		{"schedule mode without period", replaceOnce(t, validDef, "mode: service", "mode: schedule"), []string{"component.yaml:7:13: unit.schedule: a schedule unit needs a period"}},
		{"schedule mode, schedule absent", replaceOnce(t, validDef, "mode: service", "mode: schedule", "  schedule: \"\"\n", ""), []string{"component.yaml:6:3: unit.schedule: a schedule unit needs a period"}},
		{"bad period", replaceOnce(t, validDef, "mode: service", "mode: schedule", `schedule: ""`, "schedule: daily"), []string{`component.yaml:7:13: unit.schedule: invalid duration "daily"`}},
		{"negative period", replaceOnce(t, validDef, "mode: service", "mode: schedule", `schedule: ""`, "schedule: -1h"), []string{"unit.schedule: must be greater than 0, got -1h0m0s"}},
		{"unknown variable", replaceOnce(t, validDef, "${KILN_PORT_METRICS}", "${METRICS_PORT}"), []string{"component.yaml:8:22: unit.args[1]: unknown variable ${METRICS_PORT}"}},
		{"reference not a variable name", replaceOnce(t, validDef, "${KILN_PORT_METRICS}", "${port}"), []string{`unit.args[1]: invalid variable reference "${port}"`}},
		{"unclosed reference", replaceOnce(t, validDef, "${KILN_PORT_METRICS}", "${KILN_PORT_METRICS"), []string{"unit.args[1]: unclosed ${"}},
		{"reserved env", replaceOnce(t, validDef, "env: {}", "env: {KILN_SERVICE: x}"), []string{"component.yaml:9:9: unit.env.KILN_SERVICE: KILN_SERVICE is set by kiln boot and reserved"}},
		{"env refers to env", replaceOnce(t, validDef, "env: {}", "env: {A: x, B: \"${A}\"}"), []string{"unit.env.B: unknown variable ${A}"}},
		{"bad port name", replaceOnce(t, validDef, "ports: [metrics]", "ports: [Metrics]"), []string{`component.yaml:10:11: unit.ports[0]: invalid port name "Metrics"`}},
		{"duplicate port", replaceOnce(t, validDef, "ports: [metrics]", "ports: [metrics, metrics]"), []string{`component.yaml:10:20: unit.ports[1]: port "metrics" is listed twice`}},
		{"unknown restart", replaceOnce(t, validDef, "restart: always", "restart: sometimes"), []string{`component.yaml:11:12: unit.restart: unknown restart policy "sometimes"`}},
		{"policy path", replaceOnce(t, validDef, "policy: policy.json", "policy: ../policy.json"), []string{`component.yaml:12:9: policy: invalid policy file name "../policy.json"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTest(tc.text)
			var errs strictyaml.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

// TestLoadFS exercises the builtin loader on a stand-in for the embedded directory: a README
// beside one component directory, as components/builtin looks once components are added.
func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"builtin/README.md":                   {Data: []byte("# builtins\n")},
		"builtin/kiln-metrics/component.yaml": {Data: []byte(validDef)},
		"builtin/kiln-metrics/policy.json":    {Data: []byte(validPolicy)},
	}
	c, err := loadFS(fsys, "builtin", "components/builtin")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := c.Lookup("kiln-metrics", versionOf(t, "0.1.0"))
	if !ok || d.Dir != "" {
		t.Fatalf("Lookup = %+v, %v", d, ok)
	}

	fsys["builtin/kiln-backup/component.yaml"] = &fstest.MapFile{Data: []byte(validDef)}
	fsys["builtin/empty/.keep"] = &fstest.MapFile{}
	_, err = loadFS(fsys, "builtin", "components/builtin")
	for _, want := range []string{
		`components/builtin/kiln-backup/component.yaml:1:7: name: name "kiln-metrics" does not match its directory "kiln-backup"`,
		`components/builtin/kiln-backup/component.yaml:12:9: policy: cannot read policy.json beside component.yaml`,
		"builtin component empty: open builtin/empty/component.yaml: file does not exist",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant it to contain %q", err, want)
		}
	}
}

func TestSettingsMayBeReferencedAndAreChecked(t *testing.T) {
	withSettings := replaceOnce(t, validDef, "unit:", "settings: [TABLE, STORE]\nunit:")
	d, err := parseTest(replaceOnce(t, withSettings, `["--listen",`, `["--table", "${TABLE}", "--listen",`))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Settings) != 2 || d.Settings[0] != "TABLE" || d.Unit.Args[1] != "${TABLE}" {
		t.Fatalf("definition = %+v", d)
	}
	for _, bad := range []struct{ settings, want string }{
		{"[TABLE, TABLE]", "setting TABLE is listed twice"},
		{"[PORT]", "PORT is set by kiln boot"},
		{"[lower]", `invalid variable name "lower"`},
	} {
		_, err := parseTest(replaceOnce(t, validDef, "unit:", "settings: "+bad.settings+"\nunit:"))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("settings %s: %v, want %q", bad.settings, err, bad.want)
		}
	}
	if _, err := parseTest(replaceOnce(t, validDef, `["--listen",`, `["--table", "${TABLE}", "--listen",`)); err == nil || !strings.Contains(err.Error(), "unknown variable ${TABLE}") {
		t.Errorf("a reference to an undeclared setting: %v", err)
	}
	// Optional settings may be referenced too, and are not required settings.
	withOptional := replaceOnce(t, withSettings, "unit:", "optionalSettings: [ENDPOINT]\nunit:")
	d, err = parseTest(replaceOnce(t, withOptional, `["--listen",`, `["--endpoint", "${ENDPOINT}", "--listen",`))
	if err != nil || len(d.Settings) != 2 || len(d.OptionalSettings) != 1 || d.OptionalSettings[0] != "ENDPOINT" {
		t.Fatalf("optional settings: %+v, %v", d, err)
	}
	if _, err := parseTest(replaceOnce(t, withSettings, "unit:", "optionalSettings: [STORE]\nunit:")); err == nil || !strings.Contains(err.Error(), "setting STORE is listed twice") {
		t.Errorf("a setting both required and optional: %v", err)
	}
}
