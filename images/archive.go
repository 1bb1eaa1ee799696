package images

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/kilnhq/kiln/internal/fileperm"
)

// Archive writes the image in dir as a gzipped tar that unpacks (`tar -xzf`) into the
// same image: image.json and every file it lists, with their modes, in its order, owned
// by root, with no timestamps. The same image always gives the same bytes, so a payload's
// sha256 is a function of the image's digest. The image is verified first: an archive
// never carries a tampered image.
func Archive(dir string, w io.Writer) error {
	if err := Verify(dir, ""); err != nil {
		return err
	}
	m, err := ReadMeta(dir)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	add := func(rel string, mode os.FileMode, size int64) error {
		if err := writeParents(tw, rel, dirs); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		defer f.Close()
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(mode.Perm()), Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, io.LimitReader(f, size+1))
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("%s changed while it was archived", rel)
		}
		return nil
	}
	fi, err := os.Stat(filepath.Join(dir, "image.json"))
	if err != nil {
		return err
	}
	if err := add("image.json", fi.Mode(), fi.Size()); err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := add(f.Path, f.Mode, f.Size); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeParents writes the directories above rel that are not in written yet, outermost
// first, as tar extracts in order.
func writeParents(tw *tar.Writer, rel string, written map[string]bool) error {
	var missing []string
	for d := path.Dir(rel); d != "." && !written[d]; d = path.Dir(d) {
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: int64(fileperm.Dir), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		written[d] = true
	}
	return nil
}

// WritePayload archives the image in dir to file (written beside it, synced and renamed
// into place, owner-only) and returns the archive's hex sha256.
func WritePayload(dir, file string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(file), fileperm.Dir); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".payload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	h := sha256.New()
	if err := Archive(dir, io.MultiWriter(tmp, h)); err != nil {
		tmp.Close()
		return "", fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
