package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Names of the files in a FileStore's directory.
const (
	lockFile    = "lock.json"
	stateFile   = "state.json"
	historyFile = "history.json"
	// guardFile is only ever flock(2)ed: it serialises the operations that read a file
	// and then change it (unlock, break, history upsert) across processes.
	guardFile = ".guard"
)

// tempMaxAge is how old a temporary file left by a killed writer must be before
// OpenFileStore removes it. Writes take milliseconds; an hour leaves any live writer alone.
const tempMaxAge = time.Hour

// guardTimeout bounds the wait for the guard when the caller gave no context. The guard
// is held for one small read and write at a time.
const guardTimeout = 30 * time.Second

// Dir returns the directory of a stack's lock, state and history under kiln's state
// directory: <stateDir>/pulumi/.kiln/<stack>, next to the file backend's .pulumi.
func Dir(stateDir, stack string) string {
	return filepath.Join(stateDir, "pulumi", ".kiln", stack)
}

// FileStore is the [Store] of the default file backend: a directory holding lock.json,
// state.json and history.json. Several processes may open the same directory at once.
type FileStore struct {
	dir   string
	stack string
	host  string

	// Now is the clock used for a lock's Since when the holder has none and for
	// [LockedError.At]; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	held []byte // the lock file's content while this store holds the lock
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens (creating it if needed) the store in dir, whose last element is
// taken as the stack's name, and removes temporary files that killed writers left behind.
func OpenFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("open release store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open release store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, fileperm.Dir); err != nil {
		return nil, fmt.Errorf("open release store: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	s := &FileStore{dir: abs, stack: filepath.Base(abs), host: host}
	s.sweep()
	return s, nil
}

// Path returns the store's directory.
func (s *FileStore) Path() string { return s.dir }

func (s *FileStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *FileStore) path(name string) string { return filepath.Join(s.dir, name) }

// sweep removes old temporary files: a writer killed between creating its temporary file
// and renaming (or linking) it leaves one. Failures are ignored: leftovers are harmless.
func (s *FileStore) sweep() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "."+lockFile+".") && !strings.HasPrefix(n, "."+stateFile+".") &&
			!strings.HasPrefix(n, "."+historyFile+".") && !strings.HasPrefix(n, "."+secretsFile+".") {
			continue
		}
		if fi, err := e.Info(); err == nil && s.now().Sub(fi.ModTime()) > tempMaxAge {
			os.Remove(s.path(n))
		}
	}
}

// Lock implements [Store.Lock]. The holder's JSON is written to a temporary file and
// fsync'd, then link(2)ed to lock.json, which fails if lock.json exists: the lock file
// is never visible empty or half written, and exactly one of any number of racing
// processes succeeds.
func (s *FileStore) Lock(ctx context.Context, h Holder) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
	}
	if h.Since.IsZero() {
		h.Since = s.now().UTC().Round(0)
	}
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
	}
	data = append(data, '\n')
	tmp, err := writeTemp(s.dir, "."+lockFile+".*", data)
	if err != nil {
		return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
	}
	defer os.Remove(tmp)
	// A holder may unlock between our failed link and our read; then try again, a few
	// times only: Lock never waits for a holder.
	for range 3 {
		err = os.Link(tmp, s.path(lockFile))
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
		}
		cur, _, ok, rerr := s.readLock()
		if !ok && rerr == nil {
			continue // released meanwhile
		}
		le := &LockedError{Stack: s.stack, Holder: cur, At: s.now(), Err: rerr}
		if rerr == nil {
			switch judge(cur, s.host) {
			case holderGone:
				le.Stale = true
			case holderOtherHost:
				le.OtherHost = true
			}
		}
		return nil, le
	}
	if err != nil {
		return nil, fmt.Errorf("lock stack %s: the lock kept changing hands: %w", s.stack, err)
	}
	if err := syncDir(s.dir); err != nil {
		// The lock is ours but may not survive a power cut; give it back.
		os.Remove(s.path(lockFile))
		return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
	}
	s.mu.Lock()
	s.held = data
	s.mu.Unlock()
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() { uerr = s.unlock(data) })
		return uerr
	}, nil
}

// unlock removes the lock file if it still holds data, under the guard so that nobody
// can break it and take it between our read and our remove.
func (s *FileStore) unlock(data []byte) error {
	s.mu.Lock()
	if bytes.Equal(s.held, data) {
		s.held = nil
	}
	s.mu.Unlock()
	return s.withGuard(context.Background(), func() error {
		cur, raw, ok, _ := s.readLock()
		if !ok {
			return fmt.Errorf("unlock stack %s: %w: the lock was broken", s.stack, ErrLockLost)
		}
		if !bytes.Equal(raw, data) {
			return fmt.Errorf("unlock stack %s: %w: it was broken and is now held by %s", s.stack, ErrLockLost, cur)
		}
		if err := os.Remove(s.path(lockFile)); err != nil {
			return fmt.Errorf("unlock stack %s: %w", s.stack, err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("unlock stack %s: %w", s.stack, err)
		}
		return nil
	})
}

// BreakLock implements [Store.BreakLock]. It refuses, with [ErrLockChanged], when the
// lock is now held by someone other than expected, and, with [ErrHolderAlive], when
// expected is a process on this host that still runs. A holder on another host cannot
// be seen: breaking its lock is the caller's decision. Breaking a lock that is already
// gone succeeds. Holder{} breaks a lock file that cannot be decoded.
func (s *FileStore) BreakLock(expected Holder) error {
	return s.withGuard(context.Background(), func() error {
		cur, _, ok, rerr := s.readLock()
		if !ok && rerr == nil {
			return nil
		}
		switch {
		case rerr != nil:
			if expected != (Holder{}) {
				return fmt.Errorf("break lock of stack %s: %w: the lock file cannot be read (%v), not held by %s", s.stack, ErrLockChanged, rerr, expected)
			}
		case !cur.Same(expected):
			return fmt.Errorf("break lock of stack %s: %w: it is held by %s since %s, not by %s since %s",
				s.stack, ErrLockChanged, cur, sinceText(cur.Since, time.Time{}), expected, sinceText(expected.Since, time.Time{}))
		case judge(cur, s.host) == holderAlive:
			return fmt.Errorf("break lock of stack %s: %w: %s; stop it instead", s.stack, ErrHolderAlive, cur)
		}
		if err := os.Remove(s.path(lockFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("break lock of stack %s: %w", s.stack, err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("break lock of stack %s: %w", s.stack, err)
		}
		return nil
	})
}

// readLock reads lock.json. ok is false when there is none; err is set (with ok true)
// when it exists but cannot be read or decoded.
func (s *FileStore) readLock() (h Holder, raw []byte, ok bool, err error) {
	p := s.path(lockFile)
	raw, err = os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Holder{}, nil, false, nil
	}
	if err != nil {
		return Holder{}, nil, true, err
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return Holder{}, raw, true, fmt.Errorf("%s: %w", p, err)
	}
	return h, raw, true, nil
}

// checkHeld fails with ErrLockLost when this store took the lock and the lock file no
// longer holds what it wrote: someone broke the lock, so this process must stop writing.
func (s *FileStore) checkHeld(what string) error {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held == nil {
		return nil
	}
	_, raw, _, _ := s.readLock()
	if !bytes.Equal(raw, held) {
		return fmt.Errorf("%s of stack %s: %w", what, s.stack, ErrLockLost)
	}
	return nil
}

// SaveState implements [Store.SaveState]: temporary file, fsync, rename, fsync of the
// directory. While this store holds the lock, it first checks that the lock is still its own.
func (s *FileStore) SaveState(st State) error {
	if st.ID == "" {
		return fmt.Errorf("save rollout state of stack %s: field id is empty", s.stack)
	}
	if err := s.checkHeld("save rollout state"); err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save rollout state of stack %s: %w", s.stack, err)
	}
	if err := atomicfile.Write(s.path(stateFile), append(data, '\n'), fileperm.File); err != nil {
		return fmt.Errorf("save rollout state of stack %s: %w", s.stack, err)
	}
	return nil
}

// LoadState implements [Store.LoadState].
func (s *FileStore) LoadState() (State, bool, error) {
	p := s.path(stateFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("load rollout state of stack %s: %w", s.stack, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, false, fmt.Errorf("load rollout state of stack %s: %s: %w", s.stack, p, err)
	}
	return st, true, nil
}

// ClearState implements [Store.ClearState]; clearing an absent state succeeds.
func (s *FileStore) ClearState() error {
	if err := s.checkHeld("clear rollout state"); err != nil {
		return err
	}
	if err := os.Remove(s.path(stateFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("clear rollout state of stack %s: %w", s.stack, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("clear rollout state of stack %s: %w", s.stack, err)
	}
	return nil
}

// historyDoc is history.json: one JSON document, newest record first, one record a line.
type historyDoc struct {
	Records []Record `json:"records"`
}

// Record implements [Store.Record]. The read, upsert and atomic rewrite of history.json
// run under the guard, so concurrent writers never lose each other's records.
func (s *FileStore) Record(r Record) error {
	if r.ID == "" {
		return fmt.Errorf("record release of stack %s: field id is empty", s.stack)
	}
	if err := s.checkHeld("record release"); err != nil {
		return err
	}
	return s.withGuard(context.Background(), func() error {
		recs, err := s.History()
		if err != nil {
			return fmt.Errorf("record release %s: %w", r.ID, err)
		}
		recs = upsert(recs, r)
		if err := atomicfile.Write(s.path(historyFile), encodeHistory(recs), fileperm.File); err != nil {
			return fmt.Errorf("record release %s of stack %s: %w", r.ID, s.stack, err)
		}
		return nil
	})
}

// upsert replaces the record with r's ID or adds r, keeps the records newest first and
// drops the oldest beyond MaxHistory.
func upsert(recs []Record, r Record) []Record {
	found := false
	for i := range recs {
		if recs[i].ID == r.ID {
			recs[i], found = r, true
			break
		}
	}
	if !found {
		recs = append([]Record{r}, recs...)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Started.After(recs[j].Started) })
	if len(recs) > MaxHistory {
		recs = recs[:MaxHistory]
	}
	return recs
}

func encodeHistory(recs []Record) []byte {
	var b bytes.Buffer
	b.WriteString("{\"records\": [")
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		line, _ := json.Marshal(r) // a Record always marshals
		b.WriteString("\n  ")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	return b.Bytes()
}

// History implements [Store.History].
func (s *FileStore) History() ([]Record, error) {
	p := s.path(historyFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history of stack %s: %w", s.stack, err)
	}
	var doc historyDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("read history of stack %s: %s: %w", s.stack, p, err)
	}
	return doc.Records, nil
}

// MarkMoved implements [Store.MarkMoved].
func (s *FileStore) MarkMoved(url string) error {
	data, err := json.Marshal(moved{To: url, At: s.now().UTC()})
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path(movedFile), append(data, '\n'), 0o600)
}

// MovedTo implements [Store.MovedTo].
func (s *FileStore) MovedTo() (string, error) {
	data, err := os.ReadFile(s.path(movedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var m moved
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("%s: %w", s.path(movedFile), err)
	}
	return m.To, nil
}

// withGuard runs fn holding the kernel lock on the guard file. The guard is held for
// milliseconds, so it is polled rather than waited for: a stopped process holding it
// cannot hang us past ctx (or guardTimeout).
func (s *FileStore) withGuard(ctx context.Context, fn func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, guardTimeout)
		defer cancel()
	}
	f, err := os.OpenFile(s.path(guardFile), os.O_CREATE|os.O_RDWR, fileperm.File)
	if err != nil {
		return fmt.Errorf("stack %s: %w", s.stack, err)
	}
	defer f.Close() // also drops the flock
	delay := time.Millisecond
	for {
		ok, err := flockTry(f)
		if err != nil {
			return fmt.Errorf("stack %s: lock %s: %w", s.stack, f.Name(), err)
		}
		if ok {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stack %s: waiting for %s: %w", s.stack, f.Name(), ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
	defer flockRelease(f)
	return fn()
}

// writeTemp writes data to a new file in dir named after pattern and fsyncs it.
func writeTemp(dir, pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(fileperm.File)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
