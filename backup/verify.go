package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/backup/store"
)

// VerifyReport lists what verify found.
type VerifyReport struct {
	Volumes  int
	Items    int64
	Problems []string
}

// checkVolume compares what was read from a volume with its manifest entry.
func checkVolume(v VolumeInfo, items int64, sum string, size int64) error {
	switch {
	case sum != v.SHA256:
		return fmt.Errorf("%s: sha256 %s, manifest says %s: %w", v.Key, sum, v.SHA256, errCorrupt)
	case size != v.Bytes:
		return fmt.Errorf("%s: %d bytes, manifest says %d: %w", v.Key, size, v.Bytes, errCorrupt)
	case items != v.Items:
		return fmt.Errorf("%s: %d items, manifest says %d: %w", v.Key, items, v.Items, errCorrupt)
	}
	return nil
}

// Verify re-reads every volume of dump id (and its change volumes),
// checking sha256, size, item counts and that every line decodes. It
// returns an error naming every bad volume.
func Verify(ctx context.Context, s store.Store, id string, parallel int, log *slog.Logger) (*VerifyReport, error) {
	if log == nil {
		log = slog.Default()
	}
	m, err := LoadManifest(ctx, s, id)
	if err != nil {
		return nil, err
	}
	var vols []VolumeInfo
	for _, seg := range m.Segments {
		var n int64
		for _, v := range seg.Volumes {
			n += v.Items
		}
		if n != seg.Items {
			return nil, fmt.Errorf("manifest segment %d: volumes hold %d items, segment says %d", seg.Segment, n, seg.Items)
		}
		vols = append(vols, seg.Volumes...)
	}
	shards, err := loadShards(ctx, s, id)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	check := func(v VolumeInfo, changes bool) {
		g.Go(func() error {
			rc, err := s.Get(gctx, objectKey(id, v.Key))
			var n int64
			if err == nil {
				var sum string
				var size int64
				if changes {
					n, sum, size, err = readChanges(rc, nil)
				} else {
					n, sum, size, err = readVolume(rc, nil)
				}
				rc.Close()
				if err != nil {
					err = fmt.Errorf("%s: does not decode: %w: %w", v.Key, err, errCorrupt)
				} else {
					err = checkVolume(v, n, sum, size)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Volumes++
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				rep.Problems = append(rep.Problems, err.Error())
				log.Error("verify: bad volume", "volume", v.Key, "err", err)
				return nil
			}
			rep.Items += n
			return nil
		})
	}
	for _, v := range vols {
		check(v, false)
	}
	for _, sh := range shards {
		for _, v := range sh.Volumes {
			check(v, true)
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("verify %s: %d of %d volumes bad, first: %s: %w", id, len(rep.Problems), rep.Volumes, rep.Problems[0], errCorrupt)
	}
	log.Info("verify ok", "dump", id, "volumes", rep.Volumes, "items", rep.Items)
	return rep, nil
}

// IsCorrupt reports whether err is about a corrupt volume.
func IsCorrupt(err error) bool { return errors.Is(err, errCorrupt) }
