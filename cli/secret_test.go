package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secretManifest = `apiVersion: kiln/v1
service: shop
version: 1.0.0
secrets: [DB_PASSWORD]
app:
  binary: ./app
  env:
    DATABASE_URL: "postgres://app:${secret:DB_PASSWORD}@db/app"
fleet:
  size: 1
  port: 8080
  health: {path: /healthz}
target:
  local: {}
`

func TestSecretCommandsRefuseBadInputWithExitTwo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(secretManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"secret", "set"}, ExitInvalid, "takes one secret name"},
		{[]string{"secret", "set", "DB_PASWORD"}, ExitInvalid, "secret DB_PASWORD is not declared"},
		{[]string{"secret", "rm", "DB_PASSWORD"}, ExitInvalid, "secret DB_PASSWORD is not set"},
	} {
		code, _, errOut := kiln(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("kiln %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	code, out, errOut := kiln(t, dir, "secret", "list", "--output", "text")
	if code != ExitOK || !strings.Contains(out, "DB_PASSWORD") || !strings.Contains(out, "NOT SET (kiln secret set DB_PASSWORD)") {
		t.Fatalf("secret list: exit %d, %q %q", code, out, errOut)
	}
}
