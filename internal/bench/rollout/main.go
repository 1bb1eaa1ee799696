// Command rollout times full rollouts of the demo service on the local target and prints
// per-phase times and the engine's overhead: the total minus the time the new instances
// themselves took to become healthy (there are no pauses or analysis windows yet).
//
//	go tool task bench:rollout          (or: go run ./internal/bench/rollout -kiln bin/kiln)
//	go tool task bench:rollout BASE=<git rev>   (the same, beside kiln built from BASE)
//	go tool task bench:aws              (-aws: the aws target against a MODEL of AWS: the
//	                                     pulumi-aws provider double and the API model of
//	                                     targets/aws/awsmodel, no provider latency, so the
//	                                     overhead is kiln's and the engine's own)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/internal/testpeers"
	"github.com/kilnhq/kiln/targets/aws/awsmodel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type event struct {
	Event    string        `json:"event"`
	At       time.Time     `json:"at"`
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration"`
	Op       string        `json:"op"`
	Type     string        `json:"type"`
	Status   string        `json:"status"`
	Outcome  string        `json:"outcome"`
	Message  string        `json:"message"`
}

// sample is one measured rollout.
type sample struct {
	wall, total, untilHealthy, overhead time.Duration
	phases                              map[string]time.Duration
}

// awsTarget replaces the local target in the manifest for -aws; the health check is the
// shortest an ALB accepts.
const awsTarget = `fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 5s, timeout: 2s, healthyThreshold: 2, unhealthyThreshold: 2}
rollout: {progressDeadline: 60s, drainTimeout: 1s, scaleDownDelay: 0s}
images: {keep: 50}
target:
  aws: {region: eu-west-1, subnets: [subnet-0a1b2c3d4e5f60718, subnet-0b2c3d4e5f6071829]}
`

const manifest = `apiVersion: kiln/v1
service: bench
version: %s
app:
  binary: %s
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 200ms, timeout: 150ms, healthyThreshold: 2, unhealthyThreshold: 2}
rollout: {progressDeadline: 30s, drainTimeout: 2s, scaleDownDelay: 0s}
target:
  local: {listen: "127.0.0.1:0"}
`

// series is one kiln binary's rollouts, each in its own directory and stack.
type series struct {
	name, kiln, dir, app string
	env                  []string // added to the environment of its kiln
	aws                  bool     // the aws target (against the model) instead of local
	samples              []sample
}

func run() error {
	kiln := flag.String("kiln", "bin/kiln", "the kiln binary (its provider and other binaries beside it)")
	baseline := flag.String("baseline", "", "a second kiln binary to time in the same run, rollouts interleaved (e.g. the commit before a change)")
	n := flag.Int("n", 5, "rollouts to time after the first release")
	shared := flag.Bool("s3", false, "time the file backend beside a shared S3 backend (gofakes3 on 127.0.0.1, started here), same binary, rollouts interleaved")
	onAWS := flag.Bool("aws", false, "time the local target beside the aws target against a model of AWS (the provider double and the API model), same binary, rollouts interleaved")
	flag.Parse()
	dir, err := os.MkdirTemp("", "kiln-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	app := filepath.Join(dir, "demo")
	if out, err := exec.Command("go", "build", "-o", app, "./examples/demo").CombinedOutput(); err != nil {
		return fmt.Errorf("build demo: %v\n%s", err, out)
	}
	var all []*series
	for i, bin := range []string{*kiln, *baseline} {
		if bin == "" {
			continue
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		name := "kiln"
		if i == 1 {
			name = "baseline"
		}
		sd := filepath.Join(dir, name)
		if err := os.MkdirAll(sd, 0o755); err != nil {
			return err
		}
		all = append(all, &series{name: name, kiln: abs, dir: sd, app: app})
	}
	if *shared {
		if *baseline != "" {
			return fmt.Errorf("-s3 compares backends with one binary: drop -baseline")
		}
		endpoint, stop := testpeers.StartS3()
		defer stop()
		s3 := *all[0]
		s3.name, s3.dir = "s3", filepath.Join(dir, "s3")
		s3.env = []string{"KILN_BACKEND=s3://bench-state/kiln?region=us-east-1&endpoint=" + endpoint,
			"KILN_PASSPHRASE=bench", "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench"}
		if err := os.MkdirAll(s3.dir, 0o755); err != nil {
			return err
		}
		all[0].name = "file"
		all = append(all, &s3)
	}
	if *onAWS {
		if *baseline != "" || *shared {
			return fmt.Errorf("-aws compares targets with one binary and backend: drop -baseline and -s3")
		}
		env, stop, err := awsModel(dir)
		if err != nil {
			return err
		}
		defer stop()
		aws := *all[0]
		aws.name, aws.dir, aws.env, aws.aws = "aws", filepath.Join(dir, "aws"), env, true
		if err := os.MkdirAll(aws.dir, 0o755); err != nil {
			return err
		}
		all[0].name = "local"
		all = append(all, &aws)
	}
	for _, s := range all {
		defer s.destroy()
		if _, err := s.rollout("1.0.0"); err != nil {
			return err
		}
	}
	// Interleaved, so both binaries see the same machine, load and caches.
	for i := 0; i < *n; i++ {
		for _, s := range all {
			smp, err := s.rollout(fmt.Sprintf("1.%d.0", i+1))
			if err != nil {
				return err
			}
			s.samples = append(s.samples, smp)
		}
	}
	report(all)
	return nil
}

func (s *series) rollout(version string) (sample, error) {
	m := fmt.Sprintf(manifest, version, s.app)
	if s.aws {
		m = m[:strings.Index(m, "fleet:")] + awsTarget
	}
	if err := os.WriteFile(filepath.Join(s.dir, "kiln.yaml"), []byte(m), 0o644); err != nil {
		return sample{}, err
	}
	cmd := exec.Command(s.kiln, "rollout", "--output", "json")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s: rollout %s: %v\n%s%s", s.name, version, err, out, stderr.String())
	}
	smp, err := measure(out)
	smp.wall = wall
	return smp, err
}

func (s *series) destroy() {
	cmd := exec.Command(s.kiln, "destroy")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Run()
}

// measure reads a rollout's JSON events. The new instances' own time is from the moment
// their first create started until the health phase ended; everything else is engine.
func measure(out []byte) (sample, error) {
	s := sample{phases: map[string]time.Duration{}}
	var firstCreate, healthEnd, start, end time.Time
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return s, err
		}
		switch ev.Event {
		case "rollout-started":
			start = ev.At
		case "phase-finished":
			s.phases[ev.Phase] = ev.Duration
			if ev.Phase == "health" {
				healthEnd = ev.At
			}
		case "resource":
			// The new instances start with their creation: a local instance, an aws
			// auto scaling group.
			instances := strings.HasSuffix(ev.Type, ":Instance") || strings.HasSuffix(ev.Type, "autoscaling/group:Group")
			if (ev.Op == "create" || ev.Op == "create-replacement") && instances && ev.Status == "started" && firstCreate.IsZero() {
				firstCreate = ev.At
			}
		case "finished":
			end = ev.At
			if ev.Outcome != "promoted" {
				return s, fmt.Errorf("rollout %s: %s", ev.Outcome, ev.Message)
			}
		}
	}
	if firstCreate.IsZero() || healthEnd.IsZero() {
		return s, fmt.Errorf("no instance creation or health phase in the events")
	}
	s.total = end.Sub(start)
	s.untilHealthy = healthEnd.Sub(firstCreate)
	s.overhead = s.total - s.untilHealthy
	return s, nil
}

func median(xs []time.Duration) time.Duration {
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	return xs[len(xs)/2]
}

// report prints, per binary, the min, median and max of every measure, and with a
// baseline the ratio of the engine overheads' medians.
func report(all []*series) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%d rollouts of 2 instances each, v(n) -> v(n+1)\t", len(all[0].samples))
	for _, s := range all {
		fmt.Fprintf(tw, "%s min\tmedian\tmax\t", s.name)
	}
	fmt.Fprintln(tw)
	row := func(name string, get func(sample) time.Duration) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, s := range all {
			lo, m, hi := spread(s.samples, get)
			fmt.Fprintf(tw, "%s\t%s\t%s\t", r(lo), r(m), r(hi))
		}
		fmt.Fprintln(tw)
	}
	for _, p := range []string{"bake", "deploy", "health", "step", "retire"} {
		row("phase "+p, func(s sample) time.Duration { return s.phases[p] })
	}
	row("total (engine events)", func(s sample) time.Duration { return s.total })
	row("kiln rollout wall time", func(s sample) time.Duration { return s.wall })
	row("new instances until healthy", func(s sample) time.Duration { return s.untilHealthy })
	overhead := func(s sample) time.Duration { return s.overhead }
	row("engine overhead", overhead)
	tw.Flush()
	if len(all) == 2 {
		_, m, _ := spread(all[0].samples, overhead)
		_, b, _ := spread(all[1].samples, overhead)
		fmt.Printf("engine overhead, %s / %s medians: %.2f (%s vs %s); %s - %s: %s\n", all[0].name, all[1].name, float64(m)/float64(b), r(m), r(b),
			all[1].name, all[0].name, r(b-m))
	}
}

func spread(samples []sample, get func(sample) time.Duration) (lo, med, hi time.Duration) {
	var xs []time.Duration
	for _, s := range samples {
		xs = append(xs, get(s))
	}
	m := median(xs)
	return xs[0], m, xs[len(xs)-1]
}

func r(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// awsModel builds the provider double and serves the API model (package awsmodel: a MODEL
// of AWS, not AWS) and returns the environment a kiln needs to use them.
func awsModel(dir string) ([]string, func(), error) {
	plugins := filepath.Join(dir, "aws-plugins")
	if out, err := exec.Command("go", "build", "-o", plugins+"/", "./targets/aws/awsmodel/cmd/pulumi-resource-aws").CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("build the provider double: %v\n%s", err, out)
	}
	model := filepath.Join(dir, "aws-model")
	srv := httptest.NewServer(awsmodel.NewAPI(model, awsmodel.APIOptions{HealthyAfter: time.Second}))
	env := []string{
		"PATH=" + plugins + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PULUMI_HOME=" + filepath.Join(dir, "aws-pulumi-home"),
		awsmodel.DirEnv + "=" + model,
		"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2=" + srv.URL,
		"AWS_ENDPOINT_URL_AUTO_SCALING=" + srv.URL,
		"AWS_ENDPOINT_URL_EC2=" + srv.URL,
		"AWS_ACCESS_KEY_ID=model", "AWS_SECRET_ACCESS_KEY=model", "AWS_REGION=eu-west-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return env, srv.Close, nil
}
