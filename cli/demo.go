package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/kilnhq/kiln/internal/loadgen"
	"github.com/kilnhq/kiln/rollout"
	"github.com/spf13/cobra"
)

// demoStep is one release of the demo and the outcome it must have.
type demoStep struct {
	version string
	env     map[string]string
	want    rollout.Outcome
	note    string
}

var demoSteps = []demoStep{
	{version: "1.0.0", want: rollout.Promoted, note: "first release: nothing is live yet"},
	{version: "2.0.0", want: rollout.Promoted, note: "blue-green under load: no request may fail"},
	{version: "3.0.0", env: map[string]string{"DEMO_BROKEN": "1"}, want: rollout.RolledBack,
		note: "broken on purpose: its health check fails, so it must be removed and 2.0.0 keep serving"},
}

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Roll out three releases of a demo service on the local target, under load",
		Long: `demo bakes and rolls out release 1.0.0 of examples/demo, then 2.0.0 blue-green while a
bounded load generator sends requests through the load balancer, then a broken 3.0.0
that must fail its health check and leave 2.0.0 serving. It prints how many requests
were sent and how many failed (it must be 0), then destroys the demo unless --keep.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !c.Flags().Changed("file") {
				a.file = "examples/demo/kiln.yaml"
			}
			if a.output == "auto" {
				a.output = "text"
			}
			a.lines = true
			return a.demo(c, keep)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "leave the demo running afterwards (kiln -f examples/demo/kiln.yaml destroy stops it)")
	return c
}

func (a *app) demo(c *cobra.Command, keep bool) error {
	ctx := c.Context()
	out := a.stdout
	p, err := a.load()
	if err != nil {
		return err
	}
	tgt, err := a.target(ctx, p)
	if err != nil {
		return err
	}
	if _, exists, err := tgt.Current(ctx); err != nil {
		return err
	} else if exists {
		fmt.Fprintf(out, "removing the previous demo first\n")
		if err := tgt.Destroy(ctx, nil); err != nil {
			return err
		}
	}
	var load *loadgen.Run
	var failures []string
	for i, st := range demoSteps {
		fmt.Fprintf(out, "\n== step %d/%d: release %s (%s)\n", i+1, len(demoSteps), st.version, st.note)
		v, err := version.NewVersion(st.version)
		if err != nil {
			return err
		}
		p.Manifest.Version, p.Manifest.App.Env = v, st.env
		fin, err := a.rollout(ctx, p, tgt, rolloutOptions{})
		if err != nil {
			return err
		}
		if fin.Outcome != st.want {
			failures = append(failures, fmt.Sprintf("release %s ended %s, want %s: %s", st.version, fin.Outcome, st.want, fin.Message))
			break
		}
		if load == nil {
			addr, err := tgt.Endpoint(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nload balancer at http://%s; starting the load generator (4 workers, at most 100000 requests or 5m)\n", addr)
			load, err = loadgen.Start(ctx, loadgen.Options{URL: "http://" + addr + "/", Workers: 4, MaxTotal: 100000,
				MaxTime: 5 * time.Minute, Pause: 2 * time.Millisecond, VersionHeader: "X-Demo-Version"})
			if err != nil {
				return err
			}
		}
	}
	var rep loadgen.Report
	if load != nil {
		// The broken release is gone; what serves now must be the last good one.
		addr, _ := tgt.Endpoint(ctx)
		if got, err := servingVersion(ctx, "http://"+addr+"/"); err != nil {
			failures = append(failures, "after the broken release: "+err.Error())
		} else if got != "2.0.0" {
			failures = append(failures, fmt.Sprintf("after the broken release %s serves, want 2.0.0", got))
		} else {
			fmt.Fprintf(out, "\nafter the broken release, the load balancer still serves %s\n", got)
		}
		rep = load.Stop()
		if rep.Failed > 0 {
			failures = append(failures, fmt.Sprintf("%d request(s) failed: %v", rep.Failed, rep.Errors))
		}
	}
	if !keep {
		if err := tgt.Destroy(context.WithoutCancel(ctx), nil); err != nil {
			failures = append(failures, "destroy: "+err.Error())
		} else {
			fmt.Fprintf(out, "demo destroyed: no instance or load balancer left running\n")
		}
	} else {
		addr, _ := tgt.Endpoint(ctx)
		fmt.Fprintf(out, "demo left running at http://%s (stop it with: kiln -f %s destroy)\n", addr, a.file)
	}
	fmt.Fprintf(out, "\nsummary: %s\n", rep)
	a.reported = len(failures) == 0
	if len(failures) > 0 {
		return fmt.Errorf("demo failed: %v", failures)
	}
	fmt.Fprintf(out, "demo passed: 1.0.0 -> 2.0.0 with 0 failed requests; the broken 3.0.0 was refused and 2.0.0 kept serving\n")
	return nil
}

// servingVersion asks the load balancer which release answers.
func servingVersion(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Header.Get("X-Demo-Version"), nil
}
