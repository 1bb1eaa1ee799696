package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxSize is the largest file the decoder accepts (256 KiB). Manifests are a few hundred bytes; the bound
// keeps a runaway input from costing the parser unbounded time and memory.
const MaxSize = 256 << 10

// Decoder collects positioned errors while the caller walks one YAML file.
// The zero value is not usable; create one with NewDecoder.
type Decoder struct {
	file string
	errs Errors
}

// NewDecoder returns a Decoder whose errors name file.
func NewDecoder(file string) *Decoder {
	return &Decoder{file: file}
}

// Errorf records a problem at node n (line and column clamped to at least 1) for the field path.
func (d *Decoder) Errorf(n *yaml.Node, path, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = max(n.Line, 1), max(n.Column, 1)
	}
	d.errorAt(line, col, path, fmt.Sprintf(format, args...))
}

func (d *Decoder) errorAt(line, col int, path, msg string) {
	if path == "" {
		path = DocumentPath
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: max(line, 1), Column: max(col, 1), Path: path, Msg: msg})
}

// Failed reports whether any problem has been recorded so far.
func (d *Decoder) Failed() bool { return len(d.errs) > 0 }

// Err returns nil or every recorded problem as Errors sorted by position.
func (d *Decoder) Err() error {
	if len(d.errs) == 0 {
		return nil
	}
	es := slices.Clone(d.errs)
	sortErrors(es)
	return es
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Document parses data, which must hold exactly one YAML document whose top level is a mapping,
// and returns that mapping. On any problem it records an error and returns nil. what names the
// fields expected at the top level, for the message about a non-mapping document.
func (d *Decoder) Document(data []byte, what string) *yaml.Node {
	if len(data) > MaxSize {
		d.errorAt(1, 1, DocumentPath, fmt.Sprintf("the file is %d bytes, more than the %d accepted", len(data), MaxSize))
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := decodeSafely(dec, &doc)
	if errors.Is(err, io.EOF) {
		d.errorAt(1, 1, DocumentPath, "the file is empty; it must be a mapping of "+what)
		return nil
	}
	if err != nil {
		d.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	switch err := decodeSafely(dec, &extra); {
	case err == nil:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		d.Errorf(at, DocumentPath, "a second YAML document starts here; the file must hold exactly one document")
	case !errors.Is(err, io.EOF):
		d.syntaxError(err)
	}
	if len(doc.Content) == 0 {
		d.errorAt(1, 1, DocumentPath, "the file is empty; it must be a mapping of "+what)
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == nullTag {
		d.Errorf(root, DocumentPath, "the document is empty (null); it must be a mapping of %s", what)
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.Errorf(root, DocumentPath, "the document must be a mapping of %s, got %s", what, Describe(root))
		return nil
	}
	return root
}

func (d *Decoder) syntaxError(err error) {
	msg := err.Error()
	line := 1
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		if l, convErr := strconv.Atoi(m[1]); convErr == nil {
			line = l
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errorAt(line, 1, DocumentPath, "invalid YAML: "+msg)
}

// decodeSafely turns a panic inside the YAML parser into an error: a malformed file must give
// the user a message, never crash kiln.
func decodeSafely(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the parser failed on this input: %v", r)
		}
	}()
	return dec.Decode(n)
}

const (
	nullTag  = "!!null"
	strTag   = "!!str"
	intTag   = "!!int"
	floatTag = "!!float"
	boolTag  = "!!bool"
	mergeTag = "!!merge"
)

// Describe names the kind of a node for "expected X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch t := n.ShortTag(); t {
	case strTag:
		return fmt.Sprintf("the string %q", Short(n.Value))
	case intTag:
		return "the integer " + Short(n.Value)
	case floatTag:
		return "the number " + Short(n.Value)
	case boolTag:
		return "the boolean " + n.Value
	case nullTag:
		return "nothing (null)"
	case "!!timestamp":
		return "the timestamp " + Short(n.Value)
	default:
		return "a value tagged " + Short(t)
	}
}

// Short cuts s to at most 60 bytes (on a rune boundary) for quoting in messages: an error
// should point at a value, not repeat a huge one.
func Short(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	cut := limit - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// usable reports whether n can be decoded at all: aliases are refused (with an error), since
// expanding them is how a small file becomes a huge one, and a position inside an anchor says
// little about where the alias was used.
func (d *Decoder) usable(n *yaml.Node, path string) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.AliasNode {
		d.Errorf(n, path, "aliases (*%s) are not supported; write the value out", n.Value)
		return false
	}
	return true
}

// isNull reports whether n is an explicit or implicit YAML null (`key:` with no value).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag
}

// String decodes a string scalar. Numbers, booleans and nulls are refused: a field that holds
// names or paths must be written as text.
func (d *Decoder) String(n *yaml.Node, path string) (string, bool) {
	if !d.usable(n, path) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != strTag {
		d.Errorf(n, path, "expected a string, got %s", Describe(n))
		return "", false
	}
	return n.Value, true
}

// Literal decodes any non-null scalar (string, number or boolean) as the text written in the
// file. It serves fields where `1`, `true` or `1.4` are meant as text: env values, args,
// versions and version constraints.
func (d *Decoder) Literal(n *yaml.Node, path string) (string, bool) {
	if !d.usable(n, path) {
		return "", false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case strTag, intTag, floatTag, boolTag:
			return n.Value, true
		}
	}
	d.Errorf(n, path, "expected a string, got %s", Describe(n))
	return "", false
}

// Int decodes an integer within [lo, hi].
func (d *Decoder) Int(n *yaml.Node, path string, lo, hi int) (int, bool) {
	if !d.usable(n, path) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != intTag {
		d.Errorf(n, path, "expected an integer, got %s", Describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		d.Errorf(n, path, "invalid integer %q", n.Value)
		return 0, false
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.Errorf(n, path, "must be between %d and %d, got %d", lo, hi, v)
		return 0, false
	}
	if int(v) < lo || int(v) > hi {
		if hi == math.MaxInt32 {
			d.Errorf(n, path, "must be at least %d, got %d", lo, v)
		} else {
			d.Errorf(n, path, "must be between %d and %d, got %d", lo, hi, v)
		}
		return 0, false
	}
	return int(v), true
}

// Bool decodes true or false.
func (d *Decoder) Bool(n *yaml.Node, path string) (bool, bool) {
	if !d.usable(n, path) {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != boolTag {
		d.Errorf(n, path, "expected true or false, got %s", Describe(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.Errorf(n, path, "invalid boolean %q (write true or false)", n.Value)
		return false, false
	}
	return v, true
}

// Duration decodes a Go duration string such as 2s, 500ms or 1h30m.
func (d *Decoder) Duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.Literal(n, path)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf(n, path, "invalid duration %q (write a Go duration such as 2s, 500ms or 1m30s)", s)
		return 0, false
	}
	return v, true
}

// Seq decodes a list and returns its items with their paths (path[0], path[1], ...).
// A null value is an empty list.
func (d *Decoder) Seq(n *yaml.Node, path string) ([]*yaml.Node, []string) {
	if !d.usable(n, path) || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, path, "expected a list, got %s", Describe(n))
		return nil, nil
	}
	paths := make([]string, len(n.Content))
	for i := range n.Content {
		paths[i] = fmt.Sprintf("%s[%d]", path, i)
	}
	return n.Content, paths
}

// Join appends a field name to a path.
func Join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
