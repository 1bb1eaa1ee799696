package awsmodel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Environment variables that shape the model's behaviour for a test.
const (
	// LatencyEnv gives the time an operation on a type takes, e.g.
	// "aws:imagebuilder/image:Image=2s,aws:autoscaling/group:Group=500ms": Image Builder's
	// bakes and instance boots. Creates, updates and deletes of the type all take it.
	LatencyEnv = "KILN_AWSMODEL_LATENCY"
	// FailEnv makes the Nth create of a type fail, counted over the model directory's
	// life, e.g. "aws:autoscaling/group:Group=2" (several: comma-separated).
	FailEnv = "KILN_AWSMODEL_FAIL"
)

// Behaviour is the latency and failures a test gives the model.
type Behaviour struct {
	Latency map[string]time.Duration
	FailNth map[string]int
}

// BehaviourFromEnv reads LatencyEnv and FailEnv.
func BehaviourFromEnv() (Behaviour, error) {
	var b Behaviour
	var err error
	if b.Latency, err = parseTypeMap(LatencyEnv, os.Getenv(LatencyEnv), time.ParseDuration); err != nil {
		return b, err
	}
	b.FailNth, err = parseTypeMap(FailEnv, os.Getenv(FailEnv), strconv.Atoi)
	return b, err
}

// Env returns the behaviour as the environment variables the double reads.
func (b Behaviour) Env() []string {
	var lat, fail []string
	for t, d := range b.Latency {
		lat = append(lat, t+"="+d.String())
	}
	for t, n := range b.FailNth {
		fail = append(fail, t+"="+strconv.Itoa(n))
	}
	return []string{LatencyEnv + "=" + strings.Join(lat, ","), FailEnv + "=" + strings.Join(fail, ",")}
}

// parseTypeMap parses "type=value,type=value".
func parseTypeMap[T any](env, s string, parse func(string) (T, error)) (map[string]T, error) {
	out := map[string]T{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		typ, val, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not type=value", env, item)
		}
		v, err := parse(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", env, typ, err)
		}
		out[typ] = v
	}
	return out, nil
}

// ErrInjected is the failure FailEnv asks for.
var ErrInjected = errors.New("injected failure (awsmodel)")

// countCreate counts a create of typ in the model directory (across the plugin
// processes the engine starts, one per operation) and fails it if it is the Nth the
// behaviour asks to fail.
func (b Behaviour) countCreate(dir, typ string) error {
	nth, ok := b.FailNth[typ]
	if !ok {
		return nil
	}
	n, err := bumpCounter(filepath.Join(dir, ".creates.json"), typ)
	if err != nil {
		return err
	}
	if n == nth {
		return fmt.Errorf("create number %d of %s: %w", n, typ, ErrInjected)
	}
	return nil
}

// bumpCounter adds one to a counter in a JSON file under an exclusive lock and returns it.
func bumpCounter(path, key string) (int, error) {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, fileperm.File)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	counts := map[string]int{}
	if raw, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(raw, &counts); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	counts[key]++
	raw, _ := json.Marshal(counts)
	return counts[key], atomicfile.Write(path, raw, fileperm.File)
}
