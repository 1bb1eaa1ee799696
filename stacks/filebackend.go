package stacks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	return b.clearDeadLocks(Project, stack)
}

// engineLocks lists the backend's update locks of the stack held from this host: lock
// file and engine pid.
func (b fileBackend) engineLocks(project, stack string) (map[string]int, error) {
	dir := filepath.Join(b.dir, ".pulumi", "locks", "organization", project, stack)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	locks := map[string]int{}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var l struct {
			PID      int    `json:"pid"`
			Hostname string `json:"hostname"`
		}
		if json.Unmarshal(raw, &l) == nil && l.PID > 0 && l.Hostname == host {
			locks[p] = l.PID
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
// (its pid is gone); a live engine's lock, or one from another host, stays.
func (b fileBackend) clearDeadLocks(project, stack string) error {
	locks, err := b.engineLocks(project, stack)
	if err != nil {
		return err
	}
	for p, pid := range locks {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
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
// proves no live kiln owns those engines. Only a file backend keeps its update locks
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
	for p, pid := range locks {
		if syscall.Kill(pid, syscall.SIGINT) == nil {
			deadline := time.Now().Add(grace)
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := removeLock(p); err != nil {
			return err
		}
	}
	return nil
}

// passphraseFile returns the file holding the stack secrets' passphrase, creating it with
// a random passphrase the first time. It never leaves the state directory.
func passphraseFile(stateDir string) (string, error) {
	p := filepath.Join(stateDir, "passphrase")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return p, nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(raw) + "\n")
	return p, err
}
