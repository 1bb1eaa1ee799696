package metrics

import (
	"context"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/kilnhq/kiln/metrics/collect"
)

// gather runs the live collectors and adds the cached probe and scrape results, the
// summary gauges and the daemon's own metrics, merged and sorted for exposition.
func (d *Daemon) gather(ctx context.Context, st *state) []collect.Family {
	var fams []collect.Family
	ok := collect.Family{Name: "kiln_metrics_collector_success", Help: "1 if the collector's last run succeeded.", Type: collect.Gauge}
	dur := collect.Family{Name: "kiln_metrics_collector_duration_seconds", Help: "How long the collector's last run took.", Type: collect.Gauge}
	record := func(name string, err error, took float64) {
		v := 1.0
		if err != nil {
			v = 0
			d.log.Debug("collector failed", "collector", name, "err", err)
		}
		l := []collect.Label{{Name: "collector", Value: name}}
		ok.Samples = append(ok.Samples, collect.Sample{Name: ok.Name, Labels: l, Value: v})
		dur.Samples = append(dur.Samples, collect.Sample{Name: dur.Name, Labels: l, Value: took})
	}
	for _, c := range st.live {
		start := d.now()
		var err error
		fams, err = c.Collect(ctx, fams)
		record(c.Name(), err, d.now().Sub(start).Seconds())
	}
	for _, c := range st.periodic {
		cf, err, took, ran := c.get()
		if ran {
			fams = append(fams, cf...)
			record(c.c.Name(), err, took)
		}
	}
	fams = append(fams, ok, dur)
	fams = append(fams, d.summaryGauges(st)...)
	fams = append(fams, d.selfFamilies()...)
	if st.pub != nil {
		fams = append(fams, st.pub.Families()...)
	}
	fams, dropped := collect.Merge(fams)
	if len(dropped) > 0 {
		d.log.Debug("samples dropped: type conflicts or duplicate series across sources", "names", dropped)
	}
	// Appended after the merge: it counts the merge itself, and its name is unique.
	const name = "kiln_metrics_gather_dropped_samples"
	return append(fams, collect.Family{Name: name, Type: collect.Gauge,
		Help:    "Samples left out of the last gather: a family with conflicting types or a series repeated by two sources.",
		Samples: []collect.Sample{{Name: name, Value: float64(len(dropped))}}})
}

// summaryGauges exposes the summary over the configured window as gauges, so that
// dashboards and CloudWatch see the same numbers the rollout analysis reads.
func (d *Daemon) summaryGauges(st *state) []collect.Family {
	if st.window == nil {
		return nil
	}
	doc := st.window.Summarize(d.now(), st.cfg.Summary.Window.D())
	g := func(name, help string, v float64, labels ...collect.Label) collect.Family {
		return collect.Family{Name: name, Help: help, Type: collect.Gauge, Samples: []collect.Sample{{Name: name, Labels: labels, Value: v}}}
	}
	out := []collect.Family{g("kiln_app_restarts", "Restarts of the instance's units since boot (status.json).", doc.Restarts.Total)}
	if !doc.Ready {
		return out
	}
	out = append(out, g("kiln_app_request_rate", "App requests per second over the summary window.", doc.Requests.RatePerSecond))
	if doc.Requests.ErrorRatio != nil {
		out = append(out, g("kiln_app_error_ratio", "Share of app requests answered 5xx over the summary window.", *doc.Requests.ErrorRatio))
	}
	if l := doc.Latency; l != nil {
		f := collect.Family{Name: "kiln_app_latency_seconds", Help: "App latency quantiles over the summary window.", Type: collect.Gauge}
		for _, q := range []struct {
			q string
			v float64
		}{{"0.5", l.P50}, {"0.9", l.P90}, {"0.99", l.P99}} {
			f.Samples = append(f.Samples, collect.Sample{Name: f.Name, Labels: []collect.Label{{Name: "quantile", Value: q.q}}, Value: q.v})
		}
		out = append(out, f)
	}
	return out
}

var runtimeSamples = []string{"/sched/goroutines:goroutines", "/memory/classes/heap/objects:bytes", "/memory/classes/total:bytes"}

// selfFamilies describes the daemon itself: build, process and Go runtime, reloads.
func (d *Daemon) selfFamilies() []collect.Family {
	g := func(name, help string, typ collect.Type, v float64, labels ...collect.Label) collect.Family {
		return collect.Family{Name: name, Help: help, Type: typ, Samples: []collect.Sample{{Name: name, Labels: labels, Value: v}}}
	}
	out := []collect.Family{
		g("kiln_metrics_build_info", "kiln-metrics version.", collect.Gauge, 1, collect.Label{Name: "version", Value: Version}),
		g("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", collect.Gauge, float64(d.started.UnixNano())/1e9),
		{Name: "kiln_metrics_config_reloads_total", Help: "Configuration reloads by result.", Type: collect.Counter, Samples: []collect.Sample{
			{Name: "kiln_metrics_config_reloads_total", Labels: []collect.Label{{Name: "result", Value: "failure"}}, Value: float64(d.reloadsFailed.Load())},
			{Name: "kiln_metrics_config_reloads_total", Labels: []collect.Label{{Name: "result", Value: "success"}}, Value: float64(d.reloadsOK.Load())},
		}},
	}
	if cpu, rss, ok := procSelf(); ok {
		out = append(out,
			g("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", collect.Counter, cpu),
			g("process_resident_memory_bytes", "Resident memory size in bytes.", collect.Gauge, rss))
	}
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		samples[i].Name = n
	}
	metrics.Read(samples)
	out = append(out,
		g("go_goroutines", "Number of goroutines that currently exist.", collect.Gauge, float64(samples[0].Value.Uint64())),
		g("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", collect.Gauge, float64(samples[1].Value.Uint64())),
		g("go_memstats_sys_bytes", "Bytes of memory mapped by the Go runtime.", collect.Gauge, float64(samples[2].Value.Uint64())))
	return out
}

// procSelf reads the daemon's CPU time and resident set size from /proc/self.
func procSelf() (cpu, rss float64, ok bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command name, which may contain spaces, start after ") ".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 22 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	return (utime + stime) / 100, pages * float64(os.Getpagesize()), true
}
