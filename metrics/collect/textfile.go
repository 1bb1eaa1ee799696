package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultMaxFileBytes bounds what one drop-in file or one scrape may hold, so a runaway
// writer cannot make the daemon grow.
const DefaultMaxFileBytes = 4 << 20

// Textfile collects the *.prom files of a drop-in directory. Other programs write them
// atomically (write a temporary file whose name starts with a dot, then rename it), so a
// reader never sees half a file. A file that fails to parse is skipped and reported in
// node_textfile_scrape_error, the rest are still exposed.
type Textfile struct {
	// Dir is the drop-in directory; a missing directory is not an error (nothing to read).
	Dir string
	// MaxBytes bounds one file; bigger files are refused. 0 means DefaultMaxFileBytes.
	MaxBytes int64
	// MaxTotalBytes bounds all files of one gather; files past it are skipped and
	// reported. 0 means four times the larger of MaxBytes and DefaultMaxFileBytes.
	MaxTotalBytes int64
}

// Name implements Collector.
func (t *Textfile) Name() string { return "textfile" }

// Collect implements Collector.
func (t *Textfile) Collect(ctx context.Context, fams []Family) ([]Family, error) {
	entries, err := os.ReadDir(t.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fams, err
	}
	mtime := Family{Name: "node_textfile_mtime_seconds", Help: "Unixtime mtime of textfiles successfully read.", Type: Gauge}
	var errs []error
	var total int64
	maxTotal := t.MaxTotalBytes
	if maxTotal <= 0 {
		maxTotal = 4 * max(t.MaxBytes, DefaultMaxFileBytes)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".prom") || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		if ctx.Err() != nil {
			return fams, ctx.Err()
		}
		if info, err := e.Info(); err == nil {
			if total += info.Size(); total > maxTotal {
				errs = append(errs, fmt.Errorf("%s: skipped, the drop-in files exceed %d bytes in all", filepath.Join(t.Dir, name), maxTotal))
				continue
			}
		}
		got, mt, err := t.readFile(filepath.Join(t.Dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fams = append(fams, got...)
		mtime.Samples = append(mtime.Samples, Sample{Name: mtime.Name, Labels: []Label{{"file", name}}, Value: mt})
	}
	v := 0.0
	if len(errs) > 0 {
		v = 1
	}
	fams = append(fams, mtime, Family{Name: "node_textfile_scrape_error",
		Help: "1 if there was an error opening or reading a file, 0 otherwise", Type: Gauge,
		Samples: []Sample{{Name: "node_textfile_scrape_error", Value: v}}})
	return fams, errors.Join(errs...)
}

func (t *Textfile) readFile(path string) ([]Family, float64, error) {
	max := t.MaxBytes
	if max <= 0 {
		max = DefaultMaxFileBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if st.Size() > max {
		return nil, 0, fmt.Errorf("%s: %d bytes is over the %d byte limit", path, st.Size(), max)
	}
	fams, err := ParseText(io.LimitReader(f, max))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return fams, float64(st.ModTime().UnixNano()) / 1e9, nil
}
