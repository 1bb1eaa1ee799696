package metrics

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is kiln-metrics' configuration file (YAML). Every field is optional; omitted
// fields keep the defaults of DefaultConfig. ${VAR} in any string is replaced by the
// environment variable VAR (an unset variable is an error).
type Config struct {
	// Listen is the address of the /metrics and /v1/summary server.
	Listen string `yaml:"listen"`
	// Interval is the cadence of exec probes, scrapes and summary samples.
	Interval Duration `yaml:"interval"`
	// ShutdownTimeout bounds the final flush on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit in bytes (0: no limit).
	MemoryLimit int64 `yaml:"memory_limit"`
	// GCPercent is the Go garbage collector's target (GOGC); the default 50 trades a
	// little CPU for a smaller resident set. The GOGC environment variable wins.
	GCPercent int `yaml:"gc_percent"`
	// MaxProcs bounds the OS threads running Go code at once (GOMAXPROCS); the default 1
	// keeps the daemon's footprint small and predictable on every instance. The
	// GOMAXPROCS environment variable wins.
	MaxProcs int `yaml:"max_procs"`
	// Host configures the /proc and /sys collectors.
	Host HostConfig `yaml:"host"`
	// Textfile configures the drop-in directory of Prometheus text files.
	Textfile TextfileConfig `yaml:"textfile"`
	// Exec lists exec probes.
	Exec []ExecConfig `yaml:"exec"`
	// Scrape lists local endpoints serving Prometheus text.
	Scrape []ScrapeConfig `yaml:"scrape"`
	// Summary configures /v1/summary.
	Summary SummaryConfig `yaml:"summary"`
	// CloudWatch configures the PutMetricData publisher.
	CloudWatch CloudWatchConfig `yaml:"cloudwatch"`
}

// HostConfig configures the host collectors.
type HostConfig struct {
	// Enabled turns the host collectors on (default true).
	Enabled bool `yaml:"enabled"`
	// ProcRoot and SysRoot are where proc and sysfs are mounted.
	ProcRoot string `yaml:"proc_root"`
	SysRoot  string `yaml:"sys_root"` // see ProcRoot
	// DiskIgnore, FSTypeIgnore and MountIgnore are regular expressions replacing the
	// default filters ("" keeps the default).
	DiskIgnore   string `yaml:"disk_ignore"`
	FSTypeIgnore string `yaml:"fstype_ignore"` // see DiskIgnore
	MountIgnore  string `yaml:"mount_ignore"`  // see DiskIgnore
}

// TextfileConfig configures the drop-in directory.
type TextfileConfig struct {
	// Dir holds *.prom files ("" disables the collector).
	Dir string `yaml:"dir"`
	// MaxBytes bounds one file.
	MaxBytes int64 `yaml:"max_bytes"`
}

// ExecConfig is one exec probe.
type ExecConfig struct {
	// Name labels the probe (label probe="name").
	Name string `yaml:"name"`
	// Command is the program and its arguments (no shell).
	Command []string `yaml:"command"`
	// Timeout bounds one run (default 10s, at most the interval).
	Timeout Duration `yaml:"timeout"`
}

// ScrapeConfig is one local endpoint to scrape.
type ScrapeConfig struct {
	// Name labels the target (label kiln_target="name").
	Name string `yaml:"name"`
	// URL is the endpoint, http or https.
	URL string `yaml:"url"`
	// Timeout bounds one scrape (default 5s, at most the interval).
	Timeout Duration `yaml:"timeout"`
	// MaxBytes bounds the response body.
	MaxBytes int64 `yaml:"max_bytes"`
}

// SummaryConfig configures /v1/summary.
type SummaryConfig struct {
	// Target is the scrape target whose counters feed the summary ("" disables it).
	Target string `yaml:"target"`
	// Window is the default window of /v1/summary (?window= overrides it).
	Window Duration `yaml:"window"`
	// Retention is the longest window a request may ask for.
	Retention Duration `yaml:"retention"`
	// RequestsMetric and DurationMetric name the app's counter and histogram.
	RequestsMetric string `yaml:"requests_metric"`
	DurationMetric string `yaml:"duration_metric"` // see RequestsMetric
	// StatusFile is kiln boot's status.json ("" leaves restarts out).
	StatusFile string `yaml:"status_file"`
}

// CloudWatchConfig configures the CloudWatch publisher.
type CloudWatchConfig struct {
	// Enabled turns publishing on.
	Enabled bool `yaml:"enabled"`
	// Namespace of the published metrics; the IAM policy is limited to it.
	Namespace string `yaml:"namespace"`
	// Region of the CloudWatch endpoint ("" uses the SDK's default chain).
	Region string `yaml:"region"`
	// Endpoint overrides the service URL (tests, VPC endpoints).
	Endpoint string `yaml:"endpoint"`
	// Interval is the cadence at which samples become datums and are sent.
	Interval Duration `yaml:"interval"`
	// BufferSize bounds the datums kept while the sink is unreachable; the oldest are
	// dropped (and counted) beyond it.
	BufferSize int `yaml:"buffer_size"`
	// StorageResolution is 60 (standard) or 1 (high resolution).
	StorageResolution int32 `yaml:"storage_resolution"`
	// Include lists regular expressions; a sample is published when its name matches one.
	Include []string `yaml:"include"`
	// Dimensions are added to every datum (e.g. Service, Instance).
	Dimensions map[string]string `yaml:"dimensions"`
	// BackoffMin and BackoffMax bound the exponential backoff between failed sends.
	BackoffMin Duration `yaml:"backoff_min"`
	BackoffMax Duration `yaml:"backoff_max"` // see BackoffMin
	// EMFFile, when set, also appends every published datum as a CloudWatch embedded
	// metric format JSON line to this file.
	EMFFile string `yaml:"emf_file"`
}

// Duration is a time.Duration written as a Go duration string ("30s", "5m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (write e.g. 30s, 5m, 1h)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultConfig is the configuration used without a file, and the base a file overrides.
// It reads kiln boot's environment: the app is scraped at 127.0.0.1:$PORT and drop-ins
// and status.json live in $KILN_DATA_DIR.
func DefaultConfig(getenv func(string) string) Config {
	c := Config{
		Listen:          "127.0.0.1:9100",
		Interval:        Duration(15 * time.Second),
		ShutdownTimeout: Duration(10 * time.Second),
		MemoryLimit:     32 << 20,
		GCPercent:       50,
		MaxProcs:        1,
		Host:            HostConfig{Enabled: true, ProcRoot: "/proc", SysRoot: "/sys"},
		Textfile:        TextfileConfig{Dir: "/var/lib/kiln-metrics/textfile"},
		Summary: SummaryConfig{
			Window:    Duration(5 * time.Minute),
			Retention: Duration(15 * time.Minute),
		},
		CloudWatch: CloudWatchConfig{
			Namespace:         "Kiln",
			Interval:          Duration(60 * time.Second),
			BufferSize:        20000,
			StorageResolution: 60,
			BackoffMin:        Duration(time.Second),
			BackoffMax:        Duration(5 * time.Minute),
			Include: []string{`^node_load1$`, `^node_memory_MemAvailable_bytes$`,
				`^node_filesystem_avail_bytes$`, `^kiln_app_`},
		},
	}
	if dir := getenv("KILN_DATA_DIR"); dir != "" {
		c.Textfile.Dir = dir + "/metrics.d"
		c.Summary.StatusFile = dir + "/status.json"
	}
	if port := getenv("PORT"); port != "" {
		c.Scrape = []ScrapeConfig{{Name: "app", URL: "http://127.0.0.1:" + port + "/metrics", Timeout: Duration(5 * time.Second)}}
		c.Summary.Target = "app"
	}
	dims := map[string]string{}
	for dim, env := range map[string]string{"Service": "KILN_SERVICE", "Version": "KILN_VERSION", "Instance": "KILN_INSTANCE"} {
		if v := getenv(env); v != "" {
			dims[dim] = v
		}
	}
	c.CloudWatch.Dimensions = dims
	return c
}

// ConfigError is a configuration problem at a place in the file.
type ConfigError struct {
	File  string // the configuration file
	Line  int    // 1-based; 0 when the value is a default the file does not set
	Field string // path such as scrape[1].timeout
	Msg   string // what is wrong and what to write instead
}

// Error implements error as "file:line: field: message".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// LoadConfig reads and validates a configuration file. All problems are reported at once,
// joined, each a *ConfigError naming file:line and field.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig(getenv)
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	l := &loader{file: path}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, l.yamlErr(err)
	}
	if len(root.Content) == 0 {
		return cfg, l.validate(&cfg) // an empty file means the defaults
	}
	l.root = root.Content[0]
	l.expandEnv(l.root, "", getenv)
	l.checkFields(l.root, reflect.TypeOf(cfg), "")
	// Decode and validate even after errors so that one run reports every problem; a
	// field that failed to decode keeps its (valid) default.
	if err := l.root.Decode(&cfg); err != nil {
		l.yamlErr(err)
	}
	return cfg, l.validate(&cfg)
}

type loader struct {
	file string
	root *yaml.Node
	errs []error
}

func (l *loader) add(line int, field, format string, args ...any) {
	l.errs = append(l.errs, &ConfigError{File: l.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlErr turns yaml.v3's "line N: ..." messages into ConfigErrors naming the field found
// at that line.
func (l *loader) yamlErr(err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			l.add(line, l.fieldAt(line), "%s", sm[2])
		} else {
			l.add(0, "", "%s", m)
		}
	}
	return errors.Join(l.errs...)
}

// fieldAt returns the path of the last mapping key found on line (e.g. "scrape[1].timeout").
func (l *loader) fieldAt(line int) string {
	found := ""
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if k.Line == line || v.Line == line && v.Kind == yaml.ScalarNode {
					found = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode {
					found = p
				}
				walk(c, p)
			}
		}
	}
	if l.root != nil {
		walk(l.root, "")
	}
	return found
}

// node finds the value node at a path such as "scrape[1].url"; nil when the file does not
// set it (the value is a default).
func (l *loader) node(path string) *yaml.Node {
	n := l.root
	for _, seg := range strings.Split(path, ".") {
		if n == nil {
			return nil
		}
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name = seg[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(seg[i+1:], "]"))
		}
		var next *yaml.Node
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					next = n.Content[i+1]
				}
			}
		}
		n = next
		if n != nil && idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
		}
	}
	return n
}

// bad records a validation error for field, at its line when the file sets it.
func (l *loader) bad(field, format string, args ...any) {
	line := 0
	if n := l.node(field); n != nil {
		line = n.Line
	}
	l.add(line, field, format, args...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every scalar value (keys are left alone).
func (l *loader) expandEnv(n *yaml.Node, path string, getenv func(string) string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v := getenv(name)
			if v == "" {
				l.add(n.Line, path, "environment variable %s is not set", name)
			}
			return v
		})
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			l.expandEnv(n.Content[i+1], join(path, n.Content[i].Value), getenv)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.expandEnv(c, fmt.Sprintf("%s[%d]", path, i), getenv)
		}
	}
}

// checkFields reports mapping keys that name no field of t, so a misspelt option is an
// error rather than silently ignored.
func (l *loader) checkFields(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if t != reflect.TypeOf(Duration(0)) {
				l.add(n.Line, path, "want a mapping of fields, got %s", kindName(n))
			}
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = f.Type
				names = append(names, tag)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				l.add(k.Line, join(path, k.Value), "unknown field (known: %s)", strings.Join(names, ", "))
				continue
			}
			l.checkFields(n.Content[i+1], ft, join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				l.checkFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// validate checks values (the YAML types are already right) and reports every problem.
func (l *loader) validate(c *Config) error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		l.bad("listen", "%q is not host:port", c.Listen)
	}
	if c.Interval.D() < time.Second {
		l.bad("interval", "must be at least 1s, got %s", c.Interval.D())
	}
	if c.ShutdownTimeout.D() <= 0 {
		l.bad("shutdown_timeout", "must be positive")
	}
	if c.MemoryLimit < 0 {
		l.bad("memory_limit", "must not be negative")
	}
	if c.GCPercent < 10 || c.GCPercent > 1000 {
		l.bad("gc_percent", "must be between 10 and 1000, got %d", c.GCPercent)
	}
	if c.MaxProcs < 1 || c.MaxProcs > 256 {
		l.bad("max_procs", "must be between 1 and 256, got %d", c.MaxProcs)
	}
	for _, re := range [...]struct{ field, expr string }{
		{"host.disk_ignore", c.Host.DiskIgnore}, {"host.fstype_ignore", c.Host.FSTypeIgnore}, {"host.mount_ignore", c.Host.MountIgnore},
	} {
		if _, err := regexp.Compile(re.expr); err != nil {
			l.bad(re.field, "bad regular expression: %v", err)
		}
	}
	if c.Textfile.MaxBytes < 0 {
		l.bad("textfile.max_bytes", "must not be negative")
	}
	names := map[string]bool{}
	for i := range c.Exec {
		e := &c.Exec[i]
		p := fmt.Sprintf("exec[%d]", i)
		if e.Name == "" {
			l.bad(p+".name", "is required")
		} else if names["exec:"+e.Name] {
			l.bad(p+".name", "%q is used by another probe", e.Name)
		}
		names["exec:"+e.Name] = true
		if len(e.Command) == 0 || e.Command[0] == "" {
			l.bad(p+".command", "is required (a list: program and arguments)")
		}
		if e.Timeout == 0 {
			e.Timeout = Duration(min(10*time.Second, c.Interval.D()))
		}
		if e.Timeout.D() <= 0 || e.Timeout.D() > c.Interval.D() {
			l.bad(p+".timeout", "must be positive and at most the interval (%s)", c.Interval.D())
		}
	}
	for i := range c.Scrape {
		s := &c.Scrape[i]
		p := fmt.Sprintf("scrape[%d]", i)
		if s.Name == "" {
			l.bad(p+".name", "is required")
		} else if names["scrape:"+s.Name] {
			l.bad(p+".name", "%q is used by another scrape target", s.Name)
		}
		names["scrape:"+s.Name] = true
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.bad(p+".url", "%q is not an http(s) URL", s.URL)
		}
		if s.Timeout == 0 {
			s.Timeout = Duration(min(5*time.Second, c.Interval.D()))
		}
		if s.Timeout.D() <= 0 || s.Timeout.D() > c.Interval.D() {
			l.bad(p+".timeout", "must be positive and at most the interval (%s)", c.Interval.D())
		}
		if s.MaxBytes < 0 {
			l.bad(p+".max_bytes", "must not be negative")
		}
	}
	if t := c.Summary.Target; t != "" && !names["scrape:"+t] {
		l.bad("summary.target", "%q is not the name of a scrape target", t)
	}
	if c.Summary.Window.D() <= 0 || c.Summary.Window.D() > c.Summary.Retention.D() {
		l.bad("summary.window", "must be positive and at most summary.retention (%s)", c.Summary.Retention.D())
	}
	l.validateCloudWatch(&c.CloudWatch)
	return errors.Join(l.errs...)
}

func (l *loader) validateCloudWatch(cw *CloudWatchConfig) {
	if !cw.Enabled {
		return
	}
	switch {
	case cw.Namespace == "":
		l.bad("cloudwatch.namespace", "is required")
	case strings.HasPrefix(cw.Namespace, "AWS/"):
		l.bad("cloudwatch.namespace", "namespaces starting with AWS/ are reserved for AWS")
	case len(cw.Namespace) > 255:
		l.bad("cloudwatch.namespace", "is longer than 255 characters")
	}
	if cw.Endpoint != "" {
		if u, err := url.Parse(cw.Endpoint); err != nil || u.Host == "" {
			l.bad("cloudwatch.endpoint", "%q is not a URL", cw.Endpoint)
		}
	}
	if cw.Interval.D() < time.Second {
		l.bad("cloudwatch.interval", "must be at least 1s")
	}
	if cw.BufferSize < 1000 || cw.BufferSize > 1_000_000 {
		l.bad("cloudwatch.buffer_size", "must be between 1000 (one full request) and 1000000, got %d", cw.BufferSize)
	}
	if cw.StorageResolution != 1 && cw.StorageResolution != 60 {
		l.bad("cloudwatch.storage_resolution", "must be 1 or 60, got %d", cw.StorageResolution)
	}
	for i, re := range cw.Include {
		if _, err := regexp.Compile(re); err != nil {
			l.bad(fmt.Sprintf("cloudwatch.include[%d]", i), "bad regular expression: %v", err)
		}
	}
	// CloudWatch allows 30 dimensions per datum; leave room for the sample's own labels.
	if len(cw.Dimensions) > 20 {
		l.bad("cloudwatch.dimensions", "at most 20 fixed dimensions, got %d", len(cw.Dimensions))
	}
	for _, k := range slices.Sorted(maps.Keys(cw.Dimensions)) {
		if k == "" || len(k) > 255 || cw.Dimensions[k] == "" || len(cw.Dimensions[k]) > 1024 {
			l.bad("cloudwatch.dimensions."+k, "dimension names need 1-255 characters and values 1-1024")
		}
	}
	if cw.BackoffMin.D() <= 0 || cw.BackoffMax.D() < cw.BackoffMin.D() {
		l.bad("cloudwatch.backoff_max", "need 0 < backoff_min <= backoff_max")
	}
}
