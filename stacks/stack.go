// Package stacks is kiln's Pulumi driver: it runs a target's inline program through the
// Automation API with the pinned Pulumi CLI, against the stack's backend (a file backend
// in kiln's state directory unless told otherwise) and secrets provider (a passphrase
// kept beside the state by default), and reports the engine's steps as fleet.ResourceOps.
// It knows no target: programs come from targets. What only the file backend needs
// (stale update locks of killed engines, the generated passphrase) is in filebackend.go.
package stacks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blang/semver"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Project is the Pulumi project name of every kiln stack; the stack is named after the
// service.
const Project = "kiln"

// OutputSpec is the stack output every fleet program exports: the fleet.Spec it applied,
// as JSON, so the next rollout starts from what really happened.
const OutputSpec = "spec"

// Options say where a stack lives and what the engine runs with.
type Options struct {
	// StateDir is kiln's state directory on this host (absolute): the Pulumi home and
	// work directories, and the file backend unless Backend names another.
	StateDir string
	// Backend is the Pulumi backend URL; empty is the file backend in StateDir/pulumi.
	Backend string
	// SecretsProvider encrypts the stack's secrets when the stack is created: any Pulumi
	// secrets-provider URL (e.g. awskms://...). Empty is $KILN_SECRETS_PROVIDER, else
	// "passphrase", with the passphrase from $KILN_PASSPHRASE or
	// PULUMI_CONFIG_PASSPHRASE(_FILE), else one kept in StateDir.
	SecretsProvider string
	// Stack is the stack name: the service.
	Stack string
	// PulumiRoot is a Pulumi CLI installation (root/bin/pulumi), from pulumicli.Ensure.
	PulumiRoot string
	// PluginDir holds the provider plugins the stack's programs use (pulumi-resource-kiln;
	// the aws target adds the pulumi-aws plugin's directory as a PATH list); it is put
	// first on the engine's PATH.
	PluginDir string
	// Env is passed to the engine and so to the providers it starts.
	Env map[string]string
	// Log receives the engine's raw output.
	Log io.Writer
}

// Environment variables that choose how a stack's secrets are encrypted.
const (
	// SecretsProviderEnv names the secrets provider of stacks kiln creates.
	SecretsProviderEnv = "KILN_SECRETS_PROVIDER"
	// PassphraseEnv holds the passphrase of the passphrase provider (for CI, and for
	// every host of a shared backend).
	PassphraseEnv = "KILN_PASSPHRASE"
)

// Stack is one kiln stack, opened for operations.
type Stack struct {
	opts  Options
	stack auto.Stack
	ws    auto.Workspace

	// The stack's outputs as this Stack last knew them (nil: not known), and whether they
	// are those of its own last update rather than read.
	mu      sync.Mutex
	known   auto.OutputMap
	updated bool
}

// engineUmask is the file creation mask of this process once it drives an engine. The
// Pulumi CLI writes the stack's state, history, locks and its logs 0644 in 0755
// directories whatever kiln asks; it, and the plugins and processes it starts, inherit
// this process's mask, which makes them its user's only (fileperm).
const engineUmask = 0o077

// Open creates the stack if it does not exist and selects it. It sets this process's
// umask to 077 (engineUmask).
func Open(ctx context.Context, opts Options) (*Stack, error) {
	if !filepath.IsAbs(opts.StateDir) {
		return nil, fmt.Errorf("state dir %q is not absolute", opts.StateDir)
	}
	syscall.Umask(engineUmask)
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Backend == "" {
		opts.Backend = fileBackendURL(opts.StateDir)
	}
	if opts.SecretsProvider == "" {
		opts.SecretsProvider = os.Getenv(SecretsProviderEnv)
	}
	if opts.SecretsProvider == "" {
		opts.SecretsProvider = "passphrase"
	}
	home := filepath.Join(opts.StateDir, "pulumi-home")
	work := filepath.Join(opts.StateDir, "pulumi-work", opts.Stack)
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, fileperm.Dir); err != nil {
			return nil, fmt.Errorf("open stack %s: %w", opts.Stack, err)
		}
	}
	if fb, isFile := fileBackendOf(opts.Backend); isFile {
		if err := fb.prepare(opts.Stack); err != nil {
			return nil, fmt.Errorf("open stack %s: %w", opts.Stack, err)
		}
	}
	env := map[string]string{
		"PULUMI_SKIP_UPDATE_CHECK":                 "true",
		"PULUMI_DIY_BACKEND_NO_LEGACY_WARNING":     "true",
		"PULUMI_SKIP_CONFIRMATIONS":                "true",
		"PULUMI_BACKEND_URL":                       opts.Backend,
		"PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
		// kiln runs offline with its own provider: never look for plugins to download.
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		"PULUMI_DISABLE_REGISTRY_RESOLVE":             "true",
		// The checkpoint itself is still written after every step; these are extra
		// copies of each one, which cost every update time and disk.
		"PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS": "true",
	}
	if opts.SecretsProvider == "passphrase" {
		if err := passphraseEnv(env, opts); err != nil {
			return nil, fmt.Errorf("open stack %s: %w", opts.Stack, err)
		}
	}
	path := os.Getenv("PATH")
	if opts.PluginDir != "" {
		path = opts.PluginDir + string(os.PathListSeparator) + path
	}
	env["PATH"] = path
	for k, v := range opts.Env {
		env[k] = v
	}
	cmd := newCLICommand(opts.PulumiRoot, semver.MustParse(pulumicli.Version))
	wsOpts := []auto.LocalWorkspaceOption{
		auto.Pulumi(cmd),
		auto.WorkDir(work),
		auto.PulumiHome(home),
		auto.EnvVars(env),
		auto.SecretsProvider(opts.SecretsProvider),
		auto.Project(workspace.Project{
			Name:    tokens.PackageName(Project),
			Runtime: workspace.NewProjectRuntimeInfo("go", nil),
			Backend: &workspace.ProjectBackend{URL: opts.Backend},
		}),
	}
	var s auto.Stack
	err := readRetry(ctx, func() error {
		ws, err := auto.NewLocalWorkspace(ctx, wsOpts...)
		if err != nil {
			return err
		}
		if fb, ok := fileBackendOf(opts.Backend); ok && fb.hasStack(Project, opts.Stack) {
			s, err = auto.SelectStack(ctx, opts.Stack, selected{ws})
		} else {
			s, err = auto.UpsertStack(ctx, opts.Stack, ws)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open stack %s: %w", opts.Stack, engineError(err, nil))
	}
	return &Stack{opts: opts, stack: s, ws: s.Workspace()}, nil
}

// selected is a workspace whose stack is known to exist and needs no selecting: kiln
// names the stack in every engine command (--stack), so the `pulumi stack select` the
// Automation API runs to open a stack (0.2 s) is left out.
type selected struct{ auto.Workspace }

func (selected) SelectStack(context.Context, string) error { return nil }

// passphraseEnv tells the engine the passphrase of the stack's secrets: Pulumi's own
// variables if set; for a file backend, the passphrase kiln generated for it, if it did;
// else $KILN_PASSPHRASE; else, for a file backend only, a new generated one kept in the
// state directory. A shared backend is read from several machines, which must all use the
// same passphrase: kiln does not invent one there.
func passphraseEnv(env map[string]string, opts Options) error {
	if os.Getenv("PULUMI_CONFIG_PASSPHRASE") != "" || os.Getenv("PULUMI_CONFIG_PASSPHRASE_FILE") != "" {
		return nil
	}
	_, isFile := fileBackendOf(opts.Backend)
	if p := passphrasePath(opts.StateDir); isFile {
		if _, err := os.Stat(p); err == nil {
			env["PULUMI_CONFIG_PASSPHRASE_FILE"] = p
			return nil
		}
	}
	if pp := os.Getenv(PassphraseEnv); pp != "" {
		// Handed to the engine in its environment, never on a command line.
		env["PULUMI_CONFIG_PASSPHRASE"] = pp
		return nil
	}
	if !isFile {
		return fmt.Errorf("the stack's state is shared (%s) and encrypted with a passphrase every machine must know: set KILN_PASSPHRASE (in CI, from the pipeline's secrets), or use a secrets provider such as awskms://", opts.Backend)
	}
	pp, err := passphraseFile(opts.StateDir)
	if err != nil {
		return err
	}
	env["PULUMI_CONFIG_PASSPHRASE_FILE"] = pp
	return nil
}

// Preview runs program without changing anything and returns the engine's summary:
// the count of planned operations by kind.
func (s *Stack) Preview(ctx context.Context, program pulumi.RunFunc, ops func(fleet.ResourceOp)) (map[apitype.OpType]int, error) {
	s.ws.SetProgram(program)
	diags := &diagnostics{}
	ch := make(chan events.EngineEvent)
	done := translate(ch, ops, diags)
	res, err := s.stack.Preview(ctx, optpreview.EventStreams(ch), optpreview.ProgressStreams(s.opts.Log))
	drained(done)
	if err != nil {
		return nil, engineError(err, diags)
	}
	return res.ChangeSummary, nil
}

// Refresh reconciles the stack's state with what really runs (a dead instance drops out).
func (s *Stack) Refresh(ctx context.Context, ops func(fleet.ResourceOp)) error {
	diags := &diagnostics{}
	ch := make(chan events.EngineEvent)
	done := translate(ch, ops, diags)
	_, err := s.stack.Refresh(ctx, optrefresh.EventStreams(ch), optrefresh.ProgressStreams(s.opts.Log))
	drained(done)
	s.Forget()
	if err != nil {
		return engineError(err, diags)
	}
	return nil
}

// Outputs reads the outputs of the stack's last update, whoever made it, and keeps them
// (Known).
func (s *Stack) Outputs(ctx context.Context) (auto.OutputMap, error) {
	var outs auto.OutputMap
	err := readRetry(ctx, func() (err error) {
		outs, err = s.readOutputs(ctx)
		return err
	})
	if err != nil {
		return nil, engineError(err, nil)
	}
	s.setKnown(outs, false)
	return outs, nil
}

// Known returns the outputs this Stack knows, from its own last update or its last read,
// without reading; nil if it knows none (it never read them, its last update failed, or
// it forgot them).
func (s *Stack) Known() auto.OutputMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known
}

// KnownOutputs returns the outputs this Stack knows, reading them if it knows none.
func (s *Stack) KnownOutputs(ctx context.Context) (auto.OutputMap, error) {
	if outs := s.Known(); outs != nil {
		return outs, nil
	}
	return s.Outputs(ctx)
}

// UpdatedOutputs returns the outputs of the last update this Stack ran, or nil if it ran
// none, or the last failed, or it read or forgot the outputs since. Only a Stack that
// updates holds the stack's lock (kiln's rollout lock) while it lives, so no other process
// can have changed them since: a target reads its own outputs from here rather than
// running the engine again. A Stack that never updates (kiln status, consoles) reads.
func (s *Stack) UpdatedOutputs() auto.OutputMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.updated {
		return nil
	}
	return s.known
}

// Applied returns the spec the stack's last update applied (AppliedSpec): this Stack's own
// last update's, if it made one (UpdatedOutputs), else read, so that it sees what another
// kiln process applied.
func (s *Stack) Applied(ctx context.Context) (fleet.Spec, bool, error) {
	outs := s.UpdatedOutputs()
	if outs == nil {
		var err error
		if outs, err = s.Outputs(ctx); err != nil {
			return fleet.Spec{}, false, err
		}
	}
	return AppliedSpec(s.opts.Stack, outs)
}

// KnownSpec returns the spec of the outputs this Stack knows (KnownOutputs, AppliedSpec).
func (s *Stack) KnownSpec(ctx context.Context) (fleet.Spec, bool, error) {
	outs, err := s.KnownOutputs(ctx)
	if err != nil {
		return fleet.Spec{}, false, err
	}
	return AppliedSpec(s.opts.Stack, outs)
}

// Forget drops the outputs this Stack knows: the next KnownOutputs reads them.
func (s *Stack) Forget() { s.setKnown(nil, false) }

func (s *Stack) setKnown(outs auto.OutputMap, updated bool) {
	s.mu.Lock()
	s.known, s.updated = outs, updated && outs != nil
	s.mu.Unlock()
}

// secretMask is how `pulumi stack output` shows a secret output without --show-secrets.
const secretMask = "[secret]"

// readOutputs reads the stack's outputs with `pulumi stack output --json`, which shows
// secret outputs masked and so needs no secrets manager: with a passphrase that saves
// the passphrase's key derivation, 0.15 s of every engine process that decrypts. Only if
// an output is secret are the values read again, with --show-secrets. (The Automation
// API's Outputs always runs both.)
func (s *Stack) readOutputs(ctx context.Context) (auto.OutputMap, error) {
	masked, err := s.outputJSON(ctx, false)
	if err != nil {
		return nil, err
	}
	outs := auto.OutputMap{}
	secrets := false
	for k, v := range masked {
		outs[k] = auto.OutputValue{Value: v}
		secrets = secrets || v == secretMask
	}
	if !secrets {
		return outs, nil
	}
	plain, err := s.outputJSON(ctx, true)
	if err != nil {
		return nil, err
	}
	for k, v := range plain {
		outs[k] = auto.OutputValue{Value: v, Secret: masked[k] == secretMask}
	}
	return outs, nil
}

func (s *Stack) outputJSON(ctx context.Context, showSecrets bool) (map[string]any, error) {
	args := []string{"stack", "output", "--json"}
	if showSecrets {
		args = append(args, "--show-secrets")
	}
	out, err := s.engineOutput(ctx, args...)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("stack %s: outputs: %w", s.opts.Stack, err)
	}
	return m, nil
}

// engineOutput runs a read-only engine command and returns what it printed.
func (s *Stack) engineOutput(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := s.engineCmd(ctx, &stderr, args...)
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil, newCLIError(strings.Join(args[:2], " "), err, &stderr)
	}
	return stdout.Bytes(), nil
}

// State is a stack's checkpoint as its backend holds it, secrets still encrypted.
type State struct {
	Resources []struct {
		URN  string `json:"urn"`
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resources"`
	Pending []struct {
		Type     string `json:"type"`
		Resource struct {
			URN    string         `json:"urn"`
			Type   string         `json:"type"`
			Inputs map[string]any `json:"inputs"`
		} `json:"resource"`
	} `json:"pending_operations"`
}

// State reads the stack's checkpoint with `pulumi stack export`. Without --show-secrets
// (which the Automation API's Export always passes) the engine decrypts nothing, so it
// needs no secrets manager (see readOutputs).
func (s *Stack) State(ctx context.Context) (*State, error) {
	var out []byte
	err := readRetry(ctx, func() (err error) {
		out, err = s.engineOutput(ctx, "stack", "export")
		return err
	})
	if err != nil {
		return nil, engineError(err, nil)
	}
	var dep struct {
		Deployment *State `json:"deployment"`
	}
	if err := json.Unmarshal(out, &dep); err != nil {
		return nil, fmt.Errorf("stack %s: state: %w", s.opts.Stack, err)
	}
	if dep.Deployment == nil {
		return &State{}, nil
	}
	return dep.Deployment, nil
}

// ResourceIDs returns the IDs of the state's resources of the given type.
func (st *State) ResourceIDs(typ string) map[string]bool {
	ids := map[string]bool{}
	for _, r := range st.Resources {
		if r.Type == typ && r.ID != "" {
			ids[r.ID] = true
		}
	}
	return ids
}

// PendingCreate is a create an engine began and never saw end (it was killed with kiln):
// the resource may exist in the cloud without the stack knowing it.
type PendingCreate struct {
	URN    string
	Type   string
	Inputs map[string]any
}

// PendingCreates lists the creates the state has pending. The next update drops them
// from the state and creates those resources anew.
func (st *State) PendingCreates() []PendingCreate {
	var out []PendingCreate
	for _, p := range st.Pending {
		if p.Type == "creating" {
			out = append(out, PendingCreate{URN: p.Resource.URN, Type: p.Resource.Type, Inputs: p.Resource.Inputs})
		}
	}
	return out
}

// Destroy deletes every resource of the stack.
func (s *Stack) Destroy(ctx context.Context, ops func(fleet.ResourceOp)) error {
	diags := &diagnostics{}
	ch := make(chan events.EngineEvent)
	done := translate(ch, ops, diags)
	_, err := s.stack.Destroy(ctx, optdestroy.EventStreams(ch), optdestroy.ProgressStreams(s.opts.Log))
	drained(done)
	s.Forget()
	if err != nil {
		return engineError(err, diags)
	}
	return nil
}

// readRetry runs a read-only engine command up to four times. Selecting a stack or reading
// its outputs while another kiln process updates it fails now and then (measured here:
// about one call in a hundred while rollouts run back to back); a moment later it works.
func readRetry(ctx context.Context, fn func() error) error {
	var err error
	for attempt, wait := 0, 100*time.Millisecond; attempt < 4; attempt, wait = attempt+1, wait*2 {
		if err = fn(); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return err
}

// drained waits for the event translator to finish. The SDK closes the event channel
// when the engine's stream ends, but not when the command fails before the stream starts
// (a locked stack): then the translator is left to the garbage of a blocked goroutine
// rather than blocking kiln forever.
func drained(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// diagnostics collects the engine's error messages: they say what went wrong far better
// than the CLI's exit status and full output.
type diagnostics struct {
	mu   sync.Mutex
	msgs []string
}

func (d *diagnostics) add(m string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m = strings.TrimSpace(m)
	for _, x := range d.msgs {
		if x == m {
			return
		}
	}
	d.msgs = append(d.msgs, m)
}

func (d *diagnostics) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.msgs, "; ")
}

// engineError turns an Automation API or CLI error into one that says what the engine said.
func engineError(err error, d *diagnostics) error {
	if d != nil {
		if msg := d.String(); msg != "" {
			return &EngineError{Msg: msg, Err: err}
		}
	}
	var cli *cliError
	if auto.IsConcurrentUpdateError(err) || errors.As(err, &cli) && cli.locked() {
		return &EngineError{Msg: "another update of this stack is in progress", Err: err}
	}
	return err
}

// EngineError is a failed engine operation, with the engine's own diagnostics.
type EngineError struct {
	Msg string
	Err error
}

func (e *EngineError) Error() string { return e.Msg }
func (e *EngineError) Unwrap() error { return e.Err }

// translate forwards engine events to ops as fleet.ResourceOps until the engine closes
// ch; the returned channel is closed when it has.
func translate(ch <-chan events.EngineEvent, ops func(fleet.ResourceOp), diags *diagnostics) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		started := map[string]time.Time{}
		for ev := range ch {
			switch {
			case ev.DiagnosticEvent != nil:
				if ev.DiagnosticEvent.Severity == "error" {
					diags.add(ev.DiagnosticEvent.Message)
				}
			case ev.ResourcePreEvent != nil:
				m := ev.ResourcePreEvent.Metadata
				if skipOp(m) {
					continue
				}
				started[m.URN+string(m.Op)] = time.Now()
				emit(ops, m, fleet.OpStarted, 0, "")
			case ev.ResOutputsEvent != nil:
				m := ev.ResOutputsEvent.Metadata
				if skipOp(m) {
					continue
				}
				emit(ops, m, fleet.OpDone, since(started, m), "")
			case ev.ResOpFailedEvent != nil:
				m := ev.ResOpFailedEvent.Metadata
				if skipOp(m) {
					continue
				}
				emit(ops, m, fleet.OpFailed, since(started, m), diags.String())
			}
		}
	}()
	return done
}

func since(started map[string]time.Time, m apitype.StepEventMetadata) time.Duration {
	if t, ok := started[m.URN+string(m.Op)]; ok {
		return time.Since(t)
	}
	return 0
}

// skipOp leaves out steps that change nothing and the engine's own bookkeeping resources.
func skipOp(m apitype.StepEventMetadata) bool {
	if m.Op == apitype.OpSame {
		return true
	}
	return strings.HasPrefix(m.Type, "pulumi:")
}

func emit(ops func(fleet.ResourceOp), m apitype.StepEventMetadata, status string, d time.Duration, errMsg string) {
	if ops == nil {
		return
	}
	ops(fleet.ResourceOp{
		Op:       string(m.Op),
		Type:     m.Type,
		Name:     resource.URN(m.URN).Name(),
		Status:   status,
		Duration: d,
		Error:    errMsg,
	})
}

// AppliedSpec decodes the spec a fleet program exported (OutputSpec) from a stack's
// outputs; false when the stack has none (nothing was applied yet).
func AppliedSpec(stack string, outs auto.OutputMap) (fleet.Spec, bool, error) {
	s, _ := outs[OutputSpec].Value.(string)
	if s == "" {
		return fleet.Spec{}, false, nil
	}
	var spec fleet.Spec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		return fleet.Spec{}, false, fmt.Errorf("stack %s: spec output: %w", stack, err)
	}
	return spec, true, nil
}
