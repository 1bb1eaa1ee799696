package releases

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestSecretsStartEmpty(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := s.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Version != "" || len(doc.Values) != 0 || doc.Values == nil {
		t.Fatalf("empty store: got %+v, want no version and an empty map", doc)
	}
}

func TestUpdateSecretsRenewsTheVersionAndKeepsTheFilePrivate(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set := func(name, ct string) Secrets {
		t.Helper()
		doc, err := s.UpdateSecrets(func(d *Secrets) error {
			d.Values[name] = Secret{Ciphertext: ct, SetAt: time.Unix(1, 0).UTC(), User: "ann"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	a := set("DB_PASSWORD", "v1:abc")
	b := set("DB_PASSWORD", "v1:abc") // the same ciphertext again is still a change
	if a.Version == "" || a.Version == b.Version {
		t.Fatalf("versions %q then %q: want a new non-empty version on every update", a.Version, b.Version)
	}
	got, err := s.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != b.Version || got.Values["DB_PASSWORD"].Ciphertext != "v1:abc" || got.Values["DB_PASSWORD"].User != "ann" {
		t.Fatalf("loaded %+v, want what was saved (%+v)", got, b)
	}
	fi, err := os.Stat(filepath.Join(s.Path(), secretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", secretsFile, fi.Mode().Perm())
	}
}

func TestUpdateSecretsErrorSavesNothing(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = s.UpdateSecrets(func(d *Secrets) error {
		d.Values["X"] = Secret{Ciphertext: "c"}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	doc, err := s.LoadSecrets()
	if err != nil || doc.Version != "" || len(doc.Values) != 0 {
		t.Fatalf("after a failed update: %+v, %v; want nothing saved", doc, err)
	}
}

func TestConcurrentSecretUpdatesLoseNothing(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s, err := OpenFileStore(dir) // one store per writer, as separate processes have
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.UpdateSecrets(func(d *Secrets) error {
				d.Values[fmt.Sprintf("S%d", i)] = Secret{Ciphertext: "c"}
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, _ := OpenFileStore(dir)
	doc, err := s.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Values) != 8 {
		t.Fatalf("%d secrets saved by 8 writers: %v", len(doc.Values), doc.Values)
	}
}

func TestUpdateSecretsKeepsAVersionFnSets(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// What a migration does: copy a document whole, version included.
	doc, err := s.UpdateSecrets(func(d *Secrets) error {
		*d = Secrets{Version: "copied", Values: map[string]Secret{"A": {Ciphertext: "c"}}}
		return nil
	})
	if err != nil || doc.Version != "copied" {
		t.Fatalf("UpdateSecrets = %+v, %v; want the version fn set", doc, err)
	}
}
