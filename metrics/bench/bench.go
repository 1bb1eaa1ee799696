// Package bench measures kiln-metrics side by side with Debian's prometheus-node-exporter:
// resident memory and CPU per scrape at the same scrape rate, and a soak run with the
// CloudWatch sink down. It prints Markdown tables for docs/benchmarks.md.
package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Main runs the benchmark and returns the exit code.
func Main(args []string) int {
	fs := flag.NewFlagSet("kiln-metrics-bench", flag.ContinueOnError)
	km := fs.String("kiln-metrics", "", "kiln-metrics binary (default: build ./cmd/kiln-metrics with CGO_ENABLED=0)")
	ne := fs.String("node-exporter", "/usr/bin/prometheus-node-exporter", "node_exporter binary")
	scrapes := fs.Int("scrapes", 300, "scrapes of each exporter")
	rate := fs.Float64("rate", 5, "scrapes per second of each exporter")
	soak := fs.Duration("soak", 0, "also run a soak with the CloudWatch sink down for this long (e.g. 5m)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *km, *ne, *scrapes, *rate, *soak); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-metrics-bench:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, km, ne string, scrapes int, rate float64, soak time.Duration) error {
	tmp, err := os.MkdirTemp("", "kiln-metrics-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if km == "" {
		km = filepath.Join(tmp, "kiln-metrics")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", km, "./cmd/kiln-metrics")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build kiln-metrics (run from the repository root): %w", err)
		}
	}
	if _, err := os.Stat(ne); err != nil {
		return fmt.Errorf("%s: %w (install it: go tool task -t taskfiles/metrics.yml bench-setup)", ne, err)
	}
	textdir := filepath.Join(tmp, "textfile")
	os.Mkdir(textdir, 0o755)

	sameCollectors := []string{"--collector.disable-defaults", "--collector.cpu", "--collector.stat", "--collector.meminfo",
		"--collector.loadavg", "--collector.diskstats", "--collector.filesystem", "--collector.netdev", "--collector.netclass",
		"--collector.textfile", "--collector.textfile.directory=" + textdir}
	exporters := []*proc{
		{name: "kiln-metrics", bin: km, args: []string{"--config", writeConfig(tmp, "side.yaml", fmt.Sprintf("textfile: {dir: %s}\n", textdir))}},
		{name: "node_exporter 1.5.0 (same collectors)", bin: ne, args: sameCollectors},
		{name: "node_exporter 1.5.0 (defaults)", bin: ne},
	}
	for _, p := range exporters {
		if err := p.start(ctx); err != nil {
			return err
		}
		defer p.stop()
	}
	// Warm up so that the first scrape's one-off costs do not count.
	for range 10 {
		for _, p := range exporters {
			if _, err := p.scrape(ctx); err != nil {
				return err
			}
		}
	}
	for _, p := range exporters {
		p.cpu0, _ = p.cpu()
	}
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range scrapes {
		for _, p := range exporters {
			n, err := p.scrape(ctx)
			if err != nil {
				return fmt.Errorf("%s scrape %d: %w", p.name, i, err)
			}
			p.lines = n
			if rss, err := p.rss(); err == nil {
				p.rssMax = max(p.rssMax, rss)
				p.rssEnd = rss
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	fmt.Printf("Side by side: %d scrapes each at %.0f/s (gzip, like Prometheus), after 10 warm-up scrapes.\n\n", scrapes, rate)
	fmt.Println("| exporter | series per scrape | RSS at end (MiB) | max RSS (MiB) | CPU per scrape (ms) |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, p := range exporters {
		cpu, _ := p.cpu()
		fmt.Printf("| %s | %d | %.1f | %.1f | %.2f |\n", p.name, p.lines, mib(p.rssEnd), mib(p.rssMax), (cpu-p.cpu0)*1000/float64(scrapes))
	}
	k, same, def := exporters[0], exporters[1], exporters[2]
	fmt.Printf("\nkiln-metrics RSS / node_exporter RSS: %.2f (same collectors), %.2f (defaults)\n",
		float64(k.rssMax)/float64(same.rssMax), float64(k.rssMax)/float64(def.rssMax))
	fmt.Println("\nThe same processes at the end of the run, from /proc/<pid>/smaps_rollup (MiB): file-backed is")
	fmt.Println("the executable's code and read-only data mapped in, anonymous is heap, stacks and runtime data.")
	fmt.Println()
	fmt.Println("| exporter | RSS | PSS | anonymous | file-backed |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, p := range exporters {
		r, err := p.rollup()
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", p.name, mib(r["Rss"]), mib(r["Pss"]), mib(r["Anonymous"]), mib(r["Rss"]-r["Anonymous"]-r["Shmem"]))
	}
	if sections, err := residentSections(k.cmd.Process.Pid, k.bin); err == nil {
		fmt.Print("\nkiln-metrics' executable mapped in, by ELF section (KiB resident/size):")
		for _, sec := range sections {
			fmt.Printf(" %s %d/%d;", sec.name, sec.resident>>10, sec.size>>10)
		}
		fmt.Println()
	}
	if soak > 0 {
		for _, p := range exporters {
			p.stop() // the soak runs alone
		}
		return runSoak(ctx, km, tmp, textdir, soak, rate)
	}
	return nil
}

// runSoak runs kiln-metrics publishing every series each second to a CloudWatch endpoint
// that refuses connections, scraping it at rate, and samples RSS and the drop counter.
func runSoak(ctx context.Context, km, tmp, textdir string, d time.Duration, rate float64) error {
	dead := freeAddr()
	cfg := writeConfig(tmp, "soak.yaml", fmt.Sprintf(`textfile: {dir: %s}
cloudwatch:
  enabled: true
  region: us-east-1
  endpoint: http://%s
  interval: 1s
  buffer_size: 20000
  backoff_min: 1s
  backoff_max: 5s
  include: ["."]
`, textdir, dead))
	p := &proc{name: "kiln-metrics soak", bin: km, args: []string{"--config", cfg},
		env: []string{"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench"}}
	if err := p.start(ctx); err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("\nSoak: CloudWatch sink down (connection refused) for %s, every series published each second (buffer 20000 datums), scraped at %.0f/s.\n\n", d, rate)
	fmt.Println("| elapsed | RSS (MiB) | buffered datums | dropped datums | failed sends |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	nextReport := time.Duration(0)
	step := min(d/20, 30*time.Second)
	var fullRSS []int64 // RSS samples once the buffer overflowed
	for el := time.Duration(0); el <= d; el = time.Since(start) {
		if _, err := p.scrape(ctx); err != nil {
			return err
		}
		if el >= nextReport {
			rss, _ := p.rss()
			m, _ := p.metrics(ctx, "kiln_metrics_cloudwatch_buffered_datums", "kiln_metrics_cloudwatch_dropped_datums_total", "kiln_metrics_cloudwatch_failures_total")
			if m[1] > 0 {
				fullRSS = append(fullRSS, rss)
			}
			fmt.Printf("| %s | %.1f | %.0f | %.0f | %.0f |\n", el.Truncate(time.Second), mib(rss), m[0], m[1], m[2])
			nextReport += step
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	if len(fullRSS) < 4 {
		fmt.Println("\nThe buffer overflowed too late to judge growth: run the soak longer.")
		return nil
	}
	// RSS oscillates with GC cycles; compare the two halves of the buffer-full period.
	h := len(fullRSS) / 2
	a, b := stats(fullRSS[:h]), stats(fullRSS[h:])
	fmt.Printf("\nWith the buffer full (dropping), RSS first half: mean %.1f MiB (min %.1f, max %.1f); second half: mean %.1f MiB (min %.1f, max %.1f); change of the mean %+.2f MiB\n",
		a.mean, a.min, a.max, b.mean, b.min, b.max, b.mean-a.mean)
	return nil
}

type proc struct {
	name, bin string
	args, env []string
	addr      string
	cmd       *exec.Cmd
	cpu0      float64
	lines     int
	rssMax    int64
	rssEnd    int64
}

func (p *proc) start(ctx context.Context) error {
	p.addr = freeAddr()
	args := p.args
	if strings.Contains(p.bin, "node-exporter") || strings.Contains(p.bin, "node_exporter") {
		args = append(args, "--web.listen-address="+p.addr)
	} else {
		args = append(args, "--listen", p.addr)
	}
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stderr = io.Discard
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := p.scrape(ctx); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve on %s", p.name, p.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) stop() {
	if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// scrape fetches /metrics as Prometheus does (gzip) and returns the number of samples.
func (p *proc) scrape(ctx context.Context) (int, error) {
	body, err := p.get(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range bytes.Lines(body) {
		if len(line) > 1 && line[0] != '#' {
			n++
		}
	}
	return n, nil
}

func (p *proc) get(ctx context.Context) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	return io.ReadAll(r)
}

// metrics returns the values of unlabelled series by name.
func (p *proc) metrics(ctx context.Context, names ...string) ([]float64, error) {
	body, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		for i, n := range names {
			if f[0] == n {
				out[i], _ = strconv.ParseFloat(f[1], 64)
			}
		}
	}
	return out, nil
}

// rss reads VmRSS from /proc/<pid>/status, in bytes.
func (p *proc) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// rollup reads /proc/<pid>/smaps_rollup, in bytes by field (Rss, Pss, Anonymous, ...).
func (p *proc) rollup() (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.cmd.Process.Pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out, nil
}

type section struct {
	name           string
	size, resident uint64
}

// residentSections says how much of each loaded ELF section of bin is resident in process
// pid, from the present bits of /proc/<pid>/pagemap (readable without privileges).
func residentSections(pid int, bin string) ([]section, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	const page = 4096
	var out []section
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || s.Size < page {
			continue
		}
		sec := section{name: s.Name, size: s.Size}
		first, last := s.Addr/page, (s.Addr+s.Size-1)/page
		buf := make([]byte, 8*(last-first+1))
		if _, err := pm.ReadAt(buf, int64(first*8)); err != nil {
			return nil, err
		}
		for i := 0; i < len(buf); i += 8 {
			if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
				sec.resident += page
			}
		}
		out = append(out, sec)
	}
	return out, nil
}

// cpu reads user+system CPU seconds from /proc/<pid>/stat.
func (p *proc) cpu() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(dir, name, text string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		panic(err)
	}
	return p
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

type summaryStats struct{ mean, min, max float64 }

func stats(xs []int64) summaryStats {
	s := summaryStats{min: mib(xs[0]), max: mib(xs[0])}
	for _, x := range xs {
		v := mib(x)
		s.mean += v / float64(len(xs))
		s.min, s.max = min(s.min, v), max(s.max, v)
	}
	return s
}
