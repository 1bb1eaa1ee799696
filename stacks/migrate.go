package stacks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
)

// MoveStateTo copies this stack's Pulumi state into dst, the same stack in another
// backend, re-encrypting its secrets with dst's secrets provider: the state is exported
// with its secrets in the clear to a 0600 file in the state directory, imported into dst
// (which encrypts them anew) and the file removed. The caller holds both stacks' locks.
func (s *Stack) MoveStateTo(ctx context.Context, dst *Stack) error {
	tmp, err := os.CreateTemp(s.opts.StateDir, ".state-move-*.json")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	var stderr bytes.Buffer
	if err := s.engineCmd(ctx, &stderr, "stack", "export", "--show-secrets", "--file", tmp.Name()).Run(); err != nil {
		return newCLIError("stack export", err, &stderr)
	}
	raw, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	var dep map[string]any
	if err := json.Unmarshal(raw, &dep); err != nil {
		return fmt.Errorf("stack export: %w", err)
	}
	// The secrets, now in the clear, are encrypted by the destination's own provider.
	if d, ok := dep["deployment"].(map[string]any); ok {
		delete(d, "secrets_providers")
	}
	if raw, err = json.Marshal(dep); err != nil {
		return err
	}
	if err := os.WriteFile(tmp.Name(), raw, 0o600); err != nil {
		return err
	}
	stderr.Reset()
	if err := dst.engineCmd(ctx, &stderr, "stack", "import", "--file", tmp.Name()).Run(); err != nil {
		return newCLIError("stack import", err, &stderr)
	}
	return nil
}
