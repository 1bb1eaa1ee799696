package releases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
)

// Secrets is a stack's secrets document: the values `kiln secret set` stored, each
// encrypted by the stack's secrets provider, and what the store needs to decrypt them on
// any host. The store never sees a value in plain text.
type Secrets struct {
	// Version names this set of values: a random ID renewed on every change (never
	// derived from the values), so a release can say which secrets it runs with. Empty
	// while no secret was ever set.
	Version string `json:"version,omitempty"`
	// Manager is the secrets provider's settings the ciphertexts were made with (its
	// salt or encrypted key), opaque to the store: the Pulumi driver writes and reads it.
	Manager json.RawMessage `json:"manager,omitempty"`
	// Values maps a secret's name to its ciphertext and who set it when.
	Values map[string]Secret `json:"values,omitempty"`
}

// Secret is one stored secret.
type Secret struct {
	// Ciphertext is the value encrypted by the stack's secrets provider.
	Ciphertext string `json:"ciphertext"`
	// SetAt is when it was set; User and Host say who set it where.
	SetAt time.Time `json:"setAt"`
	User  string    `json:"user,omitempty"`
	Host  string    `json:"host,omitempty"`
}

// Clone returns a copy whose map may be changed freely.
func (s Secrets) Clone() Secrets {
	c := s
	c.Manager = append(json.RawMessage(nil), s.Manager...)
	c.Values = make(map[string]Secret, len(s.Values))
	for k, v := range s.Values {
		c.Values[k] = v
	}
	return c
}

// NewSecretsVersion returns a fresh secrets version: random, so that equal values set
// twice still make a new release, and so that it says nothing about the values.
func NewSecretsVersion() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// secretsFile is the FileStore's secrets document; like every file holding ciphertexts
// it is readable by its owner only.
const secretsFile = "secrets.json"

// LoadSecrets implements [Store.LoadSecrets].
func (s *FileStore) LoadSecrets() (Secrets, error) {
	p := s.path(secretsFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Secrets{Values: map[string]Secret{}}, nil
	}
	if err != nil {
		return Secrets{}, fmt.Errorf("read secrets of stack %s: %w", s.stack, err)
	}
	var doc Secrets
	if err := json.Unmarshal(data, &doc); err != nil {
		return Secrets{}, fmt.Errorf("read secrets of stack %s: %s: %w", s.stack, p, err)
	}
	if doc.Values == nil {
		doc.Values = map[string]Secret{}
	}
	return doc, nil
}

// UpdateSecrets implements [Store.UpdateSecrets]: the read, change and atomic rewrite of
// secrets.json run under the guard, so two writers never lose each other's secrets.
func (s *FileStore) UpdateSecrets(fn func(*Secrets) error) (Secrets, error) {
	var out Secrets
	err := s.withGuard(context.Background(), func() error {
		doc, err := s.LoadSecrets()
		if err != nil {
			return err
		}
		if err := fn(&doc); err != nil {
			return err
		}
		doc.Version = NewSecretsVersion()
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return fmt.Errorf("save secrets of stack %s: %w", s.stack, err)
		}
		if err := atomicfile.Write(s.path(secretsFile), append(data, '\n'), 0o600); err != nil {
			return fmt.Errorf("save secrets of stack %s: %w", s.stack, err)
		}
		out = doc
		return nil
	})
	return out, err
}
