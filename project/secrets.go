package project

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/envexpand"
	"github.com/kilnhq/kiln/releases"
)

// SecretEncrypter is a target whose stack can encrypt a secret with the stack's secrets
// provider. manager is how the stored ciphertexts were made (nil when none were); the
// returned manager is what to store with the new ciphertext.
type SecretEncrypter interface {
	EncryptSecret(ctx context.Context, manager json.RawMessage, name string, value []byte) (ciphertext string, newManager json.RawMessage, err error)
}

// SecretStatus is one secret as `kiln secret list` shows it: never its value.
type SecretStatus struct {
	Name string `json:"name"`
	// Declared says the manifest declares it; Set that a value is stored.
	Declared bool `json:"declared"`
	Set      bool `json:"set"`
	// SetAt, User and Host say when and by whom it was last set.
	SetAt time.Time `json:"setAt,omitzero"`
	User  string    `json:"user,omitempty"`
	Host  string    `json:"host,omitempty"`
}

// SecretDeclared refuses a secret the manifest does not declare: a typo must not store a
// value nothing reads.
func (p *Project) SecretDeclared(name string) error {
	if slices.Contains(p.Manifest.Secrets, name) {
		return nil
	}
	known := "it declares none"
	if len(p.Manifest.Secrets) > 0 {
		known = "it declares " + strings.Join(p.Manifest.Secrets, ", ")
	}
	return &InputError{Msg: fmt.Sprintf("%s: secret %s is not declared in the manifest's secrets list (%s)", p.Manifest.File, name, known)}
}

// SetSecret encrypts value with the stack's secrets provider (through enc, the opened
// target) and stores the ciphertext, with who set it and when, under a new secrets
// version: the next rollout replaces the instances.
func (p *Project) SetSecret(ctx context.Context, enc SecretEncrypter, name string, value []byte) error {
	if err := p.SecretDeclared(name); err != nil {
		return err
	}
	if len(value) == 0 {
		return &InputError{Msg: fmt.Sprintf("secret %s: the value is empty", name)}
	}
	store, err := p.Releases()
	if err != nil {
		return err
	}
	before, err := store.LoadSecrets()
	if err != nil {
		return err
	}
	ct, manager, err := enc.EncryptSecret(ctx, before.Manager, name, value)
	if err != nil {
		return err
	}
	who := releases.CurrentHolder("kiln secret set")
	_, err = store.UpdateSecrets(func(doc *releases.Secrets) error {
		if len(doc.Manager) > 0 && !bytes.Equal(doc.Manager, before.Manager) {
			return fmt.Errorf("secret %s: the stack's secrets were re-keyed while it was being encrypted; run kiln secret set again", name)
		}
		doc.Manager = manager
		doc.Values[name] = releases.Secret{Ciphertext: ct, SetAt: time.Now().UTC().Round(time.Second), User: who.User, Host: who.Host}
		return nil
	})
	return err
}

// RemoveSecret removes a stored secret. The next rollout of a manifest that still
// declares it is refused until it is set again.
func (p *Project) RemoveSecret(name string) error {
	store, err := p.Releases()
	if err != nil {
		return err
	}
	_, err = store.UpdateSecrets(func(doc *releases.Secrets) error {
		if _, ok := doc.Values[name]; !ok {
			return &InputError{Msg: fmt.Sprintf("secret %s is not set (kiln secret list shows those that are)", name)}
		}
		delete(doc.Values, name)
		return nil
	})
	return err
}

// Secrets lists the declared and the stored secrets, by name, without values.
func (p *Project) Secrets() ([]SecretStatus, error) {
	store, err := p.Releases()
	if err != nil {
		return nil, err
	}
	doc, err := store.LoadSecrets()
	if err != nil {
		return nil, err
	}
	byName := map[string]*SecretStatus{}
	for _, n := range p.Manifest.Secrets {
		byName[n] = &SecretStatus{Name: n, Declared: true}
	}
	for n, s := range doc.Values {
		st := byName[n]
		if st == nil {
			st = &SecretStatus{Name: n}
			byName[n] = st
		}
		st.Set, st.SetAt, st.User, st.Host = true, s.SetAt, s.User, s.Host
	}
	out := make([]SecretStatus, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// secretsVersion returns the version of the secrets the manifest's release runs with,
// or an *InputError naming every declared secret that has no value. A service
// without secrets has none: a secret set for nothing rolls nothing.
func (p *Project) secretsVersion(store releases.Store) (string, error) {
	if len(p.Manifest.Secrets) == 0 {
		return "", nil
	}
	doc, err := store.LoadSecrets()
	if err != nil {
		return "", err
	}
	var unset []string
	for _, n := range p.Manifest.Secrets {
		if _, ok := doc.Values[n]; !ok {
			unset = append(unset, n)
		}
	}
	if len(unset) > 0 {
		var cmds []string
		for _, n := range unset {
			cmds = append(cmds, "kiln secret set "+n)
		}
		return "", &InputError{Msg: fmt.Sprintf("%s: secrets not set: %s; nothing was baked or deployed: run %s",
			p.Manifest.File, strings.Join(unset, ", "), strings.Join(cmds, ", then "))}
	}
	return doc.Version, nil
}

// secretsOffCommandLine refuses a component setting that holds a secret when the
// component's unit passes that setting on its command line: the component must read it
// from its environment instead.
func secretsOffCommandLine(component string, args []string, settings map[string]string) error {
	for name, v := range settings {
		if _, any := envexpand.SecretRefs(v); !any {
			continue
		}
		for _, a := range args {
			if strings.Contains(a, "${"+name+"}") {
				return &InputError{Msg: fmt.Sprintf("components.%s.settings.%s holds a secret, but %s passes %s on its command line, where any process can read it; give it a setting it reads from its environment", component, name, component, name)}
			}
		}
	}
	return nil
}
