package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/kilnhq/kiln/targets/local/schema"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// lbProps are the inputs and outputs of a kiln:local:LoadBalancer.
type lbProps struct {
	schema.LoadBalancer[string]

	// Outputs.
	schema.LoadBalancerOutputs
	Generation int64 `json:"generation,omitempty"`
	Process    *proc `json:"process,omitempty"`
	// Bound is the listen and admin address written into the config the running
	// daemon started with; a reload must repeat them unchanged.
	Bound *[2]string `json:"bound,omitempty"`
}

// lbKind runs `kiln lb`, kiln's weighted reverse proxy, as a daemon. Changes of groups,
// weights, health checks, drain timeout and per-request bounds are applied live by a reload
// that waits for leaving targets to drain; new listener bounds restart the daemon on its
// address; a new listen address replaces the daemon.
type lbKind struct{}

func (lbKind) replaceKeys() []string { return []string{"service", "runDir", "listen"} }

func (lbKind) check(news map[string]any) []*pulumirpc.CheckFailure {
	p, err := lbInputs(news)
	if err != nil {
		return []*pulumirpc.CheckFailure{failure("", "%v", err)}
	}
	if _, err := lb.ParseConfig("load balancer", mustJSON(p.config(1, p.Listen, "127.0.0.1:0"))); err != nil {
		return []*pulumirpc.CheckFailure{failure("", "%v", err)}
	}
	return nil
}

func lbInputs(m map[string]any) (lbProps, error) {
	var p lbProps
	err := decode(m, &p)
	return p, err
}

func (p lbProps) dir() string { return filepath.Join(p.RunDir, "lb", p.Service) }

func (p lbProps) config(gen int64, listen, admin string) lb.Config {
	return lb.Config{Generation: gen, Listen: listen, Admin: admin, DrainTimeout: p.DrainTimeout, Health: p.Health, Proxy: p.Proxy,
		Groups: schema.LBGroups(p.Groups)}
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// start writes the config and runs a new daemon, waiting until it is listening.
func (p *lbProps) start(ctx context.Context, gen int64, listen, admin string) error {
	kilnLB, err := binary("kiln-lb")
	if err != nil {
		return err
	}
	dir := p.dir()
	if err := os.MkdirAll(dir, fileperm.Dir); err != nil {
		return err
	}
	cfgPath, readyPath, logPath := filepath.Join(dir, "lb.json"), filepath.Join(dir, "ready.json"), filepath.Join(dir, "lb.log")
	os.Remove(readyPath)
	if err := atomicfile.Write(cfgPath, mustJSON(p.config(gen, listen, admin)), fileperm.File); err != nil {
		return err
	}
	pr, err := spawn([]string{kilnLB, "--config", cfgPath, "--ready-file", readyPath}, childEnv(), logPath)
	if err != nil {
		return fmt.Errorf("start kiln lb: %w", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(readyPath); err == nil {
			var r lb.Ready
			if err := json.Unmarshal(b, &r); err != nil {
				stop(ctx, pr, time.Second)
				return fmt.Errorf("kiln lb ready file: %w", err)
			}
			p.Address, p.Admin, p.Generation, p.Process = r.Listen, r.Admin, r.Generation, &pr
			p.Bound = &[2]string{listen, admin}
			return atomicfile.Write(filepath.Join(dir, "address"), []byte(r.Listen+"\n"), fileperm.File)
		}
		if !pr.alive() {
			return fmt.Errorf("kiln lb exited at start: %s", tailFile(logPath, 2048))
		}
		if time.Now().After(deadline) {
			stop(ctx, pr, time.Second)
			return fmt.Errorf("kiln lb did not listen within 15s: %s", tailFile(logPath, 2048))
		}
		select {
		case <-ctx.Done():
			stop(context.Background(), pr, time.Second)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (lbKind) create(ctx context.Context, inputs map[string]any) (string, map[string]any, error) {
	p, err := lbInputs(inputs)
	if err != nil {
		return "", nil, err
	}
	// A balancer re-created after it died (kiln heals by refresh and apply) takes back the
	// address its clients know, when the manifest let kiln pick the port.
	listen := p.Listen
	if strings.HasSuffix(listen, ":0") {
		if b, err := os.ReadFile(filepath.Join(p.dir(), "address")); err == nil {
			listen = strings.TrimSpace(string(b))
		}
	}
	if err := p.start(ctx, 1, listen, "127.0.0.1:0"); err != nil && listen != p.Listen {
		err = p.start(ctx, 1, p.Listen, "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
	} else if err != nil {
		return "", nil, err
	}
	outs, err := encode(p)
	return p.Service + "-lb", outs, err
}

func (lbKind) read(_ context.Context, _ string, state map[string]any) (bool, error) {
	var p lbProps
	if err := decode(state, &p); err != nil {
		return false, err
	}
	return p.Process != nil && p.Process.alive(), nil
}

func (lbKind) update(ctx context.Context, _ string, olds, news map[string]any) (map[string]any, error) {
	var old lbProps
	if err := decode(olds, &old); err != nil {
		return nil, err
	}
	p, err := lbInputs(news)
	if err != nil {
		return nil, err
	}
	p.Address, p.Admin, p.Generation, p.Process, p.Bound = old.Address, old.Admin, old.Generation+1, old.Process, old.Bound
	if p.Process == nil || !p.Process.alive() || p.Bound == nil {
		// The daemon died (or was killed): start a new one on the address clients know.
		if err := p.start(ctx, p.Generation, old.Address, "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("restart the load balancer: %w", err)
		}
		return encode(p)
	}
	running, next := old.config(old.Generation, old.Bound[0], old.Bound[1]), p.config(p.Generation, p.Bound[0], p.Bound[1])
	if f := running.RestartField(&next); f != "" {
		// The listener's bounds take effect when the daemon starts: restart it where clients know it.
		if err := stop(ctx, *old.Process, old.DrainTimeout.Std()+5*time.Second); err != nil {
			return nil, fmt.Errorf("restart the load balancer for a new %s: %w", f, err)
		}
		if err := p.start(ctx, p.Generation, old.Address, "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("restart the load balancer for a new %s: %w", f, err)
		}
		return encode(p)
	}
	cfgPath := filepath.Join(p.dir(), "lb.json")
	if err := atomicfile.Write(cfgPath, mustJSON(next), fileperm.File); err != nil {
		return nil, err
	}
	res, err := reload(ctx, p.Admin, p.DrainTimeout.Std()+10*time.Second)
	if err != nil {
		return nil, err
	}
	p.Generation = res.Generation
	return encode(p)
}

// reload asks the daemon to apply its config file; it answers once leaving targets have
// drained (or the drain timeout passed).
func reload(ctx context.Context, admin string, timeout time.Duration) (lb.ReloadResult, error) {
	var res lb.ReloadResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+"/reload", nil)
	if err != nil {
		return res, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, fmt.Errorf("reload the load balancer: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("reload the load balancer: %s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, fmt.Errorf("reload the load balancer: %w", err)
	}
	return res, nil
}

func (lbKind) delete(ctx context.Context, _ string, state map[string]any) error {
	var p lbProps
	if err := decode(state, &p); err != nil {
		return err
	}
	if p.Process != nil {
		if err := stop(ctx, *p.Process, p.DrainTimeout.Std()+5*time.Second); err != nil {
			return err
		}
	}
	if p.RunDir != "" && p.Service != "" {
		return os.RemoveAll(p.dir())
	}
	return nil
}
