package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kilnhq/kiln/boot"
	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/targets/local/schema"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// instanceProps are the inputs and outputs of a kiln:local:Instance.
type instanceProps struct {
	schema.Instance[string]

	// Outputs.
	schema.InstanceOutputs
	Port       int            `json:"port,omitempty"`
	NamedPorts map[string]int `json:"namedPorts,omitempty"`
	DataDir    string         `json:"dataDir,omitempty"`
	Process    *proc          `json:"process,omitempty"`
}

// instanceKind runs one instance: kiln-boot and the image's units under it. Instances
// are immutable: any change of input replaces the instance (create before delete).
type instanceKind struct{}

func (instanceKind) replaceKeys() []string { return nil }

func (instanceKind) check(news map[string]any) []*pulumirpc.CheckFailure {
	var p instanceProps
	if err := decode(news, &p); err != nil {
		return []*pulumirpc.CheckFailure{failure("", "%v", err)}
	}
	var fs []*pulumirpc.CheckFailure
	if p.Service == "" {
		fs = append(fs, failure("service", "required"))
	}
	if fi, err := os.Stat(p.ImageDir); err != nil || !fi.IsDir() {
		fs = append(fs, failure("imageDir", "image directory %q does not exist", p.ImageDir))
	}
	if !filepath.IsAbs(p.RunDir) {
		fs = append(fs, failure("runDir", "must be an absolute path, got %q", p.RunDir))
	}
	if _, err := time.ParseDuration(p.DrainTimeout); err != nil {
		fs = append(fs, failure("drainTimeout", "%v", err))
	}
	return fs
}

func (instanceKind) create(ctx context.Context, inputs map[string]any) (string, map[string]any, error) {
	var p instanceProps
	if err := decode(inputs, &p); err != nil {
		return "", nil, err
	}
	meta, err := images.ReadMeta(p.ImageDir)
	if err != nil {
		return "", nil, err
	}
	init, err := initExecutable(p.ImageDir, meta)
	if err != nil {
		return "", nil, err
	}
	if meta.Digest != p.Digest {
		return "", nil, fmt.Errorf("image at %s has digest %s, want %s", p.ImageDir, meta.Digest, p.Digest)
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	id := fmt.Sprintf("%s-%s-%d-%s", p.Service, p.Slot, p.Index, hex.EncodeToString(suffix))
	p.DataDir = filepath.Join(p.RunDir, "instances", id)
	if err := os.MkdirAll(p.DataDir, fileperm.Dir); err != nil {
		return "", nil, err
	}
	if p.Port, err = freePort(); err != nil {
		return "", nil, err
	}
	p.Address = net.JoinHostPort(boot.ListenHost, strconv.Itoa(p.Port))
	env := map[string]string{}
	for k, v := range p.Env {
		env[k] = v
	}
	env["PORT"] = strconv.Itoa(p.Port)
	env["KILN_SERVICE"] = p.Service
	env["KILN_VERSION"] = p.Version
	env["KILN_INSTANCE"] = id
	env["KILN_SLOT"] = p.Slot
	p.NamedPorts = map[string]int{}
	for _, name := range meta.Ports {
		port, err := freePort()
		if err != nil {
			return "", nil, err
		}
		p.NamedPorts[name] = port
		env[components.PortEnv(name)] = strconv.Itoa(port)
	}
	drain, err := time.ParseDuration(p.DrainTimeout)
	if err != nil {
		return "", nil, fmt.Errorf("drainTimeout: %w", err)
	}
	// The secrets go to kiln-boot on a pipe, never into boot.json, its argv or its env,
	// and never into the outputs: the engine keeps them only as encrypted inputs.
	secrets := p.Secrets
	p.Secrets = nil
	bs := boot.Spec{Instance: id, ImageDir: p.ImageDir, Digest: p.Digest, DataDir: p.DataDir, Env: env, DrainTimeout: boot.Duration(drain)}
	if len(secrets) > 0 {
		bs.SecretsFD = secretsFD
	}
	spec, err := json.MarshalIndent(bs, "", "  ")
	if err != nil {
		return "", nil, err
	}
	specPath := filepath.Join(p.DataDir, "boot.json")
	if err := atomicfile.Write(specPath, spec, fileperm.File); err != nil {
		return "", nil, err
	}
	logPath := filepath.Join(p.DataDir, "boot.log")
	pr, err := spawnWithSecrets([]string{init, "--spec", specPath}, logPath, secrets)
	if err != nil {
		return "", nil, fmt.Errorf("start kiln-boot: %w", err)
	}
	p.Process = &pr
	// Wait for the init to report its units started; the application's health is the
	// rollout's business, judged through the load balancer.
	statusPath := filepath.Join(p.DataDir, "status.json")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(statusPath); err == nil {
			break
		}
		if !pr.alive() {
			return "", nil, fmt.Errorf("kiln-boot exited at start: %s", tailFile(logPath, 2048))
		}
		if time.Now().After(deadline) {
			stop(ctx, pr, time.Second)
			return "", nil, fmt.Errorf("kiln-boot did not start its units within 15s: %s", tailFile(logPath, 2048))
		}
		select {
		case <-ctx.Done():
			stop(context.Background(), pr, time.Second)
			return "", nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	outs, err := encode(p)
	return id, outs, err
}

// secretsFD is the descriptor kiln-boot reads its secrets from: the first one after
// stdin, stdout and stderr (exec.Cmd.ExtraFiles[0]).
const secretsFD = 3

// spawnWithSecrets starts kiln-boot and, when there are secrets, writes them as JSON to a
// pipe it inherits as secretsFD. The pipe is written after the start, so secrets larger
// than its buffer cannot block.
func spawnWithSecrets(argv []string, logPath string, secrets map[string]string) (proc, error) {
	if len(secrets) == 0 {
		return spawn(argv, childEnv(), logPath)
	}
	data, err := json.Marshal(secrets)
	if err != nil {
		return proc{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return proc{}, err
	}
	defer w.Close()
	pr, err := spawn(argv, childEnv(), logPath, r)
	r.Close()
	if err != nil {
		return proc{}, err
	}
	if _, err := w.Write(data); err != nil {
		stop(context.Background(), pr, time.Second)
		return proc{}, fmt.Errorf("hand the secrets to kiln-boot: %w", err)
	}
	return pr, nil
}

// initExecutable is the init an instance of the image runs: the kiln-boot baked into it,
// or, for an image baked before kiln-boot was, the kiln-boot installed beside kiln.
func initExecutable(imageDir string, meta images.Meta) (string, error) {
	if meta.Init != nil {
		return filepath.Join(imageDir, meta.Init.Path), nil
	}
	return binary(images.InitName)
}

func (instanceKind) read(_ context.Context, _ string, state map[string]any) (bool, error) {
	var p instanceProps
	if err := decode(state, &p); err != nil {
		return false, err
	}
	return p.Process != nil && p.Process.alive(), nil
}

func (instanceKind) update(_ context.Context, _ string, _, news map[string]any) (map[string]any, error) {
	return news, nil // never called: every change replaces
}

func (instanceKind) delete(ctx context.Context, _ string, state map[string]any) error {
	var p instanceProps
	if err := decode(state, &p); err != nil {
		return err
	}
	drain, err := time.ParseDuration(p.DrainTimeout)
	if err != nil {
		drain = 15 * time.Second
	}
	if p.Process != nil {
		// The init forwards SIGTERM to its units and kills what is left after the drain
		// timeout; the extra seconds are its own grace before the group is killed.
		if err := stop(ctx, *p.Process, drain+5*time.Second); err != nil {
			return err
		}
	}
	if p.DataDir != "" {
		return os.RemoveAll(p.DataDir)
	}
	return nil
}
