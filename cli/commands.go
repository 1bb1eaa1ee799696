package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/targets"
	"github.com/spf13/cobra"
)

func (a *app) initCmd() *cobra.Command {
	var service string
	var force bool
	c := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter manifest",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			if service == "" {
				abs, _ := filepath.Abs(filepath.Dir(a.file))
				service = manifests.ServiceName(filepath.Base(abs))
			}
			if err := manifests.CheckServiceName(service); err != nil {
				return &usageError{msg: fmt.Sprintf("--service %q: %v", service, err)}
			}
			flags := os.O_CREATE | os.O_WRONLY | os.O_EXCL
			if force {
				flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
			}
			f, err := os.OpenFile(a.file, flags, 0o644)
			if errors.Is(err, os.ErrExist) {
				return &usageError{msg: fmt.Sprintf("%s already exists (use --force to overwrite it)", a.file)}
			}
			if err != nil {
				return err
			}
			if _, err := f.Write(manifests.Starter(service)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return a.result(map[string]string{"file": a.file, "service": service}, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s for service %s; edit it, then run: kiln validate && kiln rollout\n", a.file, service)
			})
		},
	}
	c.Flags().StringVar(&service, "service", "", "service name (default: the directory's name)")
	c.Flags().BoolVar(&force, "force", false, "overwrite an existing manifest")
	return c
}

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check the manifest, resolve its components and the app the bake builds; exit 2 if it is invalid",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			if err := p.CheckBake(c.Context()); err != nil {
				return err
			}
			m := p.Manifest
			type component struct {
				Name       string `json:"name"`
				Version    string `json:"version"`
				Constraint string `json:"constraint"`
			}
			rep := struct {
				File       string      `json:"file"`
				Service    string      `json:"service"`
				Version    string      `json:"version"`
				Size       int         `json:"size"`
				Target     string      `json:"target"`
				Components []component `json:"components"`
			}{File: a.file, Service: m.Service, Version: m.Version.Original(), Size: m.Fleet.Size, Target: m.Target.Name(), Components: []component{}}
			for _, rc := range m.Resolved {
				rep.Components = append(rep.Components, component{rc.Name, rc.Version.Original(), rc.Constraint})
			}
			return a.result(rep, func(w io.Writer) {
				fmt.Fprintf(w, "%s: ok: service %s %s, %d instance(s) per slot on the %s target\n", a.file, rep.Service, rep.Version, rep.Size, rep.Target)
				for _, c := range rep.Components {
					fmt.Fprintf(w, "  component %s %s (wanted %q)\n", c.Name, c.Version, c.Constraint)
				}
			})
		},
	}
}

func (a *app) bakeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bake [FILE]",
		Short: "Bake the release into a local image (a cache hit when nothing changed)",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			start := time.Now()
			res, err := p.BakeImage(c.Context())
			if err != nil {
				return err
			}
			took := time.Since(start)
			rep := map[string]any{"service": p.Manifest.Service, "version": res.Image.Version, "digest": res.Image.Digest,
				"dir": res.Image.Dir, "cached": res.Cached, "duration": took}
			return a.result(rep, func(w io.Writer) {
				how := "baked"
				if res.Cached {
					how = "unchanged, cached"
				}
				fmt.Fprintf(w, "%s %s %s in %s (%s)\n  %s\n", p.Manifest.Service, res.Image.Version, res.Image.Digest, round(took), how, res.Image.Dir)
			})
		},
	}
}

// rolloutOptions are the flags of one rollout.
type rolloutOptions struct {
	allowDowngrade, breakLock bool
	// release, if set, is rolled out instead of the manifest's (rollback redeploys a
	// kept image).
	release *fleet.Release
	// quiet prints nothing: a console that follows the rollout through its control
	// socket owns the screen.
	quiet bool
}

func (a *app) rolloutCmd() *cobra.Command {
	var ro rolloutOptions
	var preview bool
	c := &cobra.Command{
		Use:   "rollout [FILE]",
		Short: "Bake and roll out the release blue-green; roll back if it does not become healthy",
		Long: `rollout bakes the manifest's release and rolls it out blue-green: the idle slot boots the
new image, traffic moves through the manifest's steps once every new instance is healthy,
and the old slot is retired. Any failure sends traffic back to the stable slot and
removes the new one. From another terminal, 'kiln rollout pause|resume|promote|abort'
steer the running rollout.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			tgt, err := a.target(c.Context(), p)
			if err != nil {
				return a.notStarted(c.Context(), err)
			}
			if preview {
				return a.preview(c.Context(), p, tgt)
			}
			fin, err := a.rollout(c.Context(), p, tgt, ro)
			if err != nil {
				return a.notStarted(c.Context(), err)
			}
			a.reported = true
			if fin.Outcome != rollout.Promoted && fin.Outcome != rollout.Unchanged {
				return &outcomeError{fin: fin}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&ro.allowDowngrade, "allow-downgrade", false, "allow a release older than the live one")
	c.Flags().BoolVar(&preview, "preview", false, "print what each phase would change (the first one previewed by Pulumi) and change nothing")
	c.Flags().BoolVar(&ro.breakLock, "break-lock", false, "clear the stack's lock if its holder is gone (a kiln that was killed)")
	c.Flags().BoolVar(&ro.breakLock, "resume", false, "resume the rollout a killed kiln left (clears its lock once its holder is gone; same as --break-lock)")
	for _, cmd := range []struct {
		name  rollout.Command
		short string
	}{
		{rollout.CmdPause, "Pause the running rollout at its next wait (a timed pause keeps its remaining time)"},
		{rollout.CmdResume, "Resume a paused rollout (also accepts an inconclusive analysis)"},
		{rollout.CmdPromote, "Skip the remaining traffic steps, pauses and step analyses: go to 100% now"},
		{rollout.CmdAbort, "Abort the running rollout: traffic back to the stable slot, the new slot removed"},
	} {
		cmd := cmd
		c.AddCommand(&cobra.Command{
			Use:   string(cmd.name) + " [FILE]",
			Short: cmd.short,
			Args:  a.manifestArg,
			RunE: func(c *cobra.Command, _ []string) error {
				p, err := a.load()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
				defer cancel()
				if err := control.Send(ctx, p.ControlSocket(), cmd.name); err != nil {
					return fmt.Errorf("%s %s: %w", cmd.name, p.Manifest.Service, err)
				}
				return a.result(map[string]string{"service": p.Manifest.Service, "accepted": string(cmd.name)}, func(w io.Writer) {
					fmt.Fprintf(w, "%s: %s accepted\n", p.Manifest.Service, cmd.name)
				})
			},
		})
	}
	return c
}

// notStarted is the error of a rollout that could not start. Interrupted before its
// engine ran (opening the stack, taking the lock), it still ends as every rollout does:
// with a finished event saying interrupted, for CI that reads the events.
func (a *app) notStarted(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	fin := rollout.Finished{At: time.Now(), Outcome: rollout.Interrupted, Reason: rollout.ReasonCancelled,
		Message: "interrupted before the rollout started: " + err.Error()}
	a.printer().event(fin)
	a.reported = true
	return &outcomeError{fin: fin}
}

// printer prints events as JSON lines or as human lines, as --output says.
func (a *app) printer() printer {
	if a.jsonOutput() {
		return jsonPrinter{w: a.stdout}
	}
	return &linePrinter{w: a.stdout}
}

// rollout runs one rollout session of p's release, printing its events (or showing them
// in the console) and what image collection removed. The error is for what kept it from
// starting (the lock); how it ended is in Finished.
func (a *app) rollout(ctx context.Context, p *project.Project, tgt targets.Target, ro rolloutOptions) (rollout.Finished, error) {
	s := &project.Session{Project: p, Target: tgt, Command: "kiln rollout", BreakLock: ro.breakLock,
		AllowDowngrade: ro.allowDowngrade, Release: ro.release}
	in, out, console := a.consoleFiles()
	console = console && !ro.quiet
	switch {
	case ro.quiet:
		// A console following through the control socket owns the screen.
		s.Sinks = []project.Sink{func(events <-chan rollout.Event) {
			for range events {
			}
		}}
	case console:
		req := s.Request()
		s.Sinks = []project.Sink{func(events <-chan rollout.Event) { a.console(ctx, p, tgt, req, in, out, events) }}
	default:
		pr := a.printer()
		s.Sinks = []project.Sink{func(events <-chan rollout.Event) {
			for ev := range events {
				pr.event(ev)
			}
		}}
	}
	res, err := s.Run(ctx)
	if err != nil {
		return rollout.Finished{}, err
	}
	if console {
		// The console has left the screen; say how the rollout ended where it stays.
		(&linePrinter{w: a.stdout}).event(res.Finished)
	}
	switch {
	case res.GCErr != nil:
		fmt.Fprintf(a.stderr, "kiln: %v\n", res.GCErr)
	case len(res.RemovedImages) > 0 && !a.jsonOutput() && !ro.quiet:
		fmt.Fprintf(a.stdout, "removed %d old image(s), keeping the last %d\n", len(res.RemovedImages), p.Manifest.Images.Keep)
	}
	return res.Finished, nil
}

// statusReport is `kiln status` as JSON.
type statusReport struct {
	Service   string                 `json:"service"`
	Target    string                 `json:"target"`
	Endpoint  string                 `json:"endpoint,omitempty"`
	Live      *fleet.Release         `json:"live,omitempty"`
	LiveSlot  fleet.Slot             `json:"liveSlot,omitempty"`
	Weights   map[fleet.Slot]int     `json:"weights"`
	Slots     map[fleet.Slot]any     `json:"slots"`
	Instances []fleet.InstanceHealth `json:"instances"`
	HealthErr string                 `json:"healthError,omitempty"`
	Backup    []backupAgent          `json:"backup,omitempty"`
}

// newStatusReport is what kiln status shows of spec, but the instances' health.
func newStatusReport(ctx context.Context, p *project.Project, tgt rollout.Target, spec fleet.Spec, exists bool) statusReport {
	rep := statusReport{Service: p.Manifest.Service, Target: tgt.Name(), Weights: map[fleet.Slot]int{}, Slots: map[fleet.Slot]any{}}
	if !exists {
		return rep
	}
	rep.Endpoint, _ = tgt.Endpoint(ctx)
	if sl, ok := spec.Live(); ok {
		rep.LiveSlot, rep.Live = sl, spec.Slots[sl].Release
	}
	for _, sl := range fleet.Slots {
		rep.Weights[sl] = spec.Slots[sl].Weight
		rep.Slots[sl] = spec.Slots[sl]
	}
	return rep
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [FILE]",
		Short: "Show the live slot, release, traffic weights and instance health",
		Long: `status prints the live slot, release, traffic weights and every instance's health once
(as JSON when stdout is not a terminal, e.g. kiln status | jq). kiln watch shows the same live, on a terminal, and follows
rollouts as they run.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			p, err := a.load()
			if err != nil {
				return err
			}
			tgt, err := a.target(ctx, p)
			if err != nil {
				return err
			}
			spec, exists, err := tgt.Current(ctx)
			if err != nil {
				return err
			}
			rep := newStatusReport(ctx, p, tgt, spec, exists)
			if exists {
				if rep.Instances, err = tgt.Health(ctx); err != nil {
					rep.HealthErr = err.Error()
				}
				rep.Backup = readBackupAgents(ctx, rep.Instances)
			}
			if a.jsonOutput() {
				return json.NewEncoder(a.stdout).Encode(rep)
			}
			w := a.stdout
			fmt.Fprintf(w, "service   %s (%s target)\n", rep.Service, rep.Target)
			if !exists {
				fmt.Fprintf(w, "nothing deployed yet: run kiln rollout\n")
				return nil
			}
			fmt.Fprintf(w, "endpoint  %s\n", fleet.URL(rep.Endpoint))
			if rep.Live != nil {
				fmt.Fprintf(w, "live      slot %s: %s, %d instance(s)\n", rep.LiveSlot, rep.Live, spec.Slots[rep.LiveSlot].Size)
			} else {
				fmt.Fprintf(w, "live      nothing serves traffic\n")
			}
			fmt.Fprintf(w, "traffic   blue %d%% / green %d%%\n", rep.Weights[fleet.Blue], rep.Weights[fleet.Green])
			printBackupAgents(w, rep.Backup, time.Now())
			if rep.HealthErr != "" {
				fmt.Fprintf(w, "health    unavailable: %s\n", rep.HealthErr)
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE\tSLOT\tHEALTH\tADDRESS\tRESTARTS\tLAST CHECK\tLAST ERROR")
			for _, h := range rep.Instances {
				last := "-"
				if !h.LastCheck.IsZero() {
					last = round(time.Since(h.LastCheck)).String() + " ago"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", h.ID, h.Slot, h.State, h.Address, h.Restarts, last, h.LastError)
			}
			return tw.Flush()
		},
	}
}

func (a *app) destroyCmd() *cobra.Command {
	var breakLock bool
	c := &cobra.Command{
		Use:   "destroy [FILE]",
		Short: "Stop every instance and the load balancer of the service",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			p, err := a.load()
			if err != nil {
				return err
			}
			store, err := p.Releases()
			if err != nil {
				return err
			}
			unlock, _, err := project.LockStack(ctx, store, "kiln destroy", breakLock)
			if err != nil {
				return err
			}
			defer unlock()
			tgt, err := a.target(ctx, p)
			if err != nil {
				return err
			}
			n := 0
			err = tgt.Destroy(ctx, func(op fleet.ResourceOp) {
				if op.Status == fleet.OpDone {
					n++
					if !a.jsonOutput() {
						fmt.Fprintf(a.stdout, "  %s %s %s (%s)\n", op.Op, shortType(op.Type), op.Name, round(op.Duration))
					}
				}
			})
			if err != nil {
				return err
			}
			if err := store.ClearState(); err != nil {
				return err
			}
			return a.result(map[string]any{"service": p.Manifest.Service, "removed": n}, func(w io.Writer) {
				fmt.Fprintf(w, "destroyed %s: %d resource(s) removed, no process left\n", p.Manifest.Service, n)
			})
		},
	}
	c.Flags().BoolVar(&breakLock, "break-lock", false, "clear the stack's lock if its holder is gone (a kiln that was killed)")
	return c
}

func (a *app) imagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "images [FILE]",
		Short: "List the baked images kept for rollback",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			list, err := p.Images().List()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if list == nil {
					list = []images.Entry{} // a list, also when empty
				}
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tVERSION\tDIGEST\tBAKED")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Version, (fleet.Image{Digest: e.Digest}).Short(), e.BakedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}
