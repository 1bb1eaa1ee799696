package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Recipe is everything an image is baked from.
type Recipe struct {
	Name    string
	Version string
	App     App
	// Components are the resolved baked components, in any order.
	Components []ComponentSource
	// Init is the absolute path of kiln-boot, the instance's init, baked into every image
	// so an instance runs the init its image was baked with.
	Init string
}

// App is the application: a Go main package built at bake time, or a prebuilt binary.
type App struct {
	// Main is a Go package pattern (./cmd/hello or an import path), built in Dir.
	Main string
	// Binary is the path of a prebuilt executable.
	Binary string
	// Dir is where Main is built (the manifest's directory).
	Dir  string
	Args []string
	Env  map[string]string
}

// ComponentSource is a baked component as the catalog resolved it.
type ComponentSource struct {
	Name    string
	Version string
	// Binary is the absolute path of the component's executable.
	Binary string
	// Unit says how the instance runs it; its Command is filled in by the bake.
	Unit  Unit
	Ports []string
}

// Store is a directory of images: <dir>/sha256-<hex>/ per image, an index of bake times,
// and recipe keys that let an unchanged recipe skip the build.
type Store struct {
	Dir string
	// Now stamps bakes in the index; nil is time.Now.
	Now func() time.Time
}

// Result says what a bake did.
type Result struct {
	Image *Image
	// Cached is true when the recipe was baked before and nothing was rebuilt.
	Cached bool
}

// Bake bakes r into the store, or finds the image an identical recipe baked before.
func (s *Store) Bake(ctx context.Context, r Recipe) (Result, error) {
	if err := r.check(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "recipes"), fileperm.Dir); err != nil {
		return Result{}, fmt.Errorf("bake %s: %w", r.Name, err)
	}
	key, err := r.key(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("bake %s: %w", r.Name, err)
	}
	keyPath := filepath.Join(s.Dir, "recipes", key)
	if b, err := os.ReadFile(keyPath); err == nil {
		digest := strings.TrimSpace(string(b))
		if img, err := s.Get(digest); err == nil {
			s.touch(img)
			img.RecipeKey = key
			return Result{Image: img, Cached: true}, nil
		}
	}
	img, err := s.build(ctx, r)
	if err != nil {
		return Result{}, fmt.Errorf("bake %s %s: %w", r.Name, r.Version, err)
	}
	if err := atomicfile.Write(keyPath, []byte(img.Digest+"\n"), fileperm.File); err != nil {
		return Result{}, err
	}
	s.touch(img)
	img.RecipeKey = key
	return Result{Image: img}, nil
}

func (r Recipe) check() error {
	if r.Name == "" || r.Version == "" {
		return errors.New("bake: a recipe needs a name and a version")
	}
	if (r.App.Main == "") == (r.App.Binary == "") {
		return fmt.Errorf("bake %s: the app needs exactly one of a Go main package or a binary", r.Name)
	}
	seen := map[string]bool{r.Name: true}
	if r.Init != "" {
		if seen[InitName] {
			return fmt.Errorf("bake %s: the app's binary would overwrite the init, %s", r.Name, InitName)
		}
		seen[InitName] = true
	}
	for _, c := range r.Components {
		if seen[c.Name] {
			return fmt.Errorf("bake %s: component %s would overwrite another binary of the image", r.Name, c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// key is the recipe's cache key: a hash of every input that can change the image.
func (r Recipe) key(ctx context.Context) (string, error) {
	h := sha256.New()
	comps := append([]ComponentSource(nil), r.Components...)
	sort.Slice(comps, func(i, j int) bool { return comps[i].Name < comps[j].Name })
	for i := range comps {
		sum, _, err := hashFile(comps[i].Binary)
		if err != nil {
			return "", fmt.Errorf("component %s: %w", comps[i].Name, err)
		}
		comps[i].Binary = sum // the content matters, not where it lies
	}
	var initSum string
	if r.Init != "" {
		sum, _, err := hashFile(r.Init)
		if err != nil {
			return "", fmt.Errorf("init: %w", err)
		}
		initSum = sum
	}
	app := r.App
	var appInput string
	if app.Binary != "" {
		sum, _, err := hashFile(app.Binary)
		if err != nil {
			return "", fmt.Errorf("app binary: %w", err)
		}
		appInput = "binary:" + sum
		app.Binary = filepath.Base(app.Binary)
	} else {
		sum, err := goSourceHash(ctx, app.Dir, app.Main)
		if err != nil {
			return "", err
		}
		appInput = "go:" + sum
		app.Dir = ""
	}
	json.NewEncoder(h).Encode(struct {
		Schema     int
		Name       string
		Version    string
		App        App
		AppInput   string
		Components []ComponentSource
		Init       string
	}{SchemaVersion, r.Name, r.Version, app, appInput, comps, initSum})
	return hex.EncodeToString(h.Sum(nil)), nil
}

// goSourceHash hashes what `go build` of pkg reads: the toolchain and the settings that
// shape its output, the versions of modules from the module cache (immutable), and the
// content of every other source file.
func goSourceHash(ctx context.Context, dir, pkg string) (string, error) {
	const tmpl = `{{if not .Standard}}{{.ImportPath}}|{{.Dir}}|{{with .Module}}{{.Path}}@{{.Version}}{{with .Replace}}=>{{.Path}}@{{.Version}}{{end}}{{end}}|{{join .GoFiles ","}},{{join .CgoFiles ","}},{{join .SFiles ","}},{{join .CFiles ","}},{{join .HFiles ","}},{{join .EmbedFiles ","}}{{"\n"}}{{end}}`
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", tmpl, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %v: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	h := sha256.New()
	// Settings that change the binary without changing any file: a build under other
	// flags (GOFLAGS=-ldflags=..., another GOAMD64 level) must not be served from the cache.
	ver, err := exec.CommandContext(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH", "GOFLAGS", "GOAMD64", "GOARM64", "GOEXPERIMENT").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	h.Write(ver)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 4)
		if len(parts) != 4 {
			continue
		}
		importPath, pdir, mod, files := parts[0], parts[1], parts[2], parts[3]
		fmt.Fprintf(h, "%s %s\n", importPath, mod)
		if i := strings.LastIndex(mod, "@"); i >= 0 && mod[i+1:] != "" && !strings.Contains(mod, "=>") {
			continue // a module version from the module cache never changes
		}
		for _, f := range strings.Split(files, ",") {
			if f == "" {
				continue
			}
			sum, _, err := hashFile(filepath.Join(pdir, f))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "  %s %s\n", f, sum)
		}
	}
	// go.mod and go.sum decide versions too.
	gomodCmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	gomodCmd.Dir = dir
	mods, _ := gomodCmd.Output()
	if gomod := strings.TrimSpace(string(mods)); gomod != "" && gomod != os.DevNull {
		for _, f := range []string{gomod, strings.TrimSuffix(gomod, ".mod") + ".sum"} {
			if sum, _, err := hashFile(f); err == nil {
				fmt.Fprintf(h, "%s %s\n", filepath.Base(f), sum)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// build assembles the image in a temporary directory of the store and moves it into
// place under its digest.
func (s *Store) build(ctx context.Context, r Recipe) (*Image, error) {
	tmp, err := os.MkdirTemp(s.Dir, ".bake-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"bin", "units"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), fileperm.Dir); err != nil {
			return nil, err
		}
	}
	appPath := filepath.Join("bin", r.Name)
	app := Binary{Name: r.Name, Path: appPath}
	if r.App.Binary != "" {
		if err := copyFile(r.App.Binary, filepath.Join(tmp, appPath), fileperm.Exec); err != nil {
			return nil, fmt.Errorf("app binary: %w", err)
		}
		app.Source = filepath.Base(r.App.Binary)
	} else {
		if err := goBuild(ctx, r.App.Dir, r.App.Main, filepath.Join(tmp, appPath)); err != nil {
			return nil, err
		}
		app.Source = r.App.Main
	}
	units := []Unit{{Name: AppUnit, Command: appPath, Args: nonNil(r.App.Args), Env: nonNilMap(r.App.Env), Restart: "always", Mode: "service"}}
	var comps []Component
	ports := []string{}
	for _, c := range r.Components {
		p := filepath.Join("bin", c.Name)
		if err := copyFile(c.Binary, filepath.Join(tmp, p), fileperm.Exec); err != nil {
			return nil, fmt.Errorf("component %s: %w", c.Name, err)
		}
		comps = append(comps, Component{Binary: Binary{Name: c.Name, Path: p, Source: filepath.Base(c.Binary)}, Version: c.Version})
		u := c.Unit
		u.Name, u.Command, u.Args, u.Env = c.Name, p, nonNil(u.Args), nonNilMap(u.Env)
		units = append(units, u)
		ports = append(ports, c.Ports...)
	}
	var init *Binary
	if r.Init != "" {
		init = &Binary{Name: InitName, Path: filepath.Join("bin", InitName), Source: filepath.Base(r.Init)}
		if err := copyFile(r.Init, filepath.Join(tmp, init.Path), fileperm.Exec); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if init.SHA256, _, err = hashFile(filepath.Join(tmp, init.Path)); err != nil {
			return nil, err
		}
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].Name < comps[j].Name })
	sort.Strings(ports)
	for _, u := range units {
		b, err := json.MarshalIndent(u, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "units", u.Name+".json"), append(b, '\n'), fileperm.File); err != nil {
			return nil, err
		}
	}
	if app.SHA256, _, err = hashFile(filepath.Join(tmp, app.Path)); err != nil {
		return nil, err
	}
	for i := range comps {
		if comps[i].SHA256, _, err = hashFile(filepath.Join(tmp, comps[i].Path)); err != nil {
			return nil, err
		}
	}
	meta := Meta{SchemaVersion: SchemaVersion, Name: r.Name, Version: r.Version, App: app, Components: nonNilComps(comps), Ports: ports, Init: init}
	sbom, err := sbomFor(tmp, meta)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, SBOMFile), sbom, fileperm.File); err != nil {
		return nil, err
	}
	if meta.Files, err = listing(tmp); err != nil {
		return nil, err
	}
	if meta.Digest, err = computeDigest(meta); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), append(b, '\n'), fileperm.File); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, dirName(meta.Digest))
	if _, err := os.Stat(dir); err == nil {
		// The same content was baked before (from another recipe key): keep that one.
		return &Image{Meta: meta, Dir: dir}, nil
	}
	if err := syncTree(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return &Image{Meta: meta, Dir: dir}, nil
}

// goBuild builds a static, reproducible binary: no paths of this machine, no VCS stamp,
// no cgo.
func goBuild(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// listing is the canonical listing of a directory: every regular file but image.json,
// sorted by path, with mode, size and sha256.
func listing(root string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "image.json" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: only regular files go into an image", rel)
		}
		sum, size, err := hashFile(p)
		if err != nil {
			return err
		}
		files = append(files, File{Path: rel, Mode: fi.Mode().Perm(), Size: size, SHA256: sum})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, err
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncTree fsyncs every file of a freshly built image before it is renamed into place.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilComps(c []Component) []Component {
	if c == nil {
		return []Component{}
	}
	return c
}
