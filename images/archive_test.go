package images

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAPayloadIsTheSameBytesEveryTimeAndUnpacksToTheSameImage(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: writeExecutable(t, "echo hi")}})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	a, b := filepath.Join(out, "a.tar.gz"), filepath.Join(out, "b.tar.gz")
	sumA, err := WritePayload(res.Image.Dir, a)
	if err != nil {
		t.Fatal(err)
	}
	// A later archive of the same image, its files touched since: the same bytes.
	now := filepath.Join(res.Image.Dir, "bin", "svc")
	os.Chtimes(now, time.Now(), time.Now())
	sumB, err := WritePayload(res.Image.Dir, b)
	if err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if sumA != sumB || !bytes.Equal(ba, bb) {
		t.Fatalf("two payloads of one image differ: %s, %s", sumA, sumB)
	}
	if fi, _ := os.Stat(a); fi.Mode().Perm() != 0o600 {
		t.Fatalf("payload mode %v, want 0600", fi.Mode().Perm())
	}
	// What the Image Builder component does on the instance: tar -xzf, then verify.
	dst := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", a, "-C", dst).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if err := Verify(dst, res.Image.Digest); err != nil {
		t.Fatalf("unpacked payload: %v", err)
	}
}

func TestATamperedImageIsNeverArchived(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: writeExecutable(t, "echo hi")}})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(res.Image.Dir, "bin", "svc")
	os.Chmod(bin, 0o755)
	os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755)
	file := filepath.Join(t.TempDir(), "p.tar.gz")
	if _, err := WritePayload(res.Image.Dir, file); err == nil || !strings.Contains(err.Error(), "bin/svc changed") {
		t.Fatalf("payload of a tampered image: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a failed payload left %s behind: %v", file, err)
	}
}
