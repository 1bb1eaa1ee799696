package stacks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Up runs program and reports every resource operation to ops as it starts and ends.
//
// It runs one engine process, `pulumi up`, with program served by kiln's own language
// host, and takes the stack's outputs from the engine's events. The Automation API's Up
// would also run `pulumi stack output` and `pulumi stack history` after every update,
// about 0.2 s each.
func (s *Stack) Up(ctx context.Context, program pulumi.RunFunc, ops func(fleet.ResourceOp)) (auto.OutputMap, error) {
	host, err := startLangHost(program)
	if err != nil {
		return nil, fmt.Errorf("up %s: %w", s.opts.Stack, err)
	}
	defer host.stop()
	// The event log lives in the state directory, one per stack: the stack's lock allows
	// one update at a time, and an update killed with -9 leaves nothing behind elsewhere
	// (the next update of the stack starts by clearing it).
	dir := filepath.Join(s.opts.StateDir, "tmp", "up-"+s.opts.Stack)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("up %s: %w", s.opts.Stack, err)
	}
	if err := os.MkdirAll(dir, fileperm.Dir); err != nil {
		return nil, fmt.Errorf("up %s: %w", s.opts.Stack, err)
	}
	defer os.RemoveAll(dir)
	eventLog := filepath.Join(dir, "events.jsonl")

	var stderr bytes.Buffer
	cmd := s.engineCmd(ctx, &stderr, "up", "--yes", "--skip-preview", "--suppress-progress",
		"--client="+host.addr, "--exec-kind=auto.inline", "--event-log", eventLog)

	diags := &diagnostics{}
	ch := make(chan events.EngineEvent)
	done := translate(ch, ops, diags)
	exited := make(chan struct{})
	var outs auto.OutputMap
	go func() {
		defer close(ch)
		tailEventLog(eventLog, exited, func(ev events.EngineEvent) {
			if o, ok := stackOutputs(ev); ok {
				outs = o
			}
			ch <- ev
		})
	}()
	err = cmd.Run()
	close(exited)
	<-done
	if err != nil {
		s.Forget()
		return nil, engineError(newCLIError("up", err, &stderr), diags)
	}
	if outs == nil {
		// No outputs event, or secret outputs the event log blinds: ask the backend.
		if outs, err = s.Outputs(ctx); err != nil {
			s.Forget()
			return nil, err
		}
	}
	s.setKnown(outs, true)
	return outs, nil
}

// stackOutputs returns the stack's outputs if ev is the root stack resource's outputs
// event. A secret output is written to the event log blinded, so outputs with a secret
// are not returned.
func stackOutputs(ev events.EngineEvent) (auto.OutputMap, bool) {
	if ev.ResOutputsEvent == nil {
		return nil, false
	}
	m := ev.ResOutputsEvent.Metadata
	if m.Type != string(resource.RootStackType) || m.New == nil {
		return nil, false
	}
	outs := auto.OutputMap{}
	for k, v := range m.New.Outputs {
		if hasSecret(v) {
			return nil, false
		}
		outs[k] = auto.OutputValue{Value: v}
	}
	return outs, true
}

// hasSecret says v holds a secret value, serialized as an object with the secret
// signature.
func hasSecret(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		if v[resource.SigKey] == resource.SecretSig {
			return true
		}
		for _, x := range v {
			if hasSecret(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasSecret(x) {
				return true
			}
		}
	}
	return false
}
