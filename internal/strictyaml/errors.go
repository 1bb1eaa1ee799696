// Package strictyaml decodes YAML documents strictly: it walks yaml.v3 nodes field by field and
// collects every problem it finds as an Error that names the file, line, column and field path.
// kiln's manifest (kiln.yaml) and component definitions (component.yaml) are decoded with it.
package strictyaml

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// DocumentPath is the Path of errors that concern the document as a whole (empty file, syntax
// error, several documents) rather than one field.
const DocumentPath = "(document)"

// Error is one problem found in a YAML file, at a 1-based line and column.
type Error struct {
	File   string // the file name as given by the caller
	Line   int    // 1-based line of the offending node
	Column int    // 1-based column of the offending node
	Path   string // field path such as fleet.health.interval, app.args[0] or DocumentPath
	Msg    string // what is wrong, and where useful what to write instead
}

// Error formats the problem as "file:line:column: path: message".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Path, e.Msg)
}

// Errors is every problem found in one file, sorted by position. It is returned as a single
// error; errors.As finds both the Errors value and (through Unwrap) its first *Error.
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems, so that errors.As can reach a *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders problems by position; problems at the same place keep the order in which the
// decoder found them.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}
