package collect

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// expose gathers the collectors, writes the exposition and parses it back with Prometheus'
// own parser, failing the test when the text is not valid.
func expose(t *testing.T, cs ...Collector) (map[string]*dto.MetricFamily, []error) {
	t.Helper()
	var fams []Family
	var errs []error
	for _, c := range cs {
		var err error
		fams, err = c.Collect(context.Background(), fams)
		if err != nil {
			errs = append(errs, err)
		}
	}
	fams, conflicts := Merge(fams)
	if len(conflicts) > 0 {
		t.Fatalf("type conflicts: %v", conflicts)
	}
	text := AppendText(nil, fams)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	return mfs, errs
}

// value finds the sample of family name whose labels include all of want (name=value
// pairs), and returns its counter, gauge or untyped value.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("family %s missing; have %v", name, slices.Sorted(maps.Keys(mfs)))
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		default:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("family %s has no sample with labels %v", name, want)
	return 0
}

func hasSample(mfs map[string]*dto.MetricFamily, name string, want ...string) bool {
	for _, m := range mfs[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == want[i] && lp.GetValue() == want[i+1])
			}
			match = match && found
		}
		if match {
			return true
		}
	}
	return false
}

func fixtureHost(statfs func(string) (FSStats, error)) []Collector {
	return Host(HostOptions{ProcRoot: "testdata/proc", SysRoot: "testdata/sys", Statfs: statfs})
}

func fakeStatfs(calls *[]string) func(string) (FSStats, error) {
	return func(path string) (FSStats, error) {
		*calls = append(*calls, path)
		switch path {
		case "/":
			return FSStats{Size: 100e9, Free: 40e9, Avail: 35e9, Files: 6e6, FilesFree: 5e6}, nil
		case "/run":
			return FSStats{Size: 1e9, Free: 1e9, Avail: 1e9, Files: 1000, FilesFree: 900}, nil
		case "/mnt/my data":
			return FSStats{Size: 2e12, Free: 1e12, Avail: 1e12, ReadOnly: true}, nil
		}
		return FSStats{}, errors.New("unexpected statfs of " + path)
	}
}

func TestHostCollectorsOnFixtureProc(t *testing.T) {
	var calls []string
	mfs, errs := expose(t, fixtureHost(fakeStatfs(&calls))...)
	if len(errs) > 0 {
		t.Fatalf("collect errors: %v", errs)
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"node_cpu_seconds_total", []string{"cpu", "0", "mode", "user"}, 13932.80},
		{"node_cpu_seconds_total", []string{"cpu", "1", "mode", "steal"}, 1.23},
		{"node_cpu_seconds_total", []string{"cpu", "1", "mode", "idle"}, 133684.62},
		{"node_context_switches_total", nil, 38014093},
		{"node_boot_time_seconds", nil, 1418183276},
		{"node_forks_total", nil, 26442},
		{"node_procs_running", nil, 2},
		{"node_procs_blocked", nil, 1},
		{"node_memory_MemTotal_bytes", nil, 15666184 * 1024},
		{"node_memory_MemAvailable_bytes", nil, 9527108 * 1024},
		{"node_memory_Active_anon_bytes", nil, 2889084 * 1024},
		{"node_memory_HugePages_Total", nil, 0},
		{"node_load1", nil, 0.21},
		{"node_load5", nil, 0.37},
		{"node_load15", nil, 0.39},
		{"node_disk_reads_completed_total", []string{"device", "sda"}, 25354637},
		{"node_disk_read_bytes_total", []string{"device", "sda"}, 1003346126 * 512},
		{"node_disk_read_time_seconds_total", []string{"device", "sda"}, 18492.372},
		{"node_disk_written_bytes_total", []string{"device", "nvme0n1"}, 65734 * 512},
		{"node_disk_io_now", []string{"device", "sda"}, 3},
		{"node_disk_io_time_seconds_total", []string{"device", "sda"}, 9653.88},
		{"node_disk_io_time_weighted_seconds_total", []string{"device", "sda"}, 82621.804},
		{"node_network_receive_bytes_total", []string{"device", "eth0"}, 68210035552},
		{"node_network_receive_errs_total", []string{"device", "eth0"}, 1},
		{"node_network_receive_drop_total", []string{"device", "eth0"}, 2},
		{"node_network_transmit_bytes_total", []string{"device", "eth0"}, 9315587528},
		{"node_network_transmit_packets_total", []string{"device", "lo"}, 1832522},
		{"node_network_transmit_drop_total", []string{"device", "eth0"}, 4},
		{"node_network_up", []string{"device", "eth0"}, 1},
		{"node_network_up", []string{"device", "veth1"}, 0},
		{"node_network_mtu_bytes", []string{"device", "lo"}, 65536},
		{"node_network_speed_bytes", []string{"device", "eth0"}, 125e6},
		{"node_filesystem_size_bytes", []string{"mountpoint", "/", "device", "/dev/sda1", "fstype", "ext4"}, 100e9},
		{"node_filesystem_avail_bytes", []string{"mountpoint", "/"}, 35e9},
		{"node_filesystem_files_free", []string{"mountpoint", "/run"}, 900},
		{"node_filesystem_readonly", []string{"mountpoint", "/mnt/my data"}, 1},
		{"node_filesystem_readonly", []string{"mountpoint", "/"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+strings.Join(tt.labels, ","), func(t *testing.T) {
			got := value(t, mfs, tt.name, tt.labels...)
			if diff := got - tt.want; diff > 1e-6*max(1, tt.want) || diff < -1e-6*max(1, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Partitions, loop and ram devices are filtered; pseudo and network filesystems are
	// never statfs'd (a dead NFS server would block the collector forever).
	for _, dev := range []string{"sda1", "nvme0n1p1", "loop0", "ram0"} {
		if hasSample(mfs, "node_disk_reads_completed_total", "device", dev) {
			t.Errorf("device %s should be ignored", dev)
		}
	}
	if !slices.Equal(calls, []string{"/", "/run", "/mnt/my data"}) {
		t.Errorf("statfs calls = %q, want / /run and /mnt/my data once each", calls)
	}
	if hasSample(mfs, "node_network_speed_bytes", "device", "veth1") || hasSample(mfs, "node_network_speed_bytes", "device", "lo") {
		t.Error("devices without a link speed must not have node_network_speed_bytes")
	}
	if got := len(mfs["node_cpu_seconds_total"].GetMetric()); got != 16 {
		t.Errorf("node_cpu_seconds_total has %d samples, want 2 cpus x 8 modes", got)
	}
}

func TestHostCollectorErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/loadavg", "0.1 oops 0.3 1/2 3\n")
	c := &loadCollector{HostOptions{ProcRoot: dir}}
	_, err := c.Collect(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), dir+"/loadavg") || !strings.Contains(err.Error(), "node_load5") {
		t.Fatalf("error %v should name the file and the field", err)
	}
	c2 := &cpuCollector{HostOptions{ProcRoot: dir}}
	if _, err := c2.Collect(context.Background(), nil); err == nil {
		t.Fatal("missing /proc/stat must be an error")
	}
}

func TestHostCollectorsOnThisMachine(t *testing.T) {
	// The real /proc and /sys of the test machine: every collector must succeed and the
	// exposition must parse.
	mfs, errs := expose(t, Host(HostOptions{})...)
	for _, err := range errs {
		t.Errorf("collect: %v", err)
	}
	if value(t, mfs, "node_memory_MemTotal_bytes") <= 0 {
		t.Error("MemTotal should be positive")
	}
	if !hasSample(mfs, "node_filesystem_size_bytes", "mountpoint", "/") {
		t.Log("no root filesystem sample (container without a real root mount)")
	}
}
