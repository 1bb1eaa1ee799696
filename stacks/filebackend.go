package stacks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/internal/procstat"
)

// Everything here is what only Pulumi's file backend needs: kiln owns that directory, so
// it also cleans up after engines killed on this host.

// fileBackendURL is the default backend: a directory in kiln's state directory.
func fileBackendURL(stateDir string) string {
	return "file://" + filepath.Join(stateDir, "pulumi")
}

// fileBackend is a Pulumi file backend's directory.
type fileBackend struct{ dir string }

// fileBackendOf returns the file backend a backend URL names, if it names one.
func fileBackendOf(url string) (fileBackend, bool) {
	dir, ok := strings.CutPrefix(url, "file://")
	if !ok || !filepath.IsAbs(dir) {
		return fileBackend{}, false
	}
	return fileBackend{dir: dir}, true
}

// prepare creates the backend's directory and removes the update locks of stack that
// engines killed on this host left behind.
func (b fileBackend) prepare(stack string) error {
	if err := os.MkdirAll(b.dir, fileperm.Dir); err != nil {
		return err
	}
	return b.clearDeadLocks(Project, stack)
}

// hasStack says the backend holds a checkpoint of the stack, plain or gzipped.
func (b fileBackend) hasStack(project, stack string) bool {
	p := filepath.Join(b.dir, ".pulumi", "stacks", project, stack+".json")
	for _, f := range []string{p, p + ".gz"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// engineLock is an update lock the Pulumi engine wrote into the backend.
type engineLock struct {
	PID       int       `json:"pid"`
	Hostname  string    `json:"hostname"`
	Timestamp time.Time `json:"timestamp"`
}

// engineName is the executable's name of every Pulumi CLI, the pinned one of any kiln
// version: what a lock's pid must run to be its engine.
const engineName = "pulumi"

// engine is the identity of the engine that wrote the lock: a process of the Pulumi CLI
// started before the lock was written. Its pid alone may since name any process.
func (l engineLock) engine() procstat.Identity {
	return procstat.Identity{ExeName: engineName, StartedBefore: l.Timestamp}
}

// engineLocks lists the backend's update locks of the stack held from this host, by
// lock file.
func (b fileBackend) engineLocks(project, stack string) (map[string]engineLock, error) {
	dir := filepath.Join(b.dir, ".pulumi", "locks", "organization", project, stack)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	locks := map[string]engineLock{}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var l engineLock
		if json.Unmarshal(raw, &l) == nil && l.PID > 0 && l.Hostname == host {
			locks[p] = l
		}
	}
	return locks, nil
}

func removeLock(p string) error {
	os.Remove(p + ".attrs")
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// clearDeadLocks removes the update locks left by an engine that was killed on this host
// (no process of the Pulumi CLI started before the lock has its pid any more); a live
// engine's lock, or one from another host, stays.
func (b fileBackend) clearDeadLocks(project, stack string) error {
	locks, err := b.engineLocks(project, stack)
	if err != nil {
		return err
	}
	for p, l := range locks {
		if !l.engine().Is(l.PID) {
			if err := removeLock(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// TakeOver ends updates of this stack that an engine on this host still runs for a kiln
// that was killed: they are interrupted (the engine saves what it did), killed after
// grace, and their locks removed. Only call it holding the stack's kiln lock, which
// proves no live kiln owns those engines. A lock's pid is signalled only while it is
// still the engine that wrote the lock. Only a file backend keeps its update locks
// where kiln can see them; with another backend it does nothing.
func (s *Stack) TakeOver(ctx context.Context, grace time.Duration) error {
	b, ok := fileBackendOf(s.opts.Backend)
	if !ok {
		return nil
	}
	locks, err := b.engineLocks(Project, s.opts.Stack)
	if err != nil {
		return err
	}
	for p, l := range locks {
		if err := l.end(ctx, grace); err != nil {
			return err
		}
		if err := removeLock(p); err != nil {
			return err
		}
	}
	return nil
}

// passphrasePath is where kiln keeps the passphrase it generated for a file backend.
func passphrasePath(stateDir string) string { return filepath.Join(stateDir, "passphrase") }

// end interrupts the lock's engine, if it still runs, and kills it after grace.
func (l engineLock) end(ctx context.Context, grace time.Duration) error {
	engine := l.engine()
	if !engine.Is(l.PID) || syscall.Kill(l.PID, syscall.SIGINT) != nil {
		return nil
	}
	deadline := time.Now().Add(grace)
	for engine.Is(l.PID) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if engine.Is(l.PID) {
		syscall.Kill(l.PID, syscall.SIGKILL)
	}
	return nil
}

// minPassphrase is the shortest passphrase kiln accepts in its passphrase file: the one it
// generates has 43 characters; an empty or truncated file would encrypt a stack's secrets
// with next to nothing.
const minPassphrase = 16

// passphraseFile returns the file holding the stack secrets' passphrase, creating it with
// a random passphrase the first time. It never leaves the state directory. The file
// appears whole and synced or not at all (a crash cannot leave an empty one), two kilns
// creating it at once agree on one passphrase, and an empty or short one is refused.
func passphraseFile(stateDir string) (string, error) {
	p := passphrasePath(stateDir)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	err := atomicfile.Create(p, []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), fileperm.File)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	if n := len(strings.TrimSpace(string(b))); n < minPassphrase {
		return "", fmt.Errorf("passphrase file %s holds a passphrase of %d characters, fewer than %d: the stack's secrets are encrypted with it, so restore it from a backup (or remove it, with the state directory, to start afresh)", p, n, minPassphrase)
	}
	return p, nil
}

// SamePassphrase reports whether stacks opened in stateDir against the backends a and b
// (Pulumi backend URLs) encrypt their secrets with the same passphrase, as passphraseEnv
// chooses it: a file backend's generated passphrase wins over $KILN_PASSPHRASE.
// Ciphertexts made for one are only readable by the other when it does.
func SamePassphrase(stateDir, a, b string) (bool, error) {
	pa, err := passphraseOf(stateDir, a)
	if err != nil {
		return false, err
	}
	pb, err := passphraseOf(stateDir, b)
	return pa == pb, err
}

// passphraseOf is the passphrase passphraseEnv would give the engine for backend ("" where
// it would generate one).
func passphraseOf(stateDir, backend string) (string, error) {
	if v := os.Getenv("PULUMI_CONFIG_PASSPHRASE"); v != "" {
		return v, nil
	}
	file := os.Getenv("PULUMI_CONFIG_PASSPHRASE_FILE")
	if _, isFile := fileBackendOf(backend); isFile && file == "" {
		if _, err := os.Stat(passphrasePath(stateDir)); err == nil {
			file = passphrasePath(stateDir)
		}
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		return strings.TrimSpace(string(raw)), err
	}
	return os.Getenv(PassphraseEnv), nil
}
