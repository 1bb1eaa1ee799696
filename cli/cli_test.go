package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

func kiln(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	code := Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodesForBadInvocations(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rollout", "--no-such-flag"}, ExitInvalid, "unknown flag"},
		{[]string{"frobnicate"}, ExitInvalid, "unknown command"},
		{[]string{"validate", "a.yaml", "b.yaml"}, ExitInvalid, "takes at most one argument, the manifest"},
		{[]string{"validate", "-f", "a.yaml", "b.yaml"}, ExitInvalid, "the manifest is given twice"},
		{[]string{"rollout", "pause", "a.yaml", "b.yaml"}, ExitInvalid, "kiln rollout pause takes at most one argument"},
		{[]string{"version", "extra"}, ExitInvalid, "takes no arguments"},
		{[]string{"validate", "missing.yaml"}, ExitFailed, "missing.yaml"}, // the argument is the manifest
		{[]string{"validate", "--output", "xml"}, ExitInvalid, "--output \"xml\""},
		{[]string{"validate"}, ExitFailed, "kiln.yaml"}, // no manifest: an error, not invalid input
		{[]string{"version"}, ExitOK, ""},
	} {
		code, _, errOut := kiln(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("kiln %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestInitWritesAManifestThatValidatesAndRefusesToOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My_Shop")
	os.Mkdir(dir, 0o755)
	code, out, errOut := kiln(t, dir, "init", "-o", "text")
	if code != ExitOK || !strings.Contains(out, "service my-shop") {
		t.Fatalf("init: %d %q %q", code, out, errOut)
	}
	// The starter builds the Go main package beside it: without one it is refused.
	code, _, errOut = kiln(t, dir, "validate")
	if code != ExitInvalid || !strings.Contains(errOut, "kiln.yaml:11:9: app.main: \".\" is no Go package the bake can build here") {
		t.Fatalf("validate of the starter without a Go module: %d %q", code, errOut)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/shop\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	code, out, errOut = kiln(t, dir, "validate", "-o", "text")
	if code != ExitOK || !strings.Contains(out, "ok: service my-shop 0.1.0") {
		t.Fatalf("validate of the starter: %d %q %q", code, out, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "kiln.yaml"))
	code, _, errOut = kiln(t, dir, "init", "--service", "other")
	if code != ExitInvalid || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second init: %d %q", code, errOut)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "kiln.yaml"))
	if !bytes.Equal(before, after) {
		t.Fatal("a refused init changed the manifest")
	}
	code, _, _ = kiln(t, dir, "init", "--service", "Bad Name")
	if code != ExitInvalid {
		t.Fatalf("init with an invalid service name exited %d", code)
	}
}

func TestValidatePrintsEveryProblemOnItsOwnLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte("apiVersion: kiln/v1\nservice: x\nversion: 1.0.0\napp: {main: .}\nfleet:\n  size: 0\n  port: 99999\n  health: {path: healthz}\ntarget: {local: {}}\n"), 0o644)
	code, _, errOut := kiln(t, dir, "validate")
	if code != ExitInvalid {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 problems, one a line:\n%s", errOut)
	}
	for i, want := range []string{"kiln.yaml:6:9: fleet.size", "kiln.yaml:7:9: fleet.port", "kiln.yaml:8:18: fleet.health.path"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], want)
		}
	}
}

func TestExitCodeTable(t *testing.T) {
	for outcome, want := range map[rollout.Outcome]int{
		rollout.Promoted:       ExitOK,
		rollout.Unchanged:      ExitOK,
		rollout.RolledBack:     ExitFailed,
		rollout.Failed:         ExitFailed,
		rollout.RollbackFailed: ExitNeedsHuman,
		rollout.Interrupted:    ExitInterrupted,
	} {
		if got := exitCode(&outcomeError{fin: rollout.Finished{Outcome: outcome}}); got != want {
			t.Errorf("%s -> exit %d, want %d", outcome, got, want)
		}
	}
	if got := exitCode(errors.New("disk full")); got != ExitFailed {
		t.Errorf("plain error -> %d", got)
	}
	if got := exitCode(context.Canceled); got != ExitInterrupted {
		t.Errorf("cancelled -> %d", got)
	}
}

func events() []rollout.Event {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	from := &fleet.Release{Version: "1.0.0", Image: fleet.Image{Digest: "sha256:" + strings.Repeat("a", 64)}}
	to := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:" + strings.Repeat("b", 64)}}
	return []rollout.Event{
		rollout.RolloutStarted{At: t0, Service: "shop", Target: "local", From: from, Slot: fleet.Green},
		rollout.PhaseStarted{At: t0, Phase: rollout.PhaseBake},
		rollout.Baked{At: t0.Add(time.Second), Release: to},
		rollout.PhaseFinished{At: t0.Add(time.Second), Phase: rollout.PhaseBake, Duration: time.Second},
		rollout.ResourceChanged{At: t0.Add(2 * time.Second), ResourceOp: fleet.ResourceOp{Op: "create", Type: "test:fake:Instance", Name: "shop-green-0", Status: fleet.OpDone, Duration: 80 * time.Millisecond}},
		rollout.HealthChanged{At: t0.Add(3 * time.Second), Slot: fleet.Green, Instances: []fleet.InstanceHealth{{ID: "a", State: fleet.Healthy}, {ID: "b", State: fleet.Unhealthy, LastError: "status 500"}}},
		rollout.PhaseFinished{At: t0.Add(9 * time.Second), Phase: rollout.PhaseHealth, Duration: 6 * time.Second, Error: "not healthy"},
		rollout.Finished{At: t0.Add(10 * time.Second), Outcome: rollout.RolledBack, Reason: rollout.ReasonNotHealthy, Message: "not healthy", Live: from, Duration: 10 * time.Second},
	}
}

func TestLinePrinterSaysWhatHappened(t *testing.T) {
	var buf bytes.Buffer
	p := &linePrinter{w: &buf}
	for _, ev := range events() {
		p.event(ev)
	}
	want := `rollout shop on local: live 1.0.0 (aaaaaaaaaaaa); new release goes to slot green
    +0s bake     started
         baked 2.0.0 (bbbbbbbbbbbb)
    +1s bake     done in 1s
         create             Instance shop-green-0 (80ms)
         slot green: 1/2 healthy (unhealthy); last error: status 500
    +9s health   FAILED after 6s: not healthy
FAILED rolled-back [NewSlotNotHealthy] in 10s: not healthy
live: 1.0.0 (aaaaaaaaaaaa)
`
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestJSONPrinterWritesOneNamedObjectPerEvent(t *testing.T) {
	var buf bytes.Buffer
	p := jsonPrinter{w: &buf}
	evs := events()
	for _, ev := range evs {
		p.event(ev)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events", len(lines), len(evs))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if m["event"] != evs[i].EventName() {
			t.Errorf("line %d event %v, want %s", i, m["event"], evs[i].EventName())
		}
	}
	var last map[string]any
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last["outcome"] != "rolled-back" || last["reason"] != "NewSlotNotHealthy" {
		t.Fatalf("finished line %v", last)
	}
}

// writeBinaryManifest writes a valid manifest whose app is a prebuilt executable.
func writeBinaryManifest(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "hello")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "kiln.yaml")
	body := "apiVersion: kiln/v1\nservice: hello\nversion: 1.0.0\napp: {binary: ./hello}\nfleet:\n  size: 1\n  port: 8080\n  health: {path: /healthz}\ntarget: {local: {}}\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestAnInterruptBeforeTheRolloutStartsEndsInterrupted(t *testing.T) {
	dir := t.TempDir()
	file := writeBinaryManifest(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a SIGTERM while the stack is being opened
	var out, errOut bytes.Buffer
	code := Run(ctx, []string{"rollout", file, "--state-dir", filepath.Join(dir, "state")}, &out, &errOut)
	if code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitInterrupted, out.String(), errOut.String())
	}
	var fin map[string]any
	if err := json.Unmarshal(out.Bytes(), &fin); err != nil || fin["event"] != "finished" || fin["outcome"] != "interrupted" || fin["reason"] != "Cancelled" {
		t.Fatalf("output is not one finished event, interrupted: %q (%v)", out.String(), err)
	}
}

func TestOutputAutoIsJSONWhenStdoutIsNotATerminal(t *testing.T) {
	dir := t.TempDir()
	file := writeBinaryManifest(t, dir)
	state := "--state-dir=" + filepath.Join(dir, "state")
	for _, tc := range []struct {
		args []string
		want string // a key of the JSON
	}{
		{[]string{"validate", file}, `"service":"hello"`},
		{[]string{"history", file, state}, `[]`},
		{[]string{"images", file, state}, `[]`},
		{[]string{"version"}, `"version":`},
		{[]string{"init", filepath.Join(dir, "new.yaml"), "--service", "new"}, `"service":"new"`},
	} {
		code, out, errOut := kiln(t, dir, tc.args...)
		if code != ExitOK || !json.Valid([]byte(out)) || !strings.Contains(out, tc.want) {
			t.Errorf("kiln %v with stdout not a terminal: exit %d, %q (%s); want JSON with %s", tc.args, code, out, errOut, tc.want)
		}
		os.Remove(filepath.Join(dir, "new.yaml"))
		code, out, _ = kiln(t, dir, append(tc.args, "--output", "text")...)
		if code != ExitOK || json.Valid([]byte(out)) {
			t.Errorf("kiln %v --output text: exit %d, %q", tc.args, code, out)
		}
		os.Remove(filepath.Join(dir, "new.yaml"))
	}
}

func TestValidateChecksWhatTheBakeNeeds(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/shop\n\ngo 1.22\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "lib.go"), []byte("package lib\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notexec"), []byte("#!/bin/sh\n"), 0o644)
	manifest := func(app string) string {
		file := filepath.Join(dir, "kiln.yaml")
		os.WriteFile(file, []byte("apiVersion: kiln/v1\nservice: shop\nversion: 1.0.0\napp:\n  "+app+"\nfleet:\n  size: 1\n  port: 8080\n  health: {path: /healthz}\ntarget: {local: {}}\n"), 0o644)
		return file
	}
	for _, tc := range []struct{ app, want string }{
		{"main: ./lib", `kiln.yaml:5:9: app.main: "./lib" is package lib, not a main package`},
		{"main: ./missing", `kiln.yaml:5:9: app.main: "./missing" is no Go package the bake can build here`},
		{"binary: ./notexec", "kiln.yaml:5:11: app.binary: " + filepath.Join(dir, "notexec") + " is not executable"},
		{"binary: ./missing", "kiln.yaml:5:11: app.binary: the executable cannot be read"},
	} {
		code, _, errOut := kiln(t, dir, "validate", manifest(tc.app))
		if code != ExitInvalid || !strings.HasPrefix(errOut, dir+"/"+tc.want) {
			t.Errorf("validate with app %s: exit %d, %q; want exit 2 and %q", tc.app, code, errOut, tc.want)
		}
	}
}
