package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/manifests"
)

// placeholder is ${NAME} in a component's policy document.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Policies returns the IAM policy document of each baked component, in the order of
// resolved, with its ${NAME} placeholders replaced by the component's settings, so the
// instance role is scoped to exactly the resources the service names (kiln-backup's table
// and bucket prefix, for example). A placeholder no setting fills is an error naming the
// component and the variable.
func Policies(resolved []manifests.ResolvedComponent, cat *components.Catalog) ([][]byte, error) {
	defs, err := cat.Resolve(resolved)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	var errs []error
	for i, d := range defs {
		doc, err := cat.Policy(d)
		if err != nil {
			return nil, err
		}
		b, err := substitute(doc, policyVars(resolved[i].Settings))
		if err != nil {
			errs = append(errs, fmt.Errorf("component %s %s: policy %s: %w", d.Name, d.Version, d.Policy, err))
			continue
		}
		out = append(out, b)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// policyVars are the variables a component's policy may name: its settings, and for a
// setting NAME_STORE that holds s3://bucket/prefix, NAME_BUCKET and NAME_PREFIX (how
// kiln-backup's policy names the bucket and prefix of KILN_BACKUP_STORE).
func policyVars(settings map[string]string) map[string]string {
	vars := map[string]string{}
	for k, v := range settings {
		vars[k] = v
		stem, ok := strings.CutSuffix(k, "_STORE")
		if !ok {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "s3" || u.Host == "" {
			continue
		}
		vars[stem+"_BUCKET"] = u.Host
		// A policy scopes a store to its prefix: without one, NAME_PREFIX stays unset and
		// a policy that names it is refused rather than granted the whole bucket.
		if p := strings.Trim(u.Path, "/"); p != "" {
			vars[stem+"_PREFIX"] = p
		}
	}
	return vars
}

// substitute replaces the placeholders in every string of a JSON document.
func substitute(doc []byte, vars map[string]string) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	missing := map[string]bool{}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case string:
			return placeholder.ReplaceAllStringFunc(x, func(m string) string {
				name := m[2 : len(m)-1]
				val, ok := vars[name]
				if !ok {
					missing[name] = true
					return m
				}
				return val
			})
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return x
	}
	v = walk(v)
	if len(missing) > 0 {
		var names []string
		for n := range missing {
			names = append(names, "${"+n+"}")
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%s not set by the component's settings", strings.Join(names, ", "))
	}
	return json.Marshal(v)
}
