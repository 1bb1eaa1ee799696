//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// passphrase is the stack's passphrase in this test, given as CI would: in KILN_PASSPHRASE.
const passphrase = "e2e-passphrase-4b1d"

// writeSecretsManifest writes a manifest whose app gets the secret DB_PASSWORD in DB_URL.
func writeSecretsManifest(t *testing.T, dir, service, version string) {
	t.Helper()
	writeFull(t, dir, service, version, `DB_URL: "postgres://app:${secret:DB_PASSWORD}@db/app"`, "  scaleDownDelay: 0s", "secrets: [DB_PASSWORD]")
}

func newCanary(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "kiln-canary-" + hex.EncodeToString(b)
}

// procWatch samples the command line and environment of every process while it runs:
// a value found in either is recorded, with the process, unless the process is one of
// the app's units, which are meant to have it in their environment.
type procWatch struct {
	values []string
	// argvOnly are looked for in command lines only: the passphrase is meant to be in
	// the environment of kiln and the engine (KILN_PASSPHRASE), never in an argv.
	argvOnly []string
	stop     chan struct{}
	done     chan struct{}

	mu   sync.Mutex
	hits []string
	apps map[string]bool // app processes seen holding each value
}

func watchProcs(values, argvOnly []string) *procWatch {
	w := &procWatch{values: values, argvOnly: argvOnly, stop: make(chan struct{}), done: make(chan struct{}), apps: map[string]bool{}}
	go func() {
		defer close(w.done)
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *procWatch) sample() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		// The app's units run the app as baked into the image (<image>/app/...).
		isApp := strings.Contains(string(argv0), string(filepath.Separator)+"images"+string(filepath.Separator))
		for _, v := range append(w.values, w.argvOnly...) {
			inArgv, inEnv := bytes.Contains(cmdline, []byte(v)), bytes.Contains(environ, []byte(v))
			if slices.Contains(w.argvOnly, v) {
				inEnv = false
			}
			w.mu.Lock()
			switch {
			case inArgv:
				w.hits = append(w.hits, fmt.Sprintf("argv of %s: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
			case inEnv && !isApp:
				w.hits = append(w.hits, fmt.Sprintf("environment of %s: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
			case inEnv:
				w.apps[v] = true
			}
			w.mu.Unlock()
		}
	}
}

func (w *procWatch) finish() (hits []string, apps map[string]bool) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hits, w.apps
}

// filesHolding lists the files under root that contain any of values.
func filesHolding(t *testing.T, root string, values ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				hits = append(hits, p)
			}
		}
		return nil
	})
	return hits
}

// appEnvHolding lists the live app processes of dir's fleet whose DB_URL holds value.
func appEnvHolding(dir, value string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if string(kv) == "DB_URL=postgres://app:"+value+"@db/app" {
				n++
			}
		}
	}
	return n
}

func TestSecretsAreDeliveredNeverLeakedAndRotationRollsTheFleet(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KILN_PASSPHRASE", passphrase)
	destroyAtEnd(t, dir)
	writeSecretsManifest(t, dir, "vault", "1.0.0")

	// A referenced secret that is not set stops the rollout before anything is baked.
	code, out, errOut := kiln(t, dir, "rollout", "--output", "json")
	if code != 2 || !strings.Contains(errOut, "DB_PASSWORD") {
		t.Fatalf("rollout without the secret exited %d, want 2 naming DB_PASSWORD\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, ".kiln", "images")); err == nil {
		t.Fatal("a rollout refused for an unset secret baked an image")
	}

	canary, rotated := newCanary(t), newCanary(t)
	procs := watchProcs([]string{canary, rotated}, []string{passphrase})
	var events bytes.Buffer // everything kiln printed: the event stream, JSON output, errors
	// ok runs kiln (stdin "" for none), keeps what it printed and fails unless it exits 0.
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := kilnIn(t, dir, stdin, args...)
		events.WriteString(out + errOut)
		if code != 0 {
			t.Fatalf("kiln %v exited %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}

	ok(canary+"\n", "secret", "set", "DB_PASSWORD")
	first := finished(t, ok("", "rollout", "--output", "json"))["to"].(map[string]any)
	if n := appEnvHolding(dir, canary); n != 2 {
		t.Fatalf("%d app processes have the secret in DB_URL, want the 2 instances", n)
	}
	var st struct {
		Endpoint string `json:"endpoint"`
	}
	if err := json.Unmarshal([]byte(ok("", "status", "--output", "json")), &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	load := startLoad(t, st.Endpoint)

	// Same image, same secrets: nothing to do.
	if fin := finished(t, ok("", "rollout", "--output", "json")); fin["outcome"] != "unchanged" {
		t.Fatalf("a second rollout of the same release: %v", fin)
	}

	// Rotation: the same image is rolled out again under load, its instances replaced.
	ok(rotated, "secret", "set", "DB_PASSWORD")
	fin := finished(t, ok("", "rollout", "--output", "json"))
	second := fin["to"].(map[string]any)
	if fin["outcome"] != "promoted" || second["image"].(map[string]any)["digest"] != first["image"].(map[string]any)["digest"] || second["secrets"] == first["secrets"] {
		t.Fatalf("rollout after rotation: %v, want the same image promoted under a new secrets version (first %v)", fin, first)
	}
	rep := load.Stop()
	t.Logf("load: %s", rep)
	if rep.Failed != 0 || rep.Sent == 0 {
		t.Fatalf("%d of %d requests failed during the rotation: %v", rep.Failed, rep.Sent, rep.Errors)
	}
	if n, old := appEnvHolding(dir, rotated), appEnvHolding(dir, canary); n != 2 || old != 0 {
		t.Fatalf("after rotation %d app processes have the new value and %d the old, want 2 and 0", n, old)
	}

	out = ""
	for _, args := range [][]string{{"history", "--output", "json"}, {"history", "--output", "text"}, {"secret", "list", "--output", "json"}, {"secret", "list", "--output", "text"}} {
		out = ok("", args...)
	}
	if !strings.Contains(out, "DB_PASSWORD") || !strings.Contains(out, "set") {
		t.Fatalf("secret list does not list DB_PASSWORD as set:\n%s", out)
	}

	hits, apps := procs.finish()
	for _, h := range hits {
		t.Errorf("a secret or the passphrase was visible in the %s", h)
	}
	if !apps[canary] || !apps[rotated] {
		t.Errorf("the process watch never saw the app holding the values (%v): it did not look", apps)
	}
	for _, v := range []string{canary, rotated} {
		if strings.Contains(events.String(), v) {
			t.Errorf("kiln printed a secret's value")
		}
	}
	// Every file under the test's directory: the state directory with the file backend,
	// the work directory's stack config, the images, every log and engine.log.
	if files := filesHolding(t, dir, canary, rotated); len(files) > 0 {
		t.Errorf("files holding a secret's value: %v", files)
	}
	for _, must := range []string{"logs/engine.log", "pulumi/.pulumi/stacks/kiln/vault.json", "pulumi/.kiln/vault/secrets.json"} {
		if _, err := os.Stat(filepath.Join(dir, ".kiln", must)); err != nil {
			t.Errorf("the search did not cover %s: %v", must, err)
		}
	}
}

// Two hosts share a stack through an S3 backend: A sets the secret and rolls out; B, whose
// state directory has never seen the stack (no Pulumi.<stack>.yaml, no salt), rotates it
// and rolls out; the instances get the new value, and A then finds the release live.
func TestSharedBackendSecretsFromTwoHosts(t *testing.T) {
	host := sharedBackend(t)
	a, b := host("a"), host("b")
	for _, d := range []string{a, b} {
		writeSecretsManifest(t, d, "keys", "1.0.0")
	}
	t.Cleanup(func() { kiln(t, b, "destroy", "--break-lock") })
	one, two := newCanary(t), newCanary(t)

	t.Setenv("HOME", filepath.Join(a, "home"))
	if code, out, errOut := kilnIn(t, a, one, "secret", "set", "DB_PASSWORD"); code != 0 {
		t.Fatalf("secret set on A: %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := kiln(t, a, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("rollout from A: %d\n%s\n%s", code, out, errOut)
	}

	t.Setenv("HOME", filepath.Join(b, "home"))
	code, out, errOut := kiln(t, b, "secret", "list", "--output", "json")
	if code != 0 || !strings.Contains(out, `"name":"DB_PASSWORD"`) || !strings.Contains(out, `"set":true`) {
		t.Fatalf("secret list on B: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := kilnIn(t, b, two, "secret", "set", "DB_PASSWORD"); code != 0 {
		t.Fatalf("secret set on B: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = kiln(t, b, "rollout", "--output", "json")
	if code != 0 || finished(t, out)["outcome"] != "promoted" {
		t.Fatalf("rollout from B after rotating: %d\n%s\n%s", code, out, errOut)
	}
	if n, old := appEnvHolding(a, two)+appEnvHolding(b, two), appEnvHolding(a, one)+appEnvHolding(b, one); n != 2 || old != 0 {
		t.Fatalf("%d app processes have B's value and %d A's, want 2 and 0", n, old)
	}

	t.Setenv("HOME", filepath.Join(a, "home"))
	code, out, errOut = kiln(t, a, "rollout", "--output", "json")
	if code != 0 || finished(t, out)["outcome"] != "unchanged" {
		t.Fatalf("rollout from A of the release B rolled out: %d\n%s\n%s", code, out, errOut)
	}
	for _, d := range []string{a, b} {
		if files := filesHolding(t, d, one, two); len(files) > 0 {
			t.Errorf("files holding a secret's value: %v", files)
		}
	}
}
