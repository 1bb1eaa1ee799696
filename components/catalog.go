package components

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-version"

	"github.com/kilnhq/kiln/manifests"
)

// builtinFS holds components/builtin: README.md plus one directory per builtin component.
// Embedding the directory (not a glob of component files) keeps the build working while no
// component has been added yet.
//
//go:embed builtin
var builtinFS embed.FS

// DefinitionFile is the name of a component definition inside its directory.
const DefinitionFile = "component.yaml"

// Catalog is a set of component definitions, several versions per name. It implements
// manifests.Catalog. A Catalog is immutable once built and safe for concurrent use; the nil
// *Catalog is an empty catalog.
type Catalog struct {
	byName map[string][]*Definition // each list sorted by ascending version, no two equal
}

var _ manifests.Catalog = (*Catalog)(nil)

var builtinOnce = sync.OnceValues(func() (*Catalog, error) {
	return loadFS(builtinFS, "builtin", "components/builtin")
})

// Builtin returns the components embedded in kiln from components/builtin/<name>/component.yaml.
// Their binaries are built from ./cmd/<binary>; Definition.Dir is "".
func Builtin() (*Catalog, error) {
	return builtinOnce()
}

// loadFS reads root/<name>/component.yaml from fsys for every directory under root. display is
// the directory as the user knows it, for error messages.
func loadFS(fsys fs.FS, root, display string) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	c := &Catalog{byName: map[string][]*Definition{}}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := path.Join(root, e.Name())
		file := display + "/" + e.Name() + "/" + DefinitionFile
		data, err := fs.ReadFile(fsys, path.Join(dir, DefinitionFile))
		if err != nil {
			errs = append(errs, fmt.Errorf("builtin component %s: %w", e.Name(), err))
			continue
		}
		def, err := parseDefinition(file, data, source{
			dirName: e.Name(),
			readPolicy: func(name string) ([]byte, error) {
				b, err := fs.ReadFile(fsys, path.Join(dir, name))
				if err != nil {
					return nil, fmt.Errorf("cannot read %s beside %s", name, DefinitionFile)
				}
				return b, nil
			},
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.add(def)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// LoadDir reads a catalog laid out as <dir>/<name>/<version>/component.yaml, with the policy
// file and the component's binary beside each component.yaml. Names and versions must match
// their directories. Files and hidden entries at the name and version levels are ignored.
// Problems in definitions are reported as manifests.Errors (one per file, joined).
func LoadDir(dir string) (*Catalog, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load components from %s: %w", dir, err)
	}
	names, err := subdirs(abs)
	if err != nil {
		return nil, fmt.Errorf("load components: %w", err)
	}
	c := &Catalog{byName: map[string][]*Definition{}}
	var errs []error
	for _, name := range names {
		versions, err := subdirs(filepath.Join(abs, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("load components: %w", err))
			continue
		}
		for _, ver := range versions {
			def, err := loadVersionDir(filepath.Join(abs, name, ver), name, ver)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if old, ok := c.Lookup(def.Name, def.Version); ok {
				errs = append(errs, fmt.Errorf("%s: version %s of %s is also defined in %s", def.Dir, def.Version, def.Name, old.Dir))
				continue
			}
			c.add(def)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func loadVersionDir(dir, name, ver string) (*Definition, error) {
	file := filepath.Join(dir, DefinitionFile)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load component %s %s: %w", name, ver, err)
	}
	def, err := parseDefinition(file, data, source{
		dirName:    name,
		dirVersion: ver,
		readPolicy: func(p string) ([]byte, error) {
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				return nil, fmt.Errorf("cannot read %s beside %s", p, DefinitionFile)
			}
			return b, nil
		},
		checkBinary: func(bin string) error {
			fi, err := os.Stat(filepath.Join(dir, bin))
			switch {
			case err != nil:
				return fmt.Errorf("binary %q not found beside %s", bin, DefinitionFile)
			case !fi.Mode().IsRegular():
				return fmt.Errorf("binary %q is not a regular file", bin)
			case fi.Mode().Perm()&0o111 == 0:
				return fmt.Errorf("binary %q is not executable (chmod +x it)", bin)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	def.Dir = dir
	return def, nil
}

// subdirs lists the visible directories in dir, sorted.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// add inserts def, replacing a definition of the same name and version.
func (c *Catalog) add(def *Definition) {
	list := c.byName[def.Name]
	i, found := slices.BinarySearchFunc(list, def.Version, func(d *Definition, v *version.Version) int {
		return d.Version.Compare(v)
	})
	if found {
		list[i] = def
	} else {
		list = slices.Insert(list, i, def)
	}
	c.byName[def.Name] = list
}

// Merge returns a new catalog holding the definitions of c and o; where both define the same
// name and version, o's definition wins. Either may be nil.
func (c *Catalog) Merge(o *Catalog) *Catalog {
	out := &Catalog{byName: map[string][]*Definition{}}
	for _, src := range []*Catalog{c, o} {
		for _, def := range src.Definitions() {
			out.add(def)
		}
	}
	return out
}

// Names returns the component names, sorted.
func (c *Catalog) Names() []string {
	if c == nil {
		return nil
	}
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Versions returns the versions of the named component in ascending order (nil if unknown).
func (c *Catalog) Versions(name string) []*version.Version {
	if c == nil {
		return nil
	}
	var out []*version.Version
	for _, d := range c.byName[name] {
		out = append(out, d.Version)
	}
	return out
}

// Definitions returns every definition, by name and then ascending version.
func (c *Catalog) Definitions() []*Definition {
	var out []*Definition
	for _, n := range c.Names() {
		out = append(out, c.byName[n]...)
	}
	return out
}

// Lookup returns the definition of name at exactly version v.
func (c *Catalog) Lookup(name string, v *version.Version) (*Definition, bool) {
	if c == nil || v == nil {
		return nil, false
	}
	for _, d := range c.byName[name] {
		if d.Version.Equal(v) {
			return d, true
		}
	}
	return nil, false
}

// Settings names the variables a service must set for a component version; it lets the
// manifest check components.<name>.settings.
func (c *Catalog) Settings(name string, v *version.Version) []string {
	if d, ok := c.Lookup(name, v); ok {
		return slices.Clone(d.Settings)
	}
	return nil
}

// OptionalSettings names the variables a service may set for a component version.
func (c *Catalog) OptionalSettings(name string, v *version.Version) []string {
	if d, ok := c.Lookup(name, v); ok {
		return slices.Clone(d.OptionalSettings)
	}
	return nil
}

// Resolve returns the definitions a manifest resolved its components to, in the same order.
func (c *Catalog) Resolve(rcs []manifests.ResolvedComponent) ([]*Definition, error) {
	out := make([]*Definition, 0, len(rcs))
	for _, rc := range rcs {
		d, ok := c.Lookup(rc.Name, rc.Version)
		if !ok {
			return nil, fmt.Errorf("component %s %s is not in the catalog", rc.Name, rc.Version)
		}
		out = append(out, d)
	}
	return out, nil
}

// Policy returns the bytes of d's IAM policy document, read and checked when the catalog was
// loaded. d must belong to c (looked up by name and version).
func (c *Catalog) Policy(d *Definition) ([]byte, error) {
	if d == nil {
		return nil, errors.New("policy of a nil component definition")
	}
	own, ok := c.Lookup(d.Name, d.Version)
	if !ok {
		return nil, fmt.Errorf("policy of %s %s: not in this catalog", d.Name, d.Version)
	}
	return slices.Clone(own.policy), nil
}
