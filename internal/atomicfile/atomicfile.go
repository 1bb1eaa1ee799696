// Package atomicfile writes files so that a reader, or a crash at any moment, sees either
// the old content or the new one, never a mix.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path through a synced temporary file in the same directory, renames
// it over path and syncs the directory, so the new content survives a power cut.
func Write(path string, data []byte, perm os.FileMode) error {
	return place(path, data, perm, os.Rename)
}

// Create is Write for a file that must never be replaced: it fails with an error
// satisfying errors.Is(err, os.ErrExist) when path exists, and of two processes creating
// it at once exactly one succeeds. A reader, or a crash, sees no file or all of it.
func Create(path string, data []byte, perm os.FileMode) error {
	return place(path, data, perm, os.Link)
}

// place writes data to a synced temporary file beside path, puts it at path with put
// (rename replaces, link refuses an existing path) and syncs the directory.
func place(path string, data []byte, perm os.FileMode, put func(oldpath, newpath string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a rename, a no-op; after a link, the extra name
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := put(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
