package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/images"
)

// An instance never starts from an image that is not, byte for byte, the one its
// deployment recorded: the init refuses before any unit runs, saying which file changed.
func TestBootRefusesATamperedImage(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app.sh")
	marker := filepath.Join(dir, "started")
	os.WriteFile(app, []byte("#!/bin/sh\ntouch "+marker+"\nexec sleep 30\n"), 0o755)
	store := &images.Store{Dir: filepath.Join(dir, "images")}
	res, err := store.Bake(context.Background(), images.Recipe{Name: "svc", Version: "1.0.0", App: images.App{Binary: app}})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(res.Image.Dir, "bin", "svc")
	os.Chmod(bin, 0o755)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\necho evil\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Instance: "svc-blue-0", ImageDir: res.Image.Dir, Digest: res.Image.Digest, DataDir: filepath.Join(dir, "data"),
		Env: map[string]string{"PORT": "1"}, DrainTimeout: Duration(time.Second)}
	b, _ := json.Marshal(spec)
	specPath := filepath.Join(dir, "boot.json")
	os.WriteFile(specPath, b, 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Run(ctx, specPath, nil)
	if err == nil || !strings.Contains(err.Error(), "bin/svc changed since it was baked") {
		t.Fatalf("boot of a tampered image: %v, want a refusal naming bin/svc", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a unit of the tampered image ran")
	}
}

// `kiln-boot --verify DIR --digest D`, as an AMI build's validate phase runs it: 0 when the
// image is the one baked, 1 naming the first file that differs, 2 for wrong usage.
func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app.sh")
	os.WriteFile(app, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755)
	store := &images.Store{Dir: filepath.Join(dir, "images")}
	res, err := store.Bake(context.Background(), images.Recipe{Name: "svc", Version: "1.0.0", App: images.App{Binary: app}})
	if err != nil {
		t.Fatal(err)
	}
	img, digest := res.Image.Dir, res.Image.Digest
	run := func(args ...string) (int, string) {
		var stderr bytes.Buffer
		code := Main(args, &stderr)
		return code, stderr.String()
	}
	if code, out := run("--verify", img, "--digest", digest); code != 0 {
		t.Fatalf("verify of the baked image: exit %d: %s", code, out)
	}
	if code, out := run("--verify", img, "--digest", "sha256:"+strings.Repeat("0", 64)); code != 1 || !strings.Contains(out, "want sha256:000") {
		t.Fatalf("verify against another digest: exit %d: %s", code, out)
	}
	for _, args := range [][]string{{"--verify", img}, {"--digest", digest}, {"--spec", "x", "--verify", img, "--digest", digest}, {"--spec", "x", "--digest", digest}} {
		if code, _ := run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	bin := filepath.Join(img, "bin", "svc")
	os.Chmod(bin, 0o755)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out := run("--verify", img, "--digest", digest); code != 1 || !strings.Contains(out, "bin/svc changed since it was baked") {
		t.Fatalf("verify of a changed image: exit %d: %s", code, out)
	}
}
