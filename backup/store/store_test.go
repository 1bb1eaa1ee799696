package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/testpeers"
)

func stores(t *testing.T) map[string]store.Store {
	t.Helper()
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	endpoint := testpeers.S3(t)
	s3s, err := store.Open(ctx, "s3://kiln-test/some/prefix", store.Options{
		S3Endpoint: endpoint, S3Region: "us-east-1", S3PathStyle: true, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := store.Open(ctx, "file://"+t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]store.Store{"s3": s3s, "file": dir}
}

func TestStores(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, 12<<20+123) // three multipart parts on S3
	rand.Read(big)
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get missing: got %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(ctx, "a/missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Stat missing: got %v, want ErrNotFound", err)
			}
			for key, body := range map[string][]byte{"a/one": []byte("hello"), "a/b/two": big, "c": {}} {
				// io.MultiReader hides the size, as a streaming volume does.
				if err := s.Put(ctx, key, io.MultiReader(bytes.NewReader(body))); err != nil {
					t.Fatalf("Put %s: %v", key, err)
				}
				rc, err := s.Get(ctx, key)
				if err != nil {
					t.Fatalf("Get %s: %v", key, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("Get %s: %d bytes (err %v), want %d bytes", key, len(got), err, len(body))
				}
				size, err := s.Stat(ctx, key)
				if err != nil || size != int64(len(body)) {
					t.Fatalf("Stat %s = %d, %v; want %d", key, size, err, len(body))
				}
			}
			keys, err := s.List(ctx, "a/")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a/b/two", "a/one"}; !equal(keys, want) {
				t.Fatalf("List a/ = %v, want %v", keys, want)
			}
			if err := s.Delete(ctx, "a/one"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "a/one"); err != nil {
				t.Fatalf("delete twice: %v", err)
			}
			if _, err := s.Get(ctx, "a/one"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get deleted: %v", err)
			}
			if err := s.Put(ctx, "../escape", bytes.NewReader(nil)); err == nil {
				t.Fatal("Put ../escape: want an error")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"ftp://x/y", "s3:///prefix", "file://host/dir", "file://"} {
		if _, err := store.Open(context.Background(), u, store.Options{}); err == nil {
			t.Errorf("Open(%q): want an error", u)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCreateIsAtomic races writers creating the same key, on both stores
// (on S3, gofakes3's conditional PutObject): in every round exactly one
// wins and the object holds the winner's bytes whole.
func TestCreateIsAtomic(t *testing.T) {
	ctx := context.Background()
	const rounds, writers = 100, 8
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for round := range rounds {
				key := fmt.Sprintf("race/%03d", round)
				var wins atomic.Int32
				var winner atomic.Int32
				var wg sync.WaitGroup
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						body := bytes.Repeat([]byte{byte('a' + w)}, 1000+w)
						err := s.Create(ctx, key, bytes.NewReader(body))
						switch {
						case err == nil:
							wins.Add(1)
							winner.Store(int32(w))
						case !errors.Is(err, store.ErrExists):
							t.Errorf("round %d writer %d: %v", round, w, err)
						}
					}()
				}
				wg.Wait()
				if n := wins.Load(); n != 1 {
					t.Fatalf("round %d: %d writers created %s, want exactly 1", round, n, key)
				}
				rc, err := s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				w := int(winner.Load())
				if !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + w)}, 1000+w)) {
					t.Fatalf("round %d: %s holds %d bytes that are not writer %d's", round, key, len(got), w)
				}
			}
			// Create never replaces, also sequentially.
			if err := s.Create(ctx, "race/000", bytes.NewReader(nil)); !errors.Is(err, store.ErrExists) {
				t.Fatalf("Create of an existing key: %v, want ErrExists", err)
			}
		})
	}
}
