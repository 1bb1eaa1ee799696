package strictyaml

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Map walks one YAML mapping strictly. Ask for each known field with Field or Required, then call
// Finish, which reports every key nobody asked for. Duplicate keys, non-string keys, aliases and
// merge keys (<<) are reported when the Map is created.
type Map struct {
	d      *Decoder
	node   *yaml.Node
	path   string
	ok     bool // the node is a mapping (or null); false suppresses follow-up errors
	order  []Entry
	byName map[string]Entry
	known  []string
}

// Entry is one key/value pair of a mapping, with the path of the value.
type Entry struct {
	Name  string
	Key   *yaml.Node
	Value *yaml.Node
	Path  string
}

// Map starts walking n as a mapping at path. A null value (`key:` with nothing after it) is an
// empty mapping, so required fields inside it are reported as missing at its position.
func (d *Decoder) Map(n *yaml.Node, path string) *Map {
	m := &Map{d: d, node: n, path: path, byName: map[string]Entry{}}
	if !d.usable(n, path) {
		return m
	}
	if isNull(n) {
		m.ok = true
		return m
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, path, "expected a mapping, got %s", Describe(n))
		return m
	}
	m.ok = true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.AliasNode:
			d.Errorf(k, path, "aliases (*%s) are not supported as keys; write the key out", k.Value)
			continue
		case k.Kind != yaml.ScalarNode:
			d.Errorf(k, path, "keys must be plain names, got %s", Describe(k))
			continue
		case k.ShortTag() == mergeTag:
			d.Errorf(k, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		e := Entry{Name: k.Value, Key: k, Value: v, Path: Join(path, k.Value)}
		if first, dup := m.byName[e.Name]; dup {
			d.Errorf(k, e.Path, "duplicate key %q (first set on line %d)", Short(e.Name), first.Key.Line)
			continue
		}
		m.byName[e.Name] = e
		m.order = append(m.order, e)
	}
	return m
}

// OK reports whether the node was a usable mapping (or null). When it was not, an error has
// been recorded and the caller should not report follow-up problems about its fields.
func (m *Map) OK() bool { return m.ok }

// Node is the mapping node itself (nil if there was none), for positioning errors about it.
func (m *Map) Node() *yaml.Node { return m.node }

// Path is the field path of the mapping.
func (m *Map) Path() string { return m.path }

// Field marks name as a known field and returns its value, or nil if it is absent.
func (m *Map) Field(name string) *yaml.Node {
	m.known = append(m.known, name)
	return m.byName[name].Value
}

// Required is Field, and records "required field is missing" at the mapping when name is absent.
func (m *Map) Required(name string) *yaml.Node {
	v := m.Field(name)
	if v == nil && m.ok {
		m.d.Errorf(m.node, Join(m.path, name), "required field is missing")
	}
	return v
}

// Key returns the key node of a field (nil if absent), for errors about the key itself.
func (m *Map) Key(name string) *yaml.Node { return m.byName[name].Key }

// Entries returns every key/value pair in file order, for mappings with free-form keys (env
// variables, component names). It marks all keys as known.
func (m *Map) Entries() []Entry {
	for _, e := range m.order {
		m.known = append(m.known, e.Name)
	}
	return m.order
}

// Finish reports every key that was not asked for, naming the known fields and the closest one
// when the key looks like a typo.
func (m *Map) Finish() {
	known := map[string]bool{}
	for _, k := range m.known {
		known[k] = true
	}
	for _, e := range m.order {
		if known[e.Name] {
			continue
		}
		msg := fmt.Sprintf("unknown field %q", Short(e.Name))
		if s := Suggest(e.Name, m.known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if len(m.known) > 0 {
			msg += "; known fields: " + strings.Join(m.known, ", ")
		}
		m.d.Errorf(e.Key, e.Path, "%s", msg)
	}
}

// Suggest returns the candidate closest to name when it is close enough to be a likely typo
// (same letters in another case, or a small edit distance), else "".
func Suggest(name string, candidates []string) string {
	best, bestDist := "", -1
	lname := strings.ToLower(name)
	for _, c := range candidates {
		limit := maxTypoDistance(max(len(name), len(c)))
		if abs(len(name)-len(c)) > limit {
			continue // the distance is at least the length difference
		}
		dist := levenshtein(lname, strings.ToLower(c))
		if dist > limit {
			continue
		}
		if bestDist < 0 || dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func abs(n int) int { return max(n, -n) }

func maxTypoDistance(n int) int {
	switch {
	case n <= 4:
		return 1
	case n <= 10:
		return 2
	default:
		return 3
	}
}

// levenshtein is the edit distance between a and b, in bytes; names are ASCII. Long inputs
// are cut short so that a hostile key cannot make this quadratic in the file size.
func levenshtein(a, b string) int {
	const limit = 64
	if len(a) > limit || len(b) > limit {
		if a == b {
			return 0
		}
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
