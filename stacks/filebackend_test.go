package stacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThePassphraseFileIsCreatedOnceOwnerOnlyAndAShortOneIsRefused(t *testing.T) {
	dir := t.TempDir()
	p, err := passphraseFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file mode %v, want 0600", fi.Mode().Perm())
	}
	if n := len(strings.TrimSpace(string(first))); n < 43 {
		t.Errorf("generated passphrase has %d characters, want 43", n)
	}
	if _, err := passphraseFile(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(first) {
		t.Fatal("a second open replaced the passphrase")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("state directory holds %d entries, want only the passphrase", len(ents))
	}

	for _, bad := range []string{"", "\n", "short-secret\n"} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "passphrase"), []byte(bad), 0o600)
		if _, err := passphraseFile(dir); err == nil || !strings.Contains(err.Error(), "restore it") {
			t.Errorf("passphrase file holding %q: %v, want a refusal", bad, err)
		}
	}
}

// A stack's secrets, moved between backends as ciphertexts, stay readable only if both
// ends use the same passphrase: a file backend's generated one, $KILN_PASSPHRASE for a
// shared backend, Pulumi's own variables for both.
func TestSamePassphraseAsTheEngineWouldBeGiven(t *testing.T) {
	dir := t.TempDir()
	file, shared := "file://"+filepath.Join(dir, "pulumi"), "s3://bucket/prefix?region=us-east-1"
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "")
	t.Setenv("PULUMI_CONFIG_PASSPHRASE_FILE", "")
	t.Setenv(PassphraseEnv, "team passphrase")
	if same, err := SamePassphrase(dir, file, shared); err != nil || !same {
		t.Fatalf("no generated passphrase, KILN_PASSPHRASE for both: same=%v, %v", same, err)
	}
	p, err := passphraseFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if same, _ := SamePassphrase(dir, file, shared); same {
		t.Fatal("a generated passphrase and a different KILN_PASSPHRASE were taken for the same")
	}
	raw, _ := os.ReadFile(p)
	t.Setenv(PassphraseEnv, strings.TrimSpace(string(raw)))
	if same, err := SamePassphrase(dir, shared, file); err != nil || !same {
		t.Fatalf("KILN_PASSPHRASE set to the generated one: same=%v, %v", same, err)
	}
	t.Setenv(PassphraseEnv, "other")
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "pulumi's own")
	if same, err := SamePassphrase(dir, file, shared); err != nil || !same {
		t.Fatalf("PULUMI_CONFIG_PASSPHRASE for both: same=%v, %v", same, err)
	}
}
