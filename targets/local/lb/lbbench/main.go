// Command lbbench measures kiln lb beside a real peer: the same tiny backend is loaded by the
// same wrk run straight, through kiln lb and through HAProxy, all on 127.0.0.1, and a table of
// requests/s, p50/p99 latency and the CPU time the serving process (backend, kiln lb or
// HAProxy, read from /proc) spent per request is printed. Rounds alternate the three paths so that a busy
// neighbour on a shared machine hurts them alike; the table shows each path's median round.
//
// The backend and the lb run as child processes of this binary (-role), the lb through
// lb.Run exactly as kiln-lb (lb.Main) does. HAProxy and wrk must be on PATH (taskfiles/lb.yml's
// bench task installs them).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/targets/local/lb"
)

func main() {
	role := flag.String("role", "", "internal: run as the benchmark's backend or lb child")
	config := flag.String("config", "", "internal: the lb child's config file")
	ready := flag.String("ready-file", "", "internal: the lb child's ready file")
	cpuProfile := flag.String("cpuprofile", "", "write the lb child's CPU profile to this file")
	duration := flag.Duration("duration", 5*time.Second, "length of one wrk run")
	rounds := flag.Int("rounds", 3, "rounds of direct, kiln lb and HAProxy")
	conns := flag.Int("connections", 4, "wrk connections (-c)")
	threads := flag.Int("threads", 2, "wrk threads (-t)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *role {
	case "backend":
		err = serveBackend(ctx)
	case "lb":
		err = serveLB(ctx, *config, *ready, *cpuProfile)
	case "":
		err = run(ctx, opts{duration: *duration, rounds: *rounds, conns: *conns, threads: *threads, cpuProfile: *cpuProfile})
	default:
		err = fmt.Errorf("unknown -role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}

// serveBackend is the tiny handler every path ends at; it prints its address.
func serveBackend(ctx context.Context) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveLB runs the lb as kiln-lb does, optionally under the CPU profiler.
func serveLB(ctx context.Context, config, ready, profile string) error {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return lb.Run(ctx, config, ready, slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

type opts struct {
	duration       time.Duration
	rounds         int
	conns, threads int
	cpuProfile     string

	dir, backend   string
	lbAddr, haAddr string
	haproxyVersion string
	started        []*exec.Cmd
	results        map[string][]sample
	order          []string
}

type sample struct {
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // CPU time of the path's server process per request
}

func run(ctx context.Context, o opts) error {
	for _, tool := range []string{"wrk", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (go tool task lb:bench installs it): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "lbbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	defer o.stopAll()

	if o.backend, err = o.startBackend(ctx); err != nil {
		return err
	}
	if o.lbAddr, err = o.startLB(ctx); err != nil {
		return err
	}
	if o.haAddr, err = o.startHAProxy(ctx); err != nil {
		return err
	}
	// The process that serves each path: the backend itself, the lb, HAProxy.
	paths := []struct {
		name, addr string
		pid        int
	}{{"direct", o.backend, o.started[0].Process.Pid}, {"kiln lb", o.lbAddr, o.started[1].Process.Pid}, {"HAProxy", o.haAddr, o.started[2].Process.Pid}}
	o.results = map[string][]sample{}
	for _, p := range paths {
		o.order = append(o.order, p.name)
		// A short warm-up fills every connection pool before measuring.
		if _, err := wrk(ctx, p.addr, o.threads, o.conns, time.Second); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	for range o.rounds {
		for _, p := range paths {
			cpu0, err := cpuTime(p.pid)
			if err != nil {
				return err
			}
			s, err := wrk(ctx, p.addr, o.threads, o.conns, o.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			cpu1, err := cpuTime(p.pid)
			if err != nil {
				return err
			}
			s.cpu = (cpu1 - cpu0) / time.Duration(max(1, s.rps*o.duration.Seconds()))
			o.results[p.name] = append(o.results[p.name], s)
		}
	}
	o.print(os.Stdout)
	return nil
}

// child starts this binary in a role and returns the first line it prints.
func (o *opts) child(ctx context.Context, args ...string) (*exec.Cmd, *bufio.Reader, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	o.started = append(o.started, cmd)
	return cmd, bufio.NewReader(out), nil
}

func (o *opts) startBackend(ctx context.Context) (string, error) {
	_, out, err := o.child(ctx, "-role", "backend")
	if err != nil {
		return "", err
	}
	line, err := out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("backend: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func (o *opts) startLB(ctx context.Context) (string, error) {
	cfg := lb.Config{
		Generation:   1,
		DrainTimeout: lb.Duration(time.Second),
		Health: lb.HealthCheck{Path: "/", Interval: lb.Duration(2 * time.Second), Timeout: lb.Duration(time.Second),
			HealthyThreshold: 1, UnhealthyThreshold: 3},
		Groups: []lb.Group{{Name: "blue", Weight: 100, Targets: []lb.Target{{ID: "backend-0", Address: o.backend}}}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	cfgPath, readyPath := filepath.Join(o.dir, "lb.json"), filepath.Join(o.dir, "ready.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return "", err
	}
	args := []string{"-role", "lb", "-config", cfgPath, "-ready-file", readyPath}
	if o.cpuProfile != "" {
		args = append(args, "-cpuprofile", o.cpuProfile)
	}
	if _, _, err := o.child(ctx, args...); err != nil {
		return "", err
	}
	var r lb.Ready
	if err := poll(ctx, func() bool {
		b, err := os.ReadFile(readyPath)
		return err == nil && json.Unmarshal(b, &r) == nil
	}); err != nil {
		return "", fmt.Errorf("kiln lb did not start: %w", err)
	}
	// The target takes traffic once its first health check passed.
	return r.Listen, poll(ctx, func() bool {
		resp, err := http.Get("http://" + r.Listen + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// haproxyConfig mirrors the lb's set-up: one backend server with a health check, HTTP
// keep-alive on both sides, and the same kind of timeouts.
const haproxyConfig = `global
    maxconn 1024
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
frontend fe
    bind %s
    default_backend be
backend be
    option httpchk GET /
    server backend-0 %s check inter 2s
`

func (o *opts) startHAProxy(ctx context.Context) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	cfgPath := filepath.Join(o.dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(haproxyConfig, addr, o.backend)), 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "haproxy", "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start haproxy: %w", err)
	}
	o.started = append(o.started, cmd)
	if v, err := exec.CommandContext(ctx, "haproxy", "-v").Output(); err == nil {
		o.haproxyVersion, _, _ = strings.Cut(strings.TrimSpace(string(v)), "\n")
	}
	return addr, poll(ctx, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (o *opts) stopAll() {
	for _, c := range slices.Backward(o.started) {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func poll(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out after 15s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

var (
	rpsRE     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	latencyRE = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\b`)
	errorsRE  = regexp.MustCompile(`(?m)^\s+(Non-2xx or 3xx responses|Socket errors):.*$`)
)

// wrk runs one load and parses requests/s and the 50th and 99th latency percentiles.
func wrk(ctx context.Context, addr string, threads, conns int, d time.Duration) (sample, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(1, int(d.Seconds()))), "--latency", "http://" + addr + "/"}
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	if m := errorsRE.FindString(string(out)); m != "" {
		return sample{}, fmt.Errorf("wrk saw failures:%s", m)
	}
	var s sample
	m := rpsRE.FindStringSubmatch(string(out))
	if m == nil {
		return sample{}, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	s.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, l := range latencyRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[3]]
		d := time.Duration(v * float64(unit)).Round(time.Microsecond)
		if l[1] == "50" {
			s.p50 = d
		} else {
			s.p99 = d
		}
	}
	if s.p50 == 0 || s.p99 == 0 {
		return sample{}, fmt.Errorf("no latency distribution in wrk output: %s", out)
	}
	return s, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user and system CPU time a process (all its threads) has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces) start with the state.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// median returns the sample with the median requests/s, so that a row is one real run.
func median(ss []sample) sample {
	s := slices.Clone(ss)
	slices.SortFunc(s, func(a, b sample) int { return cmp.Compare(a.rps, b.rps) })
	return s[len(s)/2]
}

func (o *opts) print(w io.Writer) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "wrk -t%d -c%d -d%s, %d rounds (median round shown), %d CPUs, load average %s\n",
		o.threads, o.conns, o.duration, o.rounds, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	if o.haproxyVersion != "" {
		fmt.Fprintln(w, o.haproxyVersion)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\treq/s\tp50\tp99\tp50 added\tvs HAProxy req/s\tserver CPU/req\t")
	direct, ha := median(o.results["direct"]), median(o.results["HAProxy"])
	for _, name := range o.order {
		s := median(o.results[name])
		added, ratio := "-", "-"
		if name != "direct" {
			added = (s.p50 - direct.p50).String()
			ratio = fmt.Sprintf("%.2fx", s.rps/ha.rps)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", name, s.rps, s.p50, s.p99, added, ratio, s.cpu.Round(100*time.Nanosecond))
	}
	tw.Flush()
}
