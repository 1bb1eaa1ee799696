package stacks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
)

// A stack's secrets are Pulumi config values encrypted by the stack's secrets provider:
// the program reads them as secrets (config.TrySecret), so they enter the state
// encrypted, and the engine gets the plain value only in memory. Pulumi keeps config in
// Pulumi.<stack>.yaml in the work directory, which is per host; kiln keeps the
// ciphertexts with the stack instead (package releases) and writes them back into the
// work directory before every operation with UseSecrets.

// secretNamespace is the config namespace of the secrets. It must name no provider: the
// engine hands a provider plugin the config of its own namespace, decrypted, in its
// environment (PULUMI_CONFIG) — the project's namespace "kiln" is also the provider's.
const secretNamespace = "kiln-secret"

// SecretConfigKey is the config key of the named secret, as a program reads it.
func SecretConfigKey(name string) string { return secretNamespace + ":" + name }

func secretKey(name string) config.Key { return config.MustMakeKey(secretNamespace, name) }

// secretsManager is what a stack's settings say about how its config secrets are
// encrypted. Every host must use the same, or it cannot read the others' ciphertexts:
// it travels with the ciphertexts, opaque to whoever stores them.
type secretsManager struct {
	Provider       string `json:"provider,omitempty"`
	EncryptedKey   string `json:"encryptedKey,omitempty"`
	EncryptionSalt string `json:"encryptionSalt,omitempty"`
}

func (s *Stack) settings(ctx context.Context) (*workspace.ProjectStack, error) {
	ps, err := s.ws.StackSettings(ctx, s.opts.Stack)
	if err != nil {
		// No settings in this work directory yet (another host made the stack).
		ps = &workspace.ProjectStack{}
	}
	if ps.Config == nil {
		ps.Config = config.Map{}
	}
	return ps, nil
}

// useManager puts manager (if any) into the settings.
func useManager(ps *workspace.ProjectStack, manager json.RawMessage) error {
	if len(manager) == 0 {
		return nil
	}
	var m secretsManager
	if err := json.Unmarshal(manager, &m); err != nil {
		return fmt.Errorf("secrets manager settings: %w", err)
	}
	ps.SecretsProvider, ps.EncryptedKey, ps.EncryptionSalt = m.Provider, m.EncryptedKey, m.EncryptionSalt
	return nil
}

// UseSecrets makes the stack's config hold exactly these secrets (name to ciphertext),
// encrypted as manager says, before an operation runs a program that reads them.
func (s *Stack) UseSecrets(ctx context.Context, manager json.RawMessage, ciphertexts map[string]string) error {
	ps, err := s.settings(ctx)
	if err != nil {
		return err
	}
	if err := useManager(ps, manager); err != nil {
		return fmt.Errorf("stack %s: %w", s.opts.Stack, err)
	}
	for k := range ps.Config {
		if k.Namespace() == secretNamespace {
			delete(ps.Config, k)
		}
	}
	for name, ct := range ciphertexts {
		ps.Config[secretKey(name)] = config.NewSecureValue(ct)
	}
	if err := s.ws.SaveStackSettings(ctx, s.opts.Stack, ps); err != nil {
		return fmt.Errorf("stack %s: %w", s.opts.Stack, err)
	}
	return nil
}

// EncryptSecret encrypts value with the stack's secrets provider, as manager (the settings
// earlier ciphertexts were made with, if any) says, and returns the ciphertext and the
// manager settings to keep with it. The value goes to the pinned Pulumi CLI on its
// standard input: never in argv, never in a file.
func (s *Stack) EncryptSecret(ctx context.Context, manager json.RawMessage, name string, value []byte) (string, json.RawMessage, error) {
	ps, err := s.settings(ctx)
	if err != nil {
		return "", nil, err
	}
	if err := useManager(ps, manager); err != nil {
		return "", nil, fmt.Errorf("stack %s: %w", s.opts.Stack, err)
	}
	if err := s.ws.SaveStackSettings(ctx, s.opts.Stack, ps); err != nil {
		return "", nil, fmt.Errorf("stack %s: %w", s.opts.Stack, err)
	}
	key := SecretConfigKey(name)
	var stderr bytes.Buffer
	cmd := s.engineCmd(ctx, &stderr, "config", "set", "--secret", "--raw", key)
	cmd.Stdin = bytes.NewReader(value)
	if err := cmd.Run(); err != nil {
		return "", nil, fmt.Errorf("encrypt secret %s: %w", name, newCLIError("config set", err, &stderr))
	}
	if ps, err = s.settings(ctx); err != nil {
		return "", nil, err
	}
	v, ok := ps.Config[secretKey(name)]
	if !ok || !v.Secure() {
		return "", nil, fmt.Errorf("encrypt secret %s: the engine stored no ciphertext", name)
	}
	ct, err := v.Value(config.NopDecrypter)
	if err != nil {
		return "", nil, fmt.Errorf("encrypt secret %s: %w", name, err)
	}
	m, err := json.Marshal(secretsManager{Provider: ps.SecretsProvider, EncryptedKey: ps.EncryptedKey, EncryptionSalt: ps.EncryptionSalt})
	if err != nil {
		return "", nil, err
	}
	return ct, m, nil
}
