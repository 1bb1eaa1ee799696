package components_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/manifests"
)

func v(s string) *version.Version { return version.Must(version.NewVersion(s)) }

func versions(vs []*version.Version) []string {
	var out []string
	for _, x := range vs {
		out = append(out, x.String())
	}
	return out
}

func TestLoadDir(t *testing.T) {
	c, err := components.LoadDir(filepath.Join("testdata", "catalog"))
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"kiln-backup", "kiln-metrics"}) {
		t.Errorf("Names = %q", got)
	}
	if got := versions(c.Versions("kiln-metrics")); !reflect.DeepEqual(got, []string{"0.1.0", "0.2.0", "1.0.0-beta.1"}) {
		t.Errorf("Versions = %q", got)
	}
	if c.Versions("nope") != nil {
		t.Error("Versions of an unknown component is not nil")
	}

	d, ok := c.Lookup("kiln-backup", v("0.1"))
	if !ok {
		t.Fatal("Lookup(kiln-backup 0.1) failed")
	}
	abs, _ := filepath.Abs(filepath.Join("testdata", "catalog", "kiln-backup", "0.1.0"))
	want := components.Unit{
		Mode:     components.ModeSchedule,
		Schedule: 24 * time.Hour,
		Args:     []string{"--state", "${KILN_DATA_DIR}/backup", "--bucket", "${BUCKET}", "--price", "$5"},
		Env:      map[string]string{"BUCKET": "kiln-backups", "PREFIX": "${KILN_SERVICE}/${KILN_INSTANCE}"},
		Ports:    []string{},
		Restart:  components.RestartOnFailure,
	}
	if d.Name != "kiln-backup" || d.Binary != "kiln-backup" || d.Policy != "policy.json" || d.Dir != abs ||
		d.Description != "Backs up the service's DynamoDB tables to S3." || !reflect.DeepEqual(d.Unit, want) {
		t.Errorf("definition = %+v\nunit = %+v", d, d.Unit)
	}
	if got := d.BinaryPath(); got != filepath.Join(abs, "kiln-backup") {
		t.Errorf("BinaryPath = %q", got)
	}
	policy, err := c.Policy(d)
	if err != nil || !strings.Contains(string(policy), "dynamodb:Scan") {
		t.Errorf("Policy = %q, %v", policy, err)
	}
	if _, ok := c.Lookup("kiln-backup", v("0.2.0")); ok {
		t.Error("Lookup of a missing version succeeded")
	}

	m, _ := c.Lookup("kiln-metrics", v("0.2.0"))
	if m.Unit.Restart != components.RestartAlways || !reflect.DeepEqual(m.Unit.Ports, []string{"metrics"}) || m.Unit.Schedule != 0 {
		t.Errorf("kiln-metrics unit = %+v", m.Unit)
	}
}

// TestManifestResolvesAgainstCatalog is the path `kiln validate` and bake take: a manifest's
// constraints resolved against a real catalog, then the definitions and policies fetched.
func TestManifestResolvesAgainstCatalog(t *testing.T) {
	c, err := components.LoadDir(filepath.Join("testdata", "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(manifests.Starter("hello")), "# components:\n#   kiln-metrics: \">= 0.1, < 1.0\"\n#   kiln-backup: \">= 0.1, < 1.0\"",
		"components:\n  kiln-metrics: \">= 0.1\"\n  kiln-backup: \"~> 0.1\"", 1)
	m, err := manifests.Parse("kiln.yaml", []byte(text), c)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	defs, err := c.Resolve(m.Resolved)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, d.Name+"@"+d.Version.String())
		if p, err := c.Policy(d); err != nil || len(p) == 0 {
			t.Errorf("Policy(%s) = %q, %v", d.Name, p, err)
		}
	}
	// 1.0.0-beta.1 is newer but a pre-release: ">= 0.1" does not select it.
	if want := []string{"kiln-backup@0.1.0", "kiln-metrics@0.2.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("resolved %q, want %q", got, want)
	}

	_, err = manifests.Parse("kiln.yaml", []byte(strings.Replace(text, `">= 0.1"`, `">= 2"`, 1)), c)
	if err == nil || !strings.Contains(err.Error(), `components.kiln-metrics: no version satisfies ">= 2" (available: 0.1.0, 0.2.0, 1.0.0-beta.1)`) {
		t.Errorf("Parse with >= 2: %v", err)
	}
}

func TestMerge(t *testing.T) {
	base, err := components.LoadDir(filepath.Join("testdata", "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeComponent(t, dir, "kiln-metrics", "0.2.0", strings.Replace(metricsYAML("0.2.0"), "one line", "the override", 1))
	writeComponent(t, dir, "kiln-metrics", "0.3.0", metricsYAML("0.3.0"))
	over, err := components.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	merged := base.Merge(over)
	if got := versions(merged.Versions("kiln-metrics")); !reflect.DeepEqual(got, []string{"0.1.0", "0.2.0", "0.3.0", "1.0.0-beta.1"}) {
		t.Errorf("merged versions = %q", got)
	}
	if d, _ := merged.Lookup("kiln-metrics", v("0.2.0")); d.Description != "the override" {
		t.Errorf("0.2.0 description = %q, want the override's", d.Description)
	}
	if got := versions(base.Versions("kiln-metrics")); len(got) != 3 {
		t.Errorf("Merge changed its receiver: %q", got)
	}
	var nilCat *components.Catalog
	if got := nilCat.Merge(over).Names(); !reflect.DeepEqual(got, []string{"kiln-metrics"}) {
		t.Errorf("nil.Merge = %q", got)
	}
	d, _ := base.Lookup("kiln-backup", v("0.1.0"))
	if _, err := over.Policy(d); err == nil {
		t.Error("Policy of a definition from another catalog succeeded")
	}
}

func TestBuiltin(t *testing.T) {
	c, err := components.Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	entries, err := os.ReadDir("builtin")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if got := c.Names(); !reflect.DeepEqual(got, dirs) && len(got)+len(dirs) > 0 {
		t.Errorf("Builtin names = %q, want the directories %q", got, dirs)
	}
	for _, d := range c.Definitions() {
		if d.Dir != "" || d.BinaryPath() != "" {
			t.Errorf("%s: builtin has Dir %q", d.Name, d.Dir)
		}
		if p, err := c.Policy(d); err != nil || len(p) == 0 {
			t.Errorf("%s: Policy = %q, %v", d.Name, p, err)
		}
		// Builtin binaries are built from ./cmd/<binary>.
		if fi, err := os.Stat(filepath.Join("..", "cmd", d.Binary)); err != nil || !fi.IsDir() {
			t.Errorf("%s: binary %q has no main package in cmd/%s", d.Name, d.Binary, d.Binary)
		}
	}
}

func metricsYAML(ver string) string {
	return `name: kiln-metrics
version: ` + ver + `
binary: kiln-metrics
description: one line
unit:
  mode: service
  args: ["--listen", "127.0.0.1:${KILN_PORT_METRICS}"]
  ports: [metrics]
policy: policy.json
`
}

// writeComponent lays out <dir>/<name>/<ver>/ with component.yaml, a policy and an executable.
func writeComponent(t *testing.T, dir, name, ver, yaml string) string {
	t.Helper()
	d := filepath.Join(dir, name, ver)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"component.yaml": yaml,
		"policy.json":    `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}`,
		name:             "#!/bin/sh\n",
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(d, f), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestLoadDirRejects(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"name differs from its directory", func(t *testing.T, dir string) {
			writeComponent(t, dir, "kiln-metrics", "0.1.0", strings.Replace(metricsYAML("0.1.0"), "name: kiln-metrics", "name: kiln-other", 1))
		}, []string{`component.yaml:1:7: name: name "kiln-other" does not match its directory "kiln-metrics"`}},
		{"version differs from its directory", func(t *testing.T, dir string) {
			writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.2.0"))
		}, []string{`component.yaml:2:10: version: version 0.2.0 does not match its directory "0.1.0"`}},
		{"version directory not a version", func(t *testing.T, dir string) {
			writeComponent(t, dir, "kiln-metrics", "latest", metricsYAML("0.1.0"))
		}, []string{`version: version 0.1.0 does not match its directory "latest"`}},
		{"two directories for one version", func(t *testing.T, dir string) {
			writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			writeComponent(t, dir, "kiln-metrics", "0.1", metricsYAML("0.1"))
		}, []string{"version 0.1.0 of kiln-metrics is also defined in"}},
		{"missing binary", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.Remove(filepath.Join(d, "kiln-metrics"))
		}, []string{`component.yaml:3:9: binary: binary "kiln-metrics" not found beside component.yaml`}},
		{"binary not executable", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.Chmod(filepath.Join(d, "kiln-metrics"), 0o644)
		}, []string{`binary: binary "kiln-metrics" is not executable`}},
		{"missing policy", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.Remove(filepath.Join(d, "policy.json"))
		}, []string{`component.yaml:9:9: policy: cannot read policy.json beside component.yaml`}},
		{"policy not JSON", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.WriteFile(filepath.Join(d, "policy.json"), []byte("Allow everything"), 0o644)
		}, []string{`policy: policy.json: not a JSON policy document`}},
		{"policy without Statement", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.WriteFile(filepath.Join(d, "policy.json"), []byte(`{"Version": "2012-10-17"}`), 0o644)
		}, []string{`policy: policy.json: an IAM policy document needs Version and Statement`}},
		{"policy granting everything", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.WriteFile(filepath.Join(d, "policy.json"), []byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "*"}]}`), 0o644)
		}, []string{`policy: policy.json: grants every action ("*")`}},
		{"missing component.yaml", func(t *testing.T, dir string) {
			d := writeComponent(t, dir, "kiln-metrics", "0.1.0", metricsYAML("0.1.0"))
			os.Remove(filepath.Join(d, "component.yaml"))
		}, []string{"load component kiln-metrics 0.1.0:", "no such file"}},
		{"errors from several files at once", func(t *testing.T, dir string) {
			writeComponent(t, dir, "kiln-metrics", "0.1.0", strings.Replace(metricsYAML("0.1.0"), "mode: service", "mode: daemon", 1))
			writeComponent(t, dir, "kiln-metrics", "0.2.0", strings.Replace(metricsYAML("0.2.0"), "binary: kiln-metrics", "binary: ../kiln-metrics", 1))
		}, []string{`0.1.0/component.yaml:6:9: unit.mode: unknown mode "daemon"`, `0.2.0/component.yaml:3:9: binary: invalid binary name "../kiln-metrics"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			c, err := components.LoadDir(dir)
			if err == nil {
				t.Fatalf("LoadDir succeeded with %q", c.Names())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}

	if _, err := components.LoadDir(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadDir(absent) = %v, want not-exist", err)
	}
	var errs manifests.Errors
	dir := t.TempDir()
	writeComponent(t, dir, "kiln-metrics", "0.1.0", "name: [x]\n")
	if _, err := components.LoadDir(dir); !errors.As(err, &errs) || errs[len(errs)-1].Path != "name" {
		t.Errorf("LoadDir error %v does not reach manifests.Errors", err)
	}
}

func TestLoadDirEmpty(t *testing.T) {
	c, err := components.LoadDir(t.TempDir())
	if err != nil || len(c.Names()) != 0 {
		t.Errorf("LoadDir(empty) = %q, %v", c.Names(), err)
	}
}

func TestExpand(t *testing.T) {
	c, err := components.LoadDir(filepath.Join("testdata", "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := c.Lookup("kiln-backup", v("0.1.0"))
	args, env, err := d.Unit.Expand(map[string]string{
		"KILN_DATA_DIR": "/var/kiln/i-1", "KILN_SERVICE": "hello", "KILN_INSTANCE": "i-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--state", "/var/kiln/i-1/backup", "--bucket", "kiln-backups", "--price", "$5"}; !reflect.DeepEqual(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	if want := map[string]string{"BUCKET": "kiln-backups", "PREFIX": "hello/i-1"}; !reflect.DeepEqual(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
	m, _ := c.Lookup("kiln-metrics", v("0.1.0"))
	if _, _, err := m.Unit.Expand(map[string]string{"PORT": "8080"}); err == nil || !strings.Contains(err.Error(), "${KILN_PORT_METRICS}") {
		t.Errorf("Expand without the port = %v, want an unknown-variable error", err)
	}
	if got := components.PortEnv("admin-http"); got != "KILN_PORT_ADMIN_HTTP" {
		t.Errorf("PortEnv = %q", got)
	}
}
