//go:build e2e

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// After a first release, a promotion and an image collection, nothing in the
// state directory is open to the group or to others: not the state itself, the stack,
// the passphrase, the history, the logs of kiln, the engine, the instances and the load
// balancer, nor the images. Every directory is 0700 and every file at most 0700; the
// only exception is symbolic links, whose own mode means nothing (what they point to
// is walked where it lies).
func TestNothingInTheStateDirectoryIsOpenToOtherUsers(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		writeManifestDeadline(t, dir, "shop", v, "", "60s")
		code, out, errOut := kiln(t, dir, "rollout", "--output", "json")
		if code != 0 {
			t.Fatalf("rollout %s exited %d\n%s\n%s", v, code, out, errOut)
		}
	}
	if code, out, errOut := kiln(t, dir, "history", "--output", "json"); code != 0 {
		t.Fatalf("history exited %d\n%s\n%s", code, out, errOut)
	}

	state := filepath.Join(dir, ".kiln")
	var open []string
	files := 0
	err := filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return nil
		case mode.IsDir() && mode.Perm() != 0o700:
			open = append(open, mode.String()+" "+p)
		case !mode.IsDir() && mode.Perm()&0o077 != 0:
			open = append(open, mode.String()+" "+p)
		}
		if mode.IsRegular() {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("the state directory holds only %d files: the rollouts wrote less than expected", files)
	}
	for _, p := range open {
		t.Errorf("open to other users: %s", p)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v %v, want 0700", fi.Mode(), err)
	}
}
