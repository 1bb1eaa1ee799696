package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Get returns the image with the given digest.
func (s *Store) Get(digest string) (*Image, error) {
	if err := checkDigest(digest); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, dirName(digest))
	m, err := ReadMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	if m.Digest != digest {
		return nil, fmt.Errorf("image directory %s holds %s", dir, m.Digest)
	}
	return &Image{Meta: m, Dir: dir}, nil
}

// Entry is one image in the store's index.
type Entry struct {
	Digest  string    `json:"digest"`
	Name    string    `json:"name"`
	Version string    `json:"version"`
	BakedAt time.Time `json:"bakedAt"`
	// UsedAt is the last time a bake produced or found this image.
	UsedAt time.Time `json:"usedAt"`
}

// List returns the store's images, newest use first.
func (s *Store) List() ([]Entry, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range idx {
		if _, err := os.Stat(filepath.Join(s.Dir, dirName(e.Digest))); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UsedAt.After(out[j].UsedAt) })
	return out, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) indexPath() string { return filepath.Join(s.Dir, "index.json") }

func (s *Store) readIndex() (map[string]Entry, error) {
	idx := map[string]Entry{}
	b, err := os.ReadFile(s.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, err
	}
	var list []Entry
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", s.indexPath(), err)
	}
	for i, e := range list {
		if err := checkDigest(e.Digest); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", s.indexPath(), i+1, err)
		}
		idx[e.Digest] = e
	}
	return idx, nil
}

// updateIndex changes the index under an exclusive lock.
func (s *Store) updateIndex(fn func(map[string]Entry)) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, ".index.lock"), os.O_CREATE|os.O_RDWR, fileperm.File)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	fn(idx)
	list := make([]Entry, 0, len(idx))
	for _, e := range idx {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Digest < list[j].Digest })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.indexPath(), append(b, '\n'), fileperm.File)
}

// touch records that img was just baked or found.
func (s *Store) touch(img *Image) {
	now := s.now()
	s.updateIndex(func(idx map[string]Entry) {
		e, ok := idx[img.Digest]
		if !ok {
			e = Entry{Digest: img.Digest, Name: img.Name, Version: img.Version, BakedAt: now}
		}
		e.UsedAt = now
		idx[img.Digest] = e
	})
}

// GC removes the images of service beyond the keep most recently used, sparing every
// digest in inUse (the releases a stack still runs or may roll back to). It returns the
// digests it removed.
func (s *Store) GC(service string, keep int, inUse []string) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("images gc: keep must be at least 1, got %d", keep)
	}
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, d := range inUse {
		used[d] = true
	}
	var removed []string
	kept := 0
	for _, e := range list {
		if e.Name != service {
			continue
		}
		if used[e.Digest] || kept < keep {
			kept++
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.Dir, dirName(e.Digest))); err != nil {
			return removed, err
		}
		removed = append(removed, e.Digest)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	gone := map[string]bool{}
	for _, d := range removed {
		gone[d] = true
	}
	// Recipe keys that point at removed images would only miss; drop them.
	if ents, err := os.ReadDir(filepath.Join(s.Dir, "recipes")); err == nil {
		for _, e := range ents {
			p := filepath.Join(s.Dir, "recipes", e.Name())
			if b, err := os.ReadFile(p); err == nil && gone[strings.TrimSpace(string(b))] {
				os.Remove(p)
			}
		}
	}
	return removed, s.updateIndex(func(idx map[string]Entry) {
		for d := range gone {
			delete(idx, d)
		}
	})
}
