package collect

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// userHZ is the unit of the tick counters in /proc/stat; the kernel fixes it at 100 for
// every architecture kiln targets (sysconf(_SC_CLK_TCK)).
const userHZ = 100

// sectorSize is the unit of the sector counters in /proc/diskstats, 512 bytes whatever the
// device's real sector size.
const sectorSize = 512

// HostOptions says where the host collectors read from; tests point them at fixture trees.
type HostOptions struct {
	// ProcRoot is the proc filesystem, normally "/proc".
	ProcRoot string
	// SysRoot is the sysfs filesystem, normally "/sys".
	SysRoot string
	// Statfs reports a mounted filesystem's usage; nil means the statfs(2) system call.
	Statfs func(path string) (FSStats, error)
	// DiskIgnore matches block device names left out of node_disk_* (partitions, loop and
	// ram devices by default).
	DiskIgnore Matcher
	// FSTypeIgnore matches filesystem types left out of node_filesystem_*. Network
	// filesystems are in the default because statfs(2) on a dead server blocks forever.
	FSTypeIgnore Matcher
	// MountIgnore matches mount points left out of node_filesystem_*.
	MountIgnore Matcher
}

// FSStats is what statfs(2) reports about one filesystem, in bytes and inodes.
type FSStats struct {
	Size, Free, Avail float64 // bytes: total, free, available to non-root users
	Files, FilesFree  float64 // inodes: total and free
	ReadOnly          bool    // mounted read-only
}

// Host returns the host collectors: cpu, memory, load, disks, filesystems and network.
func Host(o HostOptions) []Collector {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.DiskIgnore == nil {
		o.DiskIgnore = DefaultDiskIgnore
	}
	if o.FSTypeIgnore == nil {
		o.FSTypeIgnore = DefaultFSTypeIgnore
	}
	if o.MountIgnore == nil {
		o.MountIgnore = DefaultMountIgnore
	}
	return []Collector{
		&cpuCollector{o}, &memCollector{o}, &loadCollector{o},
		&diskCollector{o}, &fsCollector{o}, &netCollector{o},
	}
}

func parseNum(file, field, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: field %s: %q is not a number", file, field, s)
	}
	return v, nil
}

// --- cpu: /proc/stat ---

type cpuCollector struct{ o HostOptions }

// Name implements Collector.
func (c *cpuCollector) Name() string { return "cpu" }

// statMeta names the single-value lines of /proc/stat the cpu collector exposes.
var statMeta = map[string]struct {
	name, help string
	typ        Type
}{
	"ctxt":          {"node_context_switches_total", "Total number of context switches.", Counter},
	"btime":         {"node_boot_time_seconds", "Node boot time, in unixtime.", Gauge},
	"processes":     {"node_forks_total", "Total number of forks.", Counter},
	"procs_running": {"node_procs_running", "Number of processes in runnable state.", Gauge},
	"procs_blocked": {"node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", Gauge},
}

var cpuModes = [...]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// Collect implements Collector.
func (c *cpuCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "stat")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	cpu := Family{Name: "node_cpu_seconds_total", Help: "Seconds the CPUs spent in each mode.", Type: Counter}
	var misc []Family
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // the intr line is long on big machines
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "cpu") && f[0] != "cpu":
			id := f[0][3:]
			for i, mode := range cpuModes {
				if i+1 >= len(f) {
					break
				}
				v, err := parseNum(file, f[0]+"."+mode, f[i+1])
				if err != nil {
					return fams, err
				}
				cpu.Samples = append(cpu.Samples, Sample{Name: cpu.Name,
					Labels: []Label{{"cpu", id}, {"mode", mode}}, Value: v / userHZ})
			}
		case statMeta[f[0]].name != "":
			v, err := parseNum(file, f[0], f[1])
			if err != nil {
				return fams, err
			}
			meta := statMeta[f[0]]
			misc = append(misc, Family{Name: meta.name, Help: meta.help, Type: meta.typ,
				Samples: []Sample{{Name: meta.name, Value: v}}})
		}
	}
	if len(cpu.Samples) == 0 {
		return fams, fmt.Errorf("%s: no per-cpu lines", file)
	}
	fams = append(fams, cpu)
	return append(fams, misc...), nil
}

// --- memory: /proc/meminfo ---

var memKeyReplacer = strings.NewReplacer("(", "_", ")", "")

type memCollector struct{ o HostOptions }

// Name implements Collector.
func (c *memCollector) Name() string { return "meminfo" }

// Collect implements Collector.
func (c *memCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "meminfo")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	n := len(fams)
	for line := range strings.Lines(data) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := parseNum(file, key, f[0])
		if err != nil {
			return fams[:n], err
		}
		// node_exporter spells Active(anon) as Active_anon.
		if strings.ContainsAny(key, "()") {
			key = memKeyReplacer.Replace(key)
		}
		name := "node_memory_" + key
		if len(f) > 1 && f[1] == "kB" {
			name += "_bytes"
			v *= 1024
		}
		fams = append(fams, Family{Name: name, Help: "Memory information field " + key + ".", Type: Gauge,
			Samples: []Sample{{Name: name, Value: v}}})
	}
	if len(fams) == n {
		return fams, fmt.Errorf("%s: no fields", file)
	}
	return fams, nil
}

// --- load: /proc/loadavg ---

type loadCollector struct{ o HostOptions }

// Name implements Collector.
func (c *loadCollector) Name() string { return "loadavg" }

// Collect implements Collector.
func (c *loadCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "loadavg")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	f := strings.Fields(data)
	if len(f) < 3 {
		return fams, fmt.Errorf("%s: want at least 3 fields, got %d", file, len(f))
	}
	for i, name := range [...]string{"node_load1", "node_load5", "node_load15"} {
		v, err := parseNum(file, name, f[i])
		if err != nil {
			return fams, err
		}
		fams = append(fams, Family{Name: name, Help: "Load average.", Type: Gauge,
			Samples: []Sample{{Name: name, Value: v}}})
	}
	return fams, nil
}

// --- disks: /proc/diskstats ---

type diskCollector struct{ o HostOptions }

// Name implements Collector.
func (c *diskCollector) Name() string { return "diskstats" }

// diskFields maps a column of /proc/diskstats (after major, minor and name) to a family.
var diskFields = [...]struct {
	name, help string
	typ        Type
	scale      float64
}{
	{"node_disk_reads_completed_total", "The total number of reads completed successfully.", Counter, 1},
	{"node_disk_reads_merged_total", "The total number of reads merged.", Counter, 1},
	{"node_disk_read_bytes_total", "The total number of bytes read successfully.", Counter, sectorSize},
	{"node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", Counter, 0.001},
	{"node_disk_writes_completed_total", "The total number of writes completed successfully.", Counter, 1},
	{"node_disk_writes_merged_total", "The number of writes merged.", Counter, 1},
	{"node_disk_written_bytes_total", "The total number of bytes written successfully.", Counter, sectorSize},
	{"node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", Counter, 0.001},
	{"node_disk_io_now", "The number of I/Os currently in progress.", Gauge, 1},
	{"node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", Counter, 0.001},
	{"node_disk_io_time_weighted_seconds_total", "The weighted number of seconds spent doing I/Os.", Counter, 0.001},
}

// Collect implements Collector.
func (c *diskCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "diskstats")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	var out [len(diskFields)]Family
	for i, d := range diskFields {
		out[i] = Family{Name: d.name, Help: d.help, Type: d.typ}
	}
	for line := range strings.Lines(data) {
		f := strings.Fields(line)
		if len(f) < 3+len(diskFields) {
			continue
		}
		dev := f[2]
		if c.o.DiskIgnore.MatchString(dev) {
			continue
		}
		labels := []Label{{"device", dev}}
		for i, d := range diskFields {
			v, err := parseNum(file, dev+"."+d.name, f[3+i])
			if err != nil {
				return fams, err
			}
			out[i].Samples = append(out[i].Samples, Sample{Name: d.name, Labels: labels, Value: v * d.scale})
		}
	}
	return append(fams, out[:]...), nil
}

// --- network: /proc/net/dev and /sys/class/net ---

type netCollector struct{ o HostOptions }

// Name implements Collector.
func (c *netCollector) Name() string { return "netdev" }

// netFields maps columns of /proc/net/dev to families; receive columns come first, then
// transmit columns starting at index 8.
var netFields = [...]struct {
	col  int
	name string
}{
	{0, "node_network_receive_bytes_total"}, {1, "node_network_receive_packets_total"},
	{2, "node_network_receive_errs_total"}, {3, "node_network_receive_drop_total"},
	{8, "node_network_transmit_bytes_total"}, {9, "node_network_transmit_packets_total"},
	{10, "node_network_transmit_errs_total"}, {11, "node_network_transmit_drop_total"},
}

// Collect implements Collector.
func (c *netCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "net", "dev")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	var out [len(netFields)]Family
	for i, nf := range netFields {
		out[i] = Family{Name: nf.name, Help: "Network device statistic " + strings.TrimPrefix(nf.name, "node_network_") + ".", Type: Counter}
	}
	var devices []string
	for line := range strings.Lines(data) {
		dev, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		dev = strings.TrimSpace(dev)
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		devices = append(devices, dev)
		labels := []Label{{"device", dev}}
		for i, nf := range netFields {
			v, err := parseNum(file, dev+"."+nf.name, f[nf.col])
			if err != nil {
				return fams, err
			}
			out[i].Samples = append(out[i].Samples, Sample{Name: nf.name, Labels: labels, Value: v})
		}
	}
	fams = append(fams, out[:]...)
	return append(fams, c.sysClass(devices)...), nil
}

// sysClass reads link state, MTU and speed from /sys/class/net. Virtual devices have no
// speed (reading it fails with EINVAL) and are left out of that family only.
func (c *netCollector) sysClass(devices []string) []Family {
	up := Family{Name: "node_network_up", Help: "Value is 1 if operstate is 'up', 0 otherwise.", Type: Gauge}
	mtu := Family{Name: "node_network_mtu_bytes", Help: "Network device MTU.", Type: Gauge}
	speed := Family{Name: "node_network_speed_bytes", Help: "Network device link speed in bytes per second.", Type: Gauge}
	for _, dev := range devices {
		dir := filepath.Join(c.o.SysRoot, "class", "net", dev)
		labels := []Label{{"device", dev}}
		if b, err := readFile(filepath.Join(dir, "operstate")); err == nil {
			v := 0.0
			if strings.TrimSpace(b) == "up" {
				v = 1
			}
			up.Samples = append(up.Samples, Sample{Name: up.Name, Labels: labels, Value: v})
		}
		if v, ok := readNumber(filepath.Join(dir, "mtu")); ok {
			mtu.Samples = append(mtu.Samples, Sample{Name: mtu.Name, Labels: labels, Value: v})
		}
		if v, ok := readNumber(filepath.Join(dir, "speed")); ok && v > 0 {
			speed.Samples = append(speed.Samples, Sample{Name: speed.Name, Labels: labels, Value: v * 1e6 / 8})
		}
	}
	return []Family{up, mtu, speed}
}

func readNumber(file string) (float64, bool) {
	b, err := readFile(file)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(b), 64)
	return v, err == nil
}

// --- filesystems: /proc/mounts and statfs(2) ---

type fsCollector struct{ o HostOptions }

// Name implements Collector.
func (c *fsCollector) Name() string { return "filesystem" }

// Collect implements Collector.
func (c *fsCollector) Collect(ctx context.Context, fams []Family) ([]Family, error) {
	file := filepath.Join(c.o.ProcRoot, "mounts")
	data, err := readFile(file)
	if err != nil {
		return fams, err
	}
	names := [...]struct{ name, help string }{
		{"node_filesystem_size_bytes", "Filesystem size in bytes."},
		{"node_filesystem_free_bytes", "Filesystem free space in bytes."},
		{"node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."},
		{"node_filesystem_files", "Filesystem total file nodes."},
		{"node_filesystem_files_free", "Filesystem total free file nodes."},
		{"node_filesystem_readonly", "Filesystem read-only status."},
	}
	var out [len(names)]Family
	for i, n := range names {
		out[i] = Family{Name: n.name, Help: n.help, Type: Gauge}
	}
	seen := map[string]bool{}
	var firstErr error
	for line := range strings.Lines(data) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		dev, mount, fstype := f[0], unescapeMount(f[1]), f[2]
		if c.o.FSTypeIgnore.MatchString(fstype) || c.o.MountIgnore.MatchString(mount) || seen[mount] {
			continue
		}
		seen[mount] = true
		if ctx.Err() != nil {
			return fams, ctx.Err()
		}
		st, err := c.o.Statfs(mount)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("statfs %s: %w", mount, err)
			}
			continue
		}
		ro := 0.0
		if st.ReadOnly {
			ro = 1
		}
		labels := []Label{{"device", dev}, {"fstype", fstype}, {"mountpoint", mount}}
		for i, v := range [...]float64{st.Size, st.Free, st.Avail, st.Files, st.FilesFree, ro} {
			out[i].Samples = append(out[i].Samples, Sample{Name: names[i].name, Labels: labels, Value: v})
		}
	}
	return append(fams, out[:]...), firstErr
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
