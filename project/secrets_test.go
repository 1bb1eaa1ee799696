package project

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

// fakeEncrypter stands for the stack's secrets provider: it tags a value instead of
// encrypting it, which is all these tests need to follow it.
type fakeEncrypter struct{ calls int }

func (f *fakeEncrypter) EncryptSecret(_ context.Context, manager json.RawMessage, name string, value []byte) (string, json.RawMessage, error) {
	f.calls++
	if manager == nil {
		manager = json.RawMessage(`{"encryptionSalt":"salt"}`)
	}
	return "enc(" + string(value) + ")", manager, nil
}

// secretProject is testProject with a declared secret the app's env refers to.
func secretProject(t *testing.T, dir, version string) *Project {
	t.Helper()
	testProject(t, dir, version)
	file := filepath.Join(dir, "kiln.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(b), "app: {binary: ./app}",
		"secrets: [DB_PASSWORD]\napp: {binary: ./app, env: {DB_URL: \"postgres://app:${secret:DB_PASSWORD}@db\"}}", 1)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(Options{File: file, BinDir: filepath.Join(dir, "bin"), StateDir: filepath.Join(dir, ".kiln")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnsetSecretStopsTheRolloutBeforeTheBake(t *testing.T) {
	p := secretProject(t, t.TempDir(), "1.0.0")
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	_, err := (&Session{Project: p, Target: tgt}).Run(context.Background())
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "DB_PASSWORD") || !strings.Contains(err.Error(), "kiln secret set DB_PASSWORD") {
		t.Fatalf("err = %v, want an input error naming DB_PASSWORD and how to set it", err)
	}
	if list, _ := p.Images().List(); len(list) != 0 || len(tgt.published) != 0 {
		t.Fatalf("baked %v and published %v, want nothing", list, tgt.published)
	}
}

func TestSecretSetListRemove(t *testing.T) {
	p := secretProject(t, t.TempDir(), "1.0.0")
	enc := &fakeEncrypter{}
	if err := p.SetSecret(context.Background(), enc, "DB_PASWORD", []byte("x")); err == nil || !strings.Contains(err.Error(), "not declared") {
		t.Fatalf("set of an undeclared secret: %v, want refused", err)
	}
	if err := p.SetSecret(context.Background(), enc, "DB_PASSWORD", []byte("canary")); err != nil {
		t.Fatal(err)
	}
	list, err := p.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Set || !list[0].Declared || list[0].User == "" || list[0].Host == "" || list[0].SetAt.IsZero() {
		t.Fatalf("list = %+v, want DB_PASSWORD set, with who and when", list)
	}
	out, _ := json.Marshal(list)
	if strings.Contains(string(out), "canary") {
		t.Fatalf("the list shows the value: %s", out)
	}
	store, _ := p.Releases()
	doc, _ := store.LoadSecrets()
	var manager bytes.Buffer
	json.Compact(&manager, doc.Manager)
	if doc.Values["DB_PASSWORD"].Ciphertext != "enc(canary)" || manager.String() != `{"encryptionSalt":"salt"}` {
		t.Fatalf("stored %+v, want the ciphertext and the manager settings it was made with", doc)
	}
	if err := p.RemoveSecret("DB_PASSWORD"); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveSecret("DB_PASSWORD"); err == nil {
		t.Fatal("removing a secret that is not set succeeded")
	}
	if list, _ := p.Secrets(); len(list) != 1 || list[0].Set {
		t.Fatalf("after rm: %+v, want declared but not set", list)
	}
}

func TestChangedSecretMakesANewReleaseOfTheSameImage(t *testing.T) {
	p := secretProject(t, t.TempDir(), "1.0.0")
	tgt := &fakeTarget{Target: rollouttest.NewTarget()}
	enc := &fakeEncrypter{}
	if err := p.SetSecret(context.Background(), enc, "DB_PASSWORD", []byte("one")); err != nil {
		t.Fatal(err)
	}
	run := func() rollout.Finished {
		t.Helper()
		res, err := (&Session{Project: p, Target: tgt}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res.Finished
	}
	first := run()
	if first.Outcome != rollout.Promoted || first.To == nil || first.To.Secrets == "" {
		t.Fatalf("first rollout: %s %+v, want promoted with a secrets version", first.Outcome, first.To)
	}
	if again := run(); again.Outcome != rollout.Unchanged {
		t.Fatalf("same image, same secrets: %s, want unchanged", again.Outcome)
	}
	if err := p.SetSecret(context.Background(), enc, "DB_PASSWORD", []byte("two")); err != nil {
		t.Fatal(err)
	}
	rotated := run()
	if rotated.Outcome != rollout.Promoted || rotated.To.Image.Digest != first.To.Image.Digest || rotated.To.Secrets == first.To.Secrets {
		t.Fatalf("after rotation: %s from %+v to %+v, want the same image promoted again under new secrets", rotated.Outcome, first.To, rotated.To)
	}
	h := history(t, p)
	if len(h) != 2 || h[0].Secrets != rotated.To.Secrets || h[1].Secrets != first.To.Secrets {
		t.Fatalf("history %+v, want both releases with their secrets versions", h)
	}
	raw, _ := json.Marshal(h)
	if strings.Contains(string(raw), "one") || strings.Contains(string(raw), "two") {
		t.Fatalf("history holds a value: %s", raw)
	}
}

func TestComponentSettingHoldingASecretStaysOffTheCommandLine(t *testing.T) {
	args := []string{"agent", "--store", "${KILN_BACKUP_STORE}"}
	if err := secretsOffCommandLine("kiln-backup", args, map[string]string{"KILN_BACKUP_STORE": "s3://b/${secret:S}"}); err == nil ||
		!strings.Contains(err.Error(), "components.kiln-backup.settings.KILN_BACKUP_STORE holds a secret") {
		t.Fatalf("err = %v, want the setting named", err)
	}
	if err := secretsOffCommandLine("kiln-backup", args, map[string]string{"KILN_BACKUP_STORE": "s3://b", "TOKEN": "${secret:S}"}); err != nil {
		t.Fatalf("a secret setting the args do not name: %v", err)
	}
}
