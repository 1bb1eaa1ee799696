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
