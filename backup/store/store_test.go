package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
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
