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

// decodeSecrets reads a secrets document; where names it in errors.
func decodeSecrets(data []byte, stack, where string) (Secrets, error) {
	var doc Secrets
	if err := json.Unmarshal(data, &doc); err != nil {
		return Secrets{}, fmt.Errorf("read secrets of stack %s: %s: %w", stack, where, err)
	}
	if doc.Values == nil {
		doc.Values = map[string]Secret{}
	}
	return doc, nil
}

// changeSecrets applies fn to doc and renews its version, unless fn set one; it returns
// the document to save.
func changeSecrets(doc *Secrets, fn func(*Secrets) error) ([]byte, error) {
	prev := doc.Version
	if err := fn(doc); err != nil {
		return nil, err
	}
	if doc.Version == prev {
		doc.Version = NewSecretsVersion()
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	return append(data, '\n'), err
}

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
	return decodeSecrets(data, s.stack, p)
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
		data, err := changeSecrets(&doc, fn)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(s.path(secretsFile), data, 0o600); err != nil {
			return fmt.Errorf("save secrets of stack %s: %w", s.stack, err)
		}
		out = doc
		return nil
	})
	return out, err
}

// secrets reads the S3Store's secrets document with its ETag.
func (s *S3Store) secrets(ctx context.Context) (Secrets, string, bool, error) {
	data, etag, found, err := s.get(ctx, secretsFile)
	if err != nil {
		return Secrets{}, "", false, fmt.Errorf("read secrets of stack %s: %w", s.stack, err)
	}
	if !found {
		return Secrets{Values: map[string]Secret{}}, "", false, nil
	}
	doc, err := decodeSecrets(data, s.stack, "s3://"+s.bucket+"/"+s.key(secretsFile))
	return doc, etag, true, err
}

// LoadSecrets implements [Store.LoadSecrets].
func (s *S3Store) LoadSecrets() (Secrets, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	doc, _, _, err := s.secrets(ctx)
	return doc, err
}

// UpdateSecrets implements [Store.UpdateSecrets]: read, fn and a conditional write (on
// the ETag read, or create-only), again from the read if another writer got in between;
// fn may therefore run more than once.
func (s *S3Store) UpdateSecrets(fn func(*Secrets) error) (Secrets, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	for range 10 {
		doc, etag, found, err := s.secrets(ctx)
		if err != nil {
			return Secrets{}, err
		}
		data, err := changeSecrets(&doc, fn)
		if err != nil {
			return Secrets{}, err
		}
		_, err = s.put(ctx, secretsFile, data, !found, etag)
		if errors.Is(err, errPrecondition) {
			continue
		}
		if err != nil {
			return Secrets{}, fmt.Errorf("save secrets of stack %s: %w", s.stack, err)
		}
		return doc, nil
	}
	return Secrets{}, fmt.Errorf("save secrets of stack %s: the secrets kept changing", s.stack)
}
