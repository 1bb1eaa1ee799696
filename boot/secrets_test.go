package boot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSecretsReachOnlyTheUnitsThatReferToThem(t *testing.T) {
	const canary = "canary-7f3a9c"
	app := testUnit("app", RestartAlways, "env", "${KILN_DATA_DIR}/env.json")
	app.Env["DATABASE_URL"] = "postgres://app:${secret:DB_PASSWORD}@db/app"
	web := testUnit("web", RestartAlways, "env", "${KILN_DATA_DIR}/web-env.json")
	in := newInstance(t, 5*time.Second, web, app)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(`{"DB_PASSWORD":"` + canary + `"}`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	spec, err := LoadSpec(in.specPath)
	if err != nil {
		t.Fatal(err)
	}
	// Boot owns the descriptor it is given and closes it: hand it a duplicate, so that
	// the test's *os.File never closes a number boot has already freed.
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	spec.SecretsFD = fd
	writeJSON(t, in.specPath, spec)
	in.start(Options{})

	envOf := func(file string) []string {
		var got struct{ Env []string }
		waitFor(t, file, func() bool {
			return json.Unmarshal([]byte(readFile(t, filepath.Join(in.dataDir, file))), &got) == nil
		})
		return got.Env
	}
	if env := envOf("env.json"); !slices.Contains(env, "DATABASE_URL=postgres://app:"+canary+"@db/app") {
		t.Errorf("the app's env lacks the expanded secret: %q", env)
	}
	for _, kv := range envOf("web-env.json") {
		if strings.Contains(kv, canary) {
			t.Errorf("a unit that does not refer to the secret got it: %s", kv)
		}
	}
	if strings.Contains(readFile(t, in.specPath), canary) {
		t.Error("the secret reached the spec file")
	}
}

func TestSecretsNeverReachACommandLine(t *testing.T) {
	secrets := map[string]string{"TOKEN": "s3cret"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"direct", []string{"--token=${secret:TOKEN}"}, nil, "args[0]: ${secret:TOKEN} is a secret"},
		{"through env", []string{"--x", "--token=${T}"}, map[string]string{"T": "${secret:TOKEN}"}, "args[1]: ${T} is a secret"},
		{"unset", nil, map[string]string{"T": "${secret:NOPE}"}, "env.T: ${secret:NOPE} is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &Unit{Name: "app", Command: "bin/app", Args: tc.args, Env: tc.env, file: "units/app.json"}
			_, _, err := unitCommand(u, map[string]string{}, secrets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
}
