package releases

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSaveState measures one durable state write (temporary file, fsync, rename,
// fsync of the directory), the cost the engine pays after every rollout step.
func BenchmarkSaveState(b *testing.B) {
	for _, size := range []int{0, 4 << 10, 64 << 10} {
		b.Run("extra="+strconv.Itoa(size), func(b *testing.B) {
			s, err := OpenFileStore(filepath.Join(b.TempDir(), "shop"))
			if err != nil {
				b.Fatal(err)
			}
			extra, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", size)})
			st := State{ID: "r1", Phase: "traffic", Stable: &Release{Version: "1.0.0", Digest: "sha256:" + strings.Repeat("a", 64), Location: "/var/lib/kiln/images/a"},
				Desired:   &Release{Version: "1.1.0", Digest: "sha256:" + strings.Repeat("b", 64), Location: "/var/lib/kiln/images/b"},
				StartedAt: time.Now(), Extra: extra}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				st.Step = i
				if err := s.SaveState(st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecord measures a history upsert into a full history (MaxHistory records):
// read, decode, upsert, encode, durable rewrite, under the guard.
func BenchmarkRecord(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "shop")
	s, err := OpenFileStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]Record, MaxHistory)
	for i := range recs {
		recs[i] = Record{ID: "r" + strconv.Itoa(i), Version: "1.0." + strconv.Itoa(i), Digest: "sha256:" + strings.Repeat("c", 64),
			Started: t0.Add(-time.Duration(i) * time.Hour), Finished: t0.Add(-time.Duration(i)*time.Hour + 5*time.Minute),
			Outcome: "promoted", Reason: "Promoted", User: "deploy", Host: "ci-runner-7"}
	}
	if err := os.WriteFile(filepath.Join(dir, historyFile), encodeHistory(recs), 0o644); err != nil {
		b.Fatal(err)
	}
	r := recs[0]
	b.ReportAllocs()
	for b.Loop() {
		r.Message = time.Now().String()
		if err := s.Record(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockUnlock measures taking and releasing a free lock.
func BenchmarkLockUnlock(b *testing.B) {
	s, err := OpenFileStore(filepath.Join(b.TempDir(), "shop"))
	if err != nil {
		b.Fatal(err)
	}
	h := CurrentHolder("kiln rollout")
	b.ReportAllocs()
	for b.Loop() {
		unlock, err := s.Lock(b.Context(), h)
		if err != nil {
			b.Fatal(err)
		}
		if err := unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
