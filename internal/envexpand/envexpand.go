// Package envexpand expands ${NAME} references in unit arguments and environment. The
// manifest decoder and the component catalog validate with it and `kiln boot` expands
// with it, so what validates is exactly what runs. ${secret:NAME} names one of the
// service's secrets: lookup is asked for "secret:NAME", so a caller that has no secrets
// reports it as not set.
package envexpand

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	nameRE    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	portVarRE = regexp.MustCompile(`^KILN_PORT_[A-Z]([A-Z0-9_]*[A-Z0-9])?$`)
)

// instanceVars are the variables kiln-boot gives every unit of an instance.
var instanceVars = []string{"PORT", "HOST", "KILN_LISTEN", "KILN_SERVICE", "KILN_VERSION", "KILN_INSTANCE", "KILN_IMAGE_DIR", "KILN_DATA_DIR"}

// InstanceVars returns the names of the variables kiln-boot gives every unit of an
// instance, besides KILN_PORT_<NAME> for each named port.
func InstanceVars() []string { return slices.Clone(instanceVars) }

// IsInstanceVar reports whether kiln-boot gives every unit the variable name: one of
// InstanceVars, or KILN_PORT_<NAME>.
func IsInstanceVar(name string) bool {
	return slices.Contains(instanceVars, name) || portVarRE.MatchString(name)
}

// Escape is how a literal "${" is written: "$${" expands to "${" and is no reference.
const Escape = "$${"

// SecretPrefix starts the name of a reference to a secret: ${secret:DB_PASSWORD}.
const SecretPrefix = "secret:"

// validName reports whether name (what is between ${ and }) is a variable or a secret.
func validName(name string) bool {
	return nameRE.MatchString(strings.TrimPrefix(name, SecretPrefix))
}

// SecretRefs returns the names of the secrets s refers to with ${secret:NAME}, in order,
// and whether s has any reference to a secret at all (even a malformed one). An escaped
// "$${secret:" is no reference.
func SecretRefs(s string) (names []string, any bool) {
	for {
		i := strings.Index(s, "${"+SecretPrefix)
		if i < 0 {
			return names, any
		}
		if i > 0 && s[i-1] == '$' {
			s = s[i+2:]
			continue
		}
		any = true
		s = s[i+2:]
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return names, any
		}
		if name := s[:end]; validName(name) {
			names = append(names, strings.TrimPrefix(name, SecretPrefix))
		}
		s = s[end+1:]
	}
}

// Error is a reference that cannot be expanded.
type Error struct {
	// Ref is the reference as written, e.g. "${PORT" or "${lower}".
	Ref string
	// Unset is true when the reference is well formed but the variable is not set.
	Unset bool
}

func (e *Error) Error() string {
	switch {
	case e.Unset:
		return fmt.Sprintf("%s is not set", e.Ref)
	case !strings.HasSuffix(e.Ref, "}"):
		return fmt.Sprintf("unclosed ${ in %q", e.Ref)
	}
	return fmt.Sprintf("invalid variable reference %q (write ${NAME} or ${secret:NAME} with A-Z, 0-9 and _)", e.Ref)
}

// Name returns the variable name of a well-formed reference.
func (e *Error) Name() string { return strings.TrimSuffix(strings.TrimPrefix(e.Ref, "${"), "}") }

// Expand replaces every ${NAME} in s by lookup(NAME). Only the braced form is special:
// "$${" writes a literal "${", and any other '$' stays as it is. A variable that is not set
// is an error, never an empty string.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i]) // up to the escape's first '$', the literal one
			b.WriteString("{")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", &Error{Ref: s[i:]}
		}
		ref := s[i : i+end+1]
		name := ref[2 : len(ref)-1]
		if !validName(name) {
			return "", &Error{Ref: ref}
		}
		v, ok := lookup(name)
		if !ok {
			return "", &Error{Ref: ref, Unset: true}
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+end+1:]
	}
}
