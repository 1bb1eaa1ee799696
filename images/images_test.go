package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeApp writes a tiny Go module with a main package and returns its directory.
func writeApp(t *testing.T, msg string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + msg + "\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeExecutable(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func goRecipe(dir string) Recipe {
	return Recipe{Name: "hello", Version: "1.0.0", App: App{Main: ".", Dir: dir, Env: map[string]string{"GREETING": "hi"}}}
}

func TestSameRecipeBakesToTheSameBytesAndTheSecondBakeIsCached(t *testing.T) {
	ctx := context.Background()
	app := writeApp(t, "hello")
	s1, s2 := &Store{Dir: t.TempDir()}, &Store{Dir: t.TempDir()}
	r1, err := s1.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Cached {
		t.Fatal("first bake reported a cache hit")
	}
	// A second store builds from scratch: reproducible builds give the same digest.
	r2, err := s2.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Image.Digest != r2.Image.Digest {
		t.Fatalf("two bakes of one recipe: %s vs %s", r1.Image.Digest, r2.Image.Digest)
	}
	a, _ := os.ReadFile(filepath.Join(r1.Image.Dir, "image.json"))
	b, _ := os.ReadFile(filepath.Join(r2.Image.Dir, "image.json"))
	if !bytes.Equal(a, b) {
		t.Fatal("image.json differs between two bakes of one recipe")
	}
	// Re-baking into the same store rebuilds nothing.
	binPath := filepath.Join(r1.Image.Dir, "bin", "hello")
	before, _ := os.Stat(binPath)
	r3, err := s1.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	if !r3.Cached || r3.Image.Digest != r1.Image.Digest {
		t.Fatalf("re-bake: cached=%v digest=%s", r3.Cached, r3.Image.Digest)
	}
	after, _ := os.Stat(binPath)
	if !before.ModTime().Equal(after.ModTime()) {
		t.Fatal("a cached bake rewrote the image")
	}
	if err := Verify(r1.Image.Dir, r1.Image.Digest); err != nil {
		t.Fatal(err)
	}
}

func TestChangedSourceOrVersionBakesANewImage(t *testing.T) {
	ctx := context.Background()
	app := writeApp(t, "hello")
	s := &Store{Dir: t.TempDir()}
	r1, err := s.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(app, "main.go"), []byte("package main\n\nfunc main() { println(\"changed\") }\n"), 0o644)
	r2, err := s.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Cached || r2.Image.Digest == r1.Image.Digest {
		t.Fatal("a source change did not bake a new image")
	}
	rec := goRecipe(app)
	rec.Version = "1.0.1"
	r3, err := s.Bake(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Cached || r3.Image.Digest == r2.Image.Digest {
		t.Fatal("a new version did not bake a new image")
	}
}

// TestBuildSettingsAreInTheRecipe: a bake under other Go build flags (which change the
// binary, not any file) is a new image, never the cached one.
func TestBuildSettingsAreInTheRecipe(t *testing.T) {
	ctx := context.Background()
	app := writeApp(t, "hello")
	s := &Store{Dir: t.TempDir()}
	r1, err := s.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOFLAGS", "-ldflags=-X=main.unused=1")
	r2, err := s.Bake(ctx, goRecipe(app))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Cached || r2.Image.Digest == r1.Image.Digest {
		t.Fatalf("a bake under other GOFLAGS was served from the cache (cached=%v)", r2.Cached)
	}
}

func TestImageHoldsComponentsUnitsAndAnSBOM(t *testing.T) {
	ctx := context.Background()
	s := &Store{Dir: t.TempDir()}
	app := writeApp(t, "hello")
	rec := goRecipe(app)
	rec.Components = []ComponentSource{{
		Name: "kiln-metrics", Version: "0.2.0", Binary: writeExecutable(t, "exit 0"), Ports: []string{"metrics"},
		Unit: Unit{Mode: "service", Restart: "always", Args: []string{"--listen", "127.0.0.1:${KILN_PORT_METRICS}"}},
	}}
	res, err := s.Bake(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Image.Meta
	if len(m.Components) != 1 || m.Components[0].Version != "0.2.0" || len(m.Components[0].SHA256) != 64 {
		t.Fatalf("components = %+v", m.Components)
	}
	if len(m.Ports) != 1 || m.Ports[0] != "metrics" {
		t.Fatalf("ports = %v", m.Ports)
	}
	var u Unit
	b, err := os.ReadFile(filepath.Join(res.Image.Dir, "units", "kiln-metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &u)
	if u.Command != "bin/kiln-metrics" || u.Args[1] != "127.0.0.1:${KILN_PORT_METRICS}" {
		t.Fatalf("unit = %+v", u)
	}
	b, _ = os.ReadFile(filepath.Join(res.Image.Dir, "units", "app.json"))
	json.Unmarshal(b, &u)
	if u.Command != "bin/hello" || u.Env["GREETING"] != "hi" || u.Restart != "always" {
		t.Fatalf("app unit = %+v", u)
	}
	var bom cdxBOM
	b, _ = os.ReadFile(filepath.Join(res.Image.Dir, "sbom.cdx.json"))
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name != "hello" || bom.Components[0].Name != "kiln-metrics" {
		t.Fatalf("sbom = %+v", bom)
	}
	// The listing covers every file but image.json, so the digest covers them all.
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	want := "bin/hello bin/kiln-metrics sbom.cdx.json units/app.json units/kiln-metrics.json"
	if strings.Join(paths, " ") != want {
		t.Fatalf("files = %v, want %s", paths, want)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: writeExecutable(t, "echo hi")}})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(res.Image.Dir, "bin", "svc")
	os.Chmod(bin, 0o755)
	os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755)
	if err := Verify(res.Image.Dir, ""); err == nil || !strings.Contains(err.Error(), "bin/svc changed") {
		t.Fatalf("verify of a changed binary: %v", err)
	}
	meta := filepath.Join(res.Image.Dir, "image.json")
	b, _ := os.ReadFile(meta)
	os.WriteFile(meta, bytes.Replace(b, []byte(`"1.0.0"`), []byte(`"9.9.9"`), 1), 0o644)
	if _, err := s.Get(res.Image.Digest); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("get of an altered image.json: %v", err)
	}
}

func TestRecipeMustHaveExactlyOneAppSource(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	_, err := s.Bake(context.Background(), Recipe{Name: "x", Version: "1", App: App{Main: ".", Binary: "/bin/true"}})
	if err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 0 {
		t.Fatalf("a refused recipe left %d entries in the store", len(ents))
	}
}

func TestGCKeepsTheLastNAndEveryImageInUse(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Store{Dir: t.TempDir(), Now: func() time.Time { clock = clock.Add(time.Minute); return clock }}
	bin := writeExecutable(t, "true")
	var digests []string
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"} {
		res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: v, App: App{Binary: bin}})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Image.Digest)
	}
	other, err := s.Bake(context.Background(), Recipe{Name: "other", Version: "1.0.0", App: App{Binary: bin}})
	if err != nil {
		t.Fatal(err)
	}
	// Keep 2 of svc; 1.0.0 is still in use by the stack.
	removed, err := s.GC("svc", 2, []string{digests[0]})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0] != digests[2] && removed[1] != digests[2] {
		t.Fatalf("removed %v", removed)
	}
	left, _ := s.List()
	got := map[string]bool{}
	for _, e := range left {
		got[e.Digest] = true
	}
	for _, d := range []string{digests[0], digests[3], digests[4], other.Image.Digest} {
		if !got[d] {
			t.Errorf("gc removed %s, which it had to keep", d)
		}
	}
	for _, d := range []string{digests[1], digests[2]} {
		if got[d] {
			t.Errorf("gc kept %s", d)
		}
		if _, err := os.Stat(filepath.Join(s.Dir, dirName(d))); err == nil {
			t.Errorf("directory of %s still exists", d)
		}
	}
	// Baking a removed release again works: its recipe key was dropped.
	res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.1.0", App: App{Binary: bin}})
	if err != nil || res.Cached || res.Image.Digest != digests[1] {
		t.Fatalf("re-bake after gc: %v cached=%v", err, res.Cached)
	}
}

// A digest in index.json becomes a directory the GC removes: an index entry that is not a
// sha256 digest (here one that climbs out of the store) is refused, and nothing outside
// the store is touched.
func TestGCRefusesAnIndexDigestThatIsNotADigest(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(root, "victim")
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Store{Dir: filepath.Join(root, "store"), Now: func() time.Time { clock = clock.Add(time.Minute); return clock }}
	res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: writeExecutable(t, "true")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"sha256:/../../victim", "sha256:" + strings.Repeat("../", 21) + "v", "sha256:" + strings.Repeat("A", 64), "x"} {
		index := fmt.Sprintf(`[{"digest": %q, "name": "svc", "version": "0.9.0"},
 {"digest": %q, "name": "svc", "version": "1.0.0", "usedAt": "2026-02-01T00:00:00Z"}]`, bad, res.Image.Digest)
		if err := os.WriteFile(filepath.Join(s.Dir, "index.json"), []byte(index), 0o600); err != nil {
			t.Fatal(err)
		}
		removed, err := s.GC("svc", 1, nil)
		if err == nil || !strings.Contains(err.Error(), "not a sha256 digest") {
			t.Errorf("gc with index digest %q: removed %v, err %v; want a refusal", bad, removed, err)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Fatalf("gc with index digest %q removed a directory outside the store: %v", bad, err)
		}
	}
}

// An instance boots only the image its deployment recorded, byte for byte: a file added,
// removed or re-moded since the bake, or another image in its place, is refused.
func TestVerifyRefusesEveryChangeSinceTheBake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(dir string)
		want   string
		digest func(real string) string
	}{
		{"an added unit", func(dir string) {
			os.Chmod(filepath.Join(dir, "units"), 0o755)
			os.WriteFile(filepath.Join(dir, "units", "evil.json"), []byte(`{}`), 0o644)
		}, "units/evil.json was added", nil},
		{"a removed file", func(dir string) {
			os.Chmod(filepath.Join(dir, "units"), 0o755)
			os.Remove(filepath.Join(dir, "units", "app.json"))
		}, "units/app.json is missing", nil},
		{"a mode changed", func(dir string) { os.Chmod(filepath.Join(dir, "sbom.cdx.json"), 0o777) }, "changed mode", nil},
		{"another image", func(string) {}, "want sha256:0000", func(string) string { return "sha256:0000" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir()}
			res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: writeExecutable(t, "echo hi")}})
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(res.Image.Dir, res.Image.Digest); err != nil {
				t.Fatalf("the untouched image: %v", err)
			}
			tc.tamper(res.Image.Dir)
			want := res.Image.Digest
			if tc.digest != nil {
				want = tc.digest(want)
			}
			if err := Verify(res.Image.Dir, want); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// An image is its user's only, and its digest, which covers every file's mode, does not
// depend on the umask it was baked under.
func TestAnImageIsOwnerOnlyAndItsDigestIgnoresTheUmask(t *testing.T) {
	bin := writeExecutable(t, "echo hi")
	var digests []string
	for _, mask := range []int{0o022, 0o027, 0o077} {
		old := syscall.Umask(mask)
		s := &Store{Dir: filepath.Join(t.TempDir(), "images")}
		res, err := s.Bake(context.Background(), Recipe{Name: "svc", Version: "1.0.0", App: App{Binary: bin}})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Image.Digest)
		filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := d.Info()
			if fi.Mode().Perm()&0o077 != 0 || (d.IsDir() && fi.Mode().Perm() != 0o700) {
				t.Errorf("umask %03o: %s has mode %v", mask, p, fi.Mode())
			}
			return nil
		})
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("the same recipe baked to %v under umasks 022, 027, 077", digests)
	}
}
