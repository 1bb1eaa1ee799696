// Package store is kiln-backup's object storage: one small interface with a
// local directory implementation (file://) and an S3 implementation that
// works with AWS S3 and any S3-compatible endpoint.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// ErrNotFound is returned by Get and Stat when an object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned by Create when the object already exists.
var ErrExists = errors.New("object already exists")

// Store holds backup objects under slash-separated keys. Put is atomic: an
// object is either absent or complete, never partial, so a reader never sees
// half a volume or half a manifest.
type Store interface {
	// Put stores everything read from r under key, replacing any object there.
	Put(ctx context.Context, key string, r io.Reader) error
	// Create stores r under key only if no object is there, atomically: of
	// any number of concurrent Creates of one key exactly one succeeds, the
	// others return ErrExists. Leases are built on it.
	Create(ctx context.Context, key string, r io.Reader) error
	// Get opens the object at key; ErrNotFound when it does not exist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size; ErrNotFound when it does not exist.
	Stat(ctx context.Context, key string) (int64, error)
	// List returns the keys starting with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// String names the store for logs (no credentials).
	String() string
}

// Options configure Open. Zero values are fine for file:// stores.
type Options struct {
	// S3Endpoint overrides the S3 endpoint (for S3-compatible servers).
	S3Endpoint string
	// S3Region is the region; defaults to the SDK's configuration or us-east-1.
	S3Region string
	// S3PathStyle forces path-style addressing (needed by most S3-compatible servers).
	S3PathStyle bool
	// PartSize is the multipart upload part size in bytes (default 16 MiB).
	PartSize int64
}

// Open returns the store named by rawURL: file:///abs/dir or s3://bucket/prefix.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("store url %q: file URLs need an absolute path (file:///dir)", rawURL)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("store url %q: empty path", rawURL)
		}
		return NewDir(u.Path)
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("store url %q: missing bucket (s3://bucket/prefix)", rawURL)
		}
		return NewS3(ctx, u.Host, strings.Trim(u.Path, "/"), opts)
	default:
		return nil, fmt.Errorf("store url %q: scheme must be file or s3", rawURL)
	}
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") || strings.Contains(key, "\\") {
		return fmt.Errorf("invalid object key %q", key)
	}
	return nil
}
