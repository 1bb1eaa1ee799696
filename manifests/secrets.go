package manifests

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/internal/envexpand"
	"github.com/kilnhq/kiln/internal/strictyaml"
)

// A service's secrets are declared by name at the top of the manifest and referenced as
// ${secret:NAME} from app.env values and component settings:
//
//	secrets: [DB_PASSWORD]
//	app:
//	  env:
//	    DATABASE_URL: "postgres://app:${secret:DB_PASSWORD}@db/app"
//
// The image keeps the reference, never the value: kiln-boot replaces it when the instance
// starts, in the environment of the units that refer to it. A command line never carries
// a secret, so app.args may not refer to one, nor to an app.env variable that holds one.

// secretRef is one ${secret:NAME} found in the manifest, where it was written.
type secretRef struct {
	name string
	node *yaml.Node
	path string
}

// secrets decodes the top-level secrets: list of names.
func (p *parser) secrets(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	items, paths := p.d.Seq(n, "secrets")
	names := []string{}
	for i, it := range items {
		s, ok := p.d.String(it, paths[i])
		if !ok {
			continue
		}
		switch {
		case !envKeyRE.MatchString(s):
			p.d.Errorf(it, paths[i], "invalid secret name %q (use A-Z, 0-9 and _, not starting with a digit)", s)
		case slices.Contains(names, s):
			p.d.Errorf(it, paths[i], "secret %s is declared twice", s)
		default:
			names = append(names, s)
		}
		p.secretNodes = append(p.secretNodes, secretRef{name: s, node: it, path: paths[i]})
	}
	slices.Sort(names)
	return names
}

// noteSecretRefs records the secrets a value refers to, for checkSecrets. Values the app or
// a component gets in its environment may refer to secrets.
func (p *parser) noteSecretRefs(n *yaml.Node, path, value string) {
	names, _ := envexpand.SecretRefs(value) // a malformed one is reported by checkVars
	for _, name := range names {
		p.secretRefs = append(p.secretRefs, secretRef{name: name, node: n, path: path})
	}
}

// refuseSecretInArgs reports an argument that would put a secret on a command line:
// directly, or through an app.env variable that holds one.
func (p *parser) refuseSecretInArgs(n *yaml.Node, path, arg string, env map[string]string) {
	if _, any := envexpand.SecretRefs(arg); any {
		p.d.Errorf(n, path, "a secret cannot be passed on the command line, where any process can read it; pass it in app.env")
		return
	}
	for name, v := range env {
		if _, any := envexpand.SecretRefs(v); any && strings.Contains(arg, "${"+name+"}") {
			p.d.Errorf(n, path, "${%s} holds a secret, which cannot be passed on the command line; let the program read it from its environment", name)
		}
	}
}

// checkSecrets holds references and declarations to each other: every referenced secret
// is declared, and every declared one is referenced.
func (p *parser) checkSecrets(declared []string) {
	used := map[string]bool{}
	for _, r := range p.secretRefs {
		used[r.name] = true
		if !slices.Contains(declared, r.name) {
			msg := "secret " + r.name + " is not declared: add it to the top-level secrets list"
			if s := strictyaml.Suggest(r.name, declared); s != "" {
				msg = "secret " + r.name + " is not declared (did you mean " + s + "?)"
			}
			p.d.Errorf(r.node, r.path, "%s", msg)
		}
	}
	for _, d := range p.secretNodes {
		if !used[d.name] && envKeyRE.MatchString(d.name) {
			p.d.Errorf(d.node, d.path, "secret %s is declared but nothing refers to it (write ${secret:%s} in app.env or a component setting, or remove it)", d.name, d.name)
		}
	}
}
