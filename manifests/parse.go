package manifests

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/envexpand"
	"github.com/kilnhq/kiln/internal/strictyaml"
)

// Load reads and decodes the manifest at path. Components are resolved against cat (nil means
// an empty catalog). Problems in the file are returned as Errors.
func Load(path string, cat Catalog) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(path, data, cat)
}

// Parse decodes a manifest held in data. file names it in error messages and sets Dir (its
// directory, made absolute). Components are resolved against cat (nil means an empty catalog).
// On any problem Parse returns a nil Manifest and Errors listing every problem.
func Parse(file string, data []byte, cat Catalog) (*Manifest, error) {
	d := strictyaml.NewDecoder(file)
	root := d.Document(data, "fields (apiVersion, service, version, app, fleet, target, ...)")
	if root == nil {
		return nil, d.Err()
	}
	m := &Manifest{File: file, Dir: absDir(file)}
	p := &parser{d: d, cat: cat, at: map[string]*yaml.Node{}}
	p.manifest(root, m)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func absDir(file string) string {
	dir := filepath.Dir(file)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

type parser struct {
	d        *strictyaml.Decoder
	cat      Catalog
	deadline *yaml.Node // rollout.progressDeadline, for the cross-field check
	// aws is set when the manifest's target is aws: its fleet gets the aws defaults and
	// is held to what AWS accepts (aws.go), at the nodes in at (by field path).
	aws      bool
	at       map[string]*yaml.Node
	interval *yaml.Node    // fleet.health.interval, likewise
	refs     []templateRef // analysis templates named by rollout:, checked once analysis: is decoded
	// secretRefs are the ${secret:NAME} references and secretNodes the declarations,
	// checked against each other once both are decoded (secrets.go).
	secretRefs, secretNodes []secretRef
}

var (
	serviceRE  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)
	envKeyRE   = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	pathElemRE = regexp.MustCompile(`^[A-Za-z0-9._~+-]+$`)
)

func (p *parser) manifest(n *yaml.Node, m *Manifest) {
	top := p.d.Map(n, "")
	if v := top.Required("apiVersion"); v != nil {
		if s, ok := p.d.String(v, "apiVersion"); ok {
			if s != APIVersion {
				p.d.Errorf(v, "apiVersion", "unsupported apiVersion %q (this kiln reads %q)", s, APIVersion)
			}
			m.APIVersion = s
		}
	}
	if v := top.Required("service"); v != nil {
		if s, ok := p.d.String(v, "service"); ok {
			if err := CheckServiceName(s); err != nil {
				p.d.Errorf(v, "service", "%v", err)
			}
			m.Service = s
		}
	}
	if v := top.Required("version"); v != nil {
		if s, ok := p.d.Literal(v, "version"); ok {
			ver, err := version.NewSemver(s)
			if err != nil {
				p.d.Errorf(v, "version", "invalid version %q (write a semantic version such as 1.4.0 or 2.0.0-rc.1)", s)
			}
			m.Version = ver
		}
	}
	p.app(top.Required("app"), &m.App)
	m.Components, m.Resolved = p.components(top.Field("components"))
	fleet, rollout := top.Required("fleet"), top.Field("rollout")
	// The target first: the fleet's defaults and limits depend on it.
	p.target(top.Required("target"), &m.Target)
	p.fleet(fleet, &m.Fleet)
	p.rollout(rollout, &m.Rollout)
	if p.aws {
		p.awsHealth(&m.Fleet.Health, m.Rollout.DrainTimeout)
	}
	p.images(top.Field("images"), &m.Images)
	if v := top.Field("backend"); v != nil {
		if s, ok := p.d.String(v, "backend"); ok {
			if _, err := backend.Parse(s); err != nil {
				p.d.Errorf(v, "backend", "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("backend %q: ", s)))
			}
			m.Backend = s
		}
	}
	analysisNode := top.Field("analysis")
	m.Analysis = p.analysis(analysisNode)
	p.checkRefs(analysisNode, m.Analysis)
	m.Secrets = p.secrets(top.Field("secrets"))
	p.checkSecrets(m.Secrets)
	top.Finish()

	// Cross-field rule, checked only when both sides decoded: a slot can only become healthy
	// after healthyThreshold successful checks, so a shorter deadline always rolls back.
	h, deadline := m.Fleet.Health, m.Rollout.ProgressDeadline
	if h.Interval > 0 && h.HealthyThreshold > 0 && deadline > 0 && h.Interval <= math.MaxInt64/time.Duration(h.HealthyThreshold) {
		need := h.Interval * time.Duration(h.HealthyThreshold)
		switch {
		case deadline >= need:
		case p.deadline != nil:
			p.d.Errorf(p.deadline, "rollout.progressDeadline",
				"%s is shorter than the %s an instance needs to become healthy (fleet.health.interval %s x healthyThreshold %d)",
				deadline, need, h.Interval, h.HealthyThreshold)
		case p.interval != nil:
			p.d.Errorf(p.interval, "fleet.health.interval",
				"an instance needs %s (interval x healthyThreshold %d) to become healthy, longer than the default rollout.progressDeadline %s; set rollout.progressDeadline",
				need, h.HealthyThreshold, deadline)
		}
	}
}

func (p *parser) app(n *yaml.Node, a *App) {
	if n == nil {
		return
	}
	m := p.d.Map(n, "app")
	main, binary := m.Field("main"), m.Field("binary")
	switch {
	case !m.OK():
	case main != nil && binary != nil:
		p.d.Errorf(m.Key("binary"), "app", "set only one of main (a Go package built at bake time) or binary (a prebuilt executable)")
	case main == nil && binary == nil:
		p.d.Errorf(n, "app", "one of main (a Go package built at bake time) or binary (a prebuilt executable) is required")
	}
	for _, n := range []*yaml.Node{main, binary} {
		if n != nil {
			a.At = Position{Line: n.Line, Column: n.Column}
		}
	}
	if main != nil {
		if s, ok := p.d.String(main, "app.main"); ok {
			if msg := checkMain(s); msg != "" {
				p.d.Errorf(main, "app.main", "%s", msg)
			}
			a.Main = s
		}
	}
	if binary != nil {
		if s, ok := p.d.String(binary, "app.binary"); ok {
			if s == "" || strings.ContainsRune(s, 0) || strings.HasSuffix(s, "/") {
				p.d.Errorf(binary, "app.binary", "invalid binary path %q (write a file path relative to the manifest directory, such as ./bin/hello)", s)
			}
			a.Binary = s
		}
	}
	args := m.Field("args")
	if v := m.Field("env"); v != nil {
		a.Env = p.env(v, "app.env")
	}
	if v := args; v != nil {
		items, paths := p.d.Seq(v, "app.args")
		a.Args = []string{}
		for i, it := range items {
			if s, ok := p.d.Literal(it, paths[i]); ok {
				p.refuseSecretInArgs(it, paths[i], s, a.Env)
				// kiln-boot expands args with the instance's variables and the app's env.
				p.checkVars(it, paths[i], s, func(name string) bool { _, ok := a.Env[name]; return ok })
				a.Args = append(a.Args, s)
			}
		}
	}
	m.Finish()
}

// checkVars reports the ${NAME} references in s that kiln-boot could not expand: each
// must name a variable it sets on every instance, or one other accepts. It says how to
// write a literal ${.
func (p *parser) checkVars(n *yaml.Node, path, s string, other func(string) bool) {
	_, err := envexpand.Expand(s, func(name string) (string, bool) {
		// A secret is held to the secrets list, and kept off command lines, in secrets.go.
		secret := strings.HasPrefix(name, envexpand.SecretPrefix)
		return "", secret || envexpand.IsInstanceVar(name) || other != nil && other(name)
	})
	var e *envexpand.Error
	switch {
	case !errors.As(err, &e):
	case e.Unset:
		also := ""
		if other != nil {
			also = ", and args see app.env"
		}
		p.d.Errorf(n, path, "${%s} is not set on an instance (kiln-boot sets %s and KILN_PORT_<NAME>%s); write %s for a literal ${",
			strictyaml.Short(e.Name()), strings.Join(envexpand.InstanceVars(), ", "), also, envexpand.Escape)
	default:
		p.d.Errorf(n, path, "%v; kiln-boot expands ${NAME} here: write %s for a literal ${", err, envexpand.Escape)
	}
}

// checkMain returns "" if s names a Go main package as the manifest allows: "." or a path
// starting with ./ or ../ (relative to the manifest), or an import path. Else it says why not.
func checkMain(s string) string {
	relative := s == "." || s == ".." || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
	switch {
	case s == "":
		return "must not be empty (write ./cmd/name or a Go import path)"
	case strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%q is absolute; write ./relative to the manifest directory or a Go import path", s)
	}
	for i, elem := range strings.Split(strings.TrimSuffix(s, "/"), "/") {
		dots := elem == "." || elem == ".."
		switch {
		case relative && dots:
		case strings.HasPrefix(elem, "-"):
			return fmt.Sprintf("invalid package path %q: element %q starts with '-' (go build would read it as a flag)", s, elem)
		case elem == "" || dots || !pathElemRE.MatchString(elem) || (i == 0 || !relative) && strings.HasPrefix(elem, "."):
			return fmt.Sprintf("invalid package path %q (write ./cmd/name or a Go import path such as example.com/hello/cmd/hello)", s)
		}
	}
	return ""
}

// env decodes a mapping of environment variables. Values may be written as numbers or booleans;
// they are kept as written.
func (p *parser) env(n *yaml.Node, path string) map[string]string {
	m := p.d.Map(n, path)
	out := map[string]string{}
	for _, e := range m.Entries() {
		switch {
		case !envKeyRE.MatchString(e.Name):
			p.d.Errorf(e.Key, e.Path, "invalid variable name %q (use A-Z, 0-9 and _, not starting with a digit)", e.Name)
		case e.Name == "PORT" || e.Name == "HOST" || strings.HasPrefix(e.Name, "KILN_"):
			p.d.Errorf(e.Key, e.Path, "%s is set by kiln and reserved (PORT, HOST and KILN_* cannot be overridden)", e.Name)
		}
		if s, ok := p.d.Literal(e.Value, e.Path); ok {
			p.noteSecretRefs(e.Value, e.Path, s)
			p.checkVars(e.Value, e.Path, s, nil)
			out[e.Name] = s
		}
	}
	return out
}

func (p *parser) components(n *yaml.Node) (map[string]string, []ResolvedComponent) {
	if n == nil {
		return nil, nil
	}
	m := p.d.Map(n, "components")
	want := map[string]string{}
	var resolved []ResolvedComponent
	for _, e := range m.Entries() {
		if e.Name == images.AppUnit {
			p.d.Errorf(e.Key, e.Path, "a component cannot be named %s: the app's own unit has that name", e.Name)
			continue
		}
		// A component is a version constraint, or {version: constraint, settings: {...}}.
		var constraint string
		var settings map[string]string
		var settingsNode *yaml.Node
		if e.Value.Kind == yaml.MappingNode {
			cm := p.d.Map(e.Value, e.Path)
			v := cm.Required("version")
			if settingsNode = cm.Field("settings"); settingsNode != nil {
				settings = map[string]string{}
				sm := p.d.Map(settingsNode, e.Path+".settings")
				for _, se := range sm.Entries() {
					if val, ok := p.d.Literal(se.Value, se.Path); ok {
						p.noteSecretRefs(se.Value, se.Path, val)
						// Settings are baked into the component's unit env.
						p.checkVars(se.Value, se.Path, val, nil)
						settings[se.Name] = val
					}
				}
				sm.Finish()
			}
			cm.Finish()
			if v == nil {
				continue
			}
			s, ok := p.d.Literal(v, e.Path+".version")
			if !ok {
				continue
			}
			constraint = s
		} else {
			s, ok := p.d.Literal(e.Value, e.Path)
			if !ok {
				continue
			}
			constraint = s
		}
		want[e.Name] = constraint
		if rc, ok := p.resolve(e, constraint); ok {
			rc.Settings = settings
			p.checkSettings(e, settingsNode, rc)
			resolved = append(resolved, rc)
		}
	}
	slices.SortFunc(resolved, func(a, b ResolvedComponent) int { return strings.Compare(a.Name, b.Name) })
	return want, resolved
}

// SettingsCatalog is a Catalog that also knows which settings each component version
// needs from the service; the manifest is then checked against them.
type SettingsCatalog interface {
	Catalog
	Settings(name string, v *version.Version) []string
}

// checkSettings reports settings the resolved component needs but the manifest does not
// give, and settings it gives that the component does not know.
func (p *parser) checkSettings(e strictyaml.Entry, settingsNode *yaml.Node, rc ResolvedComponent) {
	sc, ok := p.cat.(SettingsCatalog)
	if !ok {
		return
	}
	need := sc.Settings(rc.Name, rc.Version)
	var missing []string
	for _, name := range need {
		if _, ok := rc.Settings[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		p.d.Errorf(e.Key, e.Path, "component %s %s needs settings %s (write them under %s.settings, with version: under %s)",
			rc.Name, rc.Version, strings.Join(missing, ", "), e.Path, e.Path)
	}
	var optional []string
	if oc, ok := p.cat.(interface {
		OptionalSettings(name string, v *version.Version) []string
	}); ok {
		optional = oc.OptionalSettings(rc.Name, rc.Version)
	}
	for name := range rc.Settings {
		if !slices.Contains(need, name) && !slices.Contains(optional, name) {
			at := settingsNode
			if at == nil {
				at = e.Value
			}
			known := "none"
			if all := append(slices.Clone(need), optional...); len(all) > 0 {
				known = strings.Join(all, ", ")
			}
			p.d.Errorf(at, e.Path+".settings."+name, "component %s %s has no setting %s (its settings: %s)", rc.Name, rc.Version, name, known)
		}
	}
}

func (p *parser) resolve(e strictyaml.Entry, constraint string) (ResolvedComponent, bool) {
	cons, err := version.NewConstraint(constraint)
	if err != nil {
		p.d.Errorf(e.Value, e.Path, "invalid version constraint %q (write e.g. \">= 0.1, < 1.0\" or \"~> 0.2\")", constraint)
		return ResolvedComponent{}, false
	}
	var names []string
	var versions []*version.Version
	if p.cat != nil {
		names = p.cat.Names()
		versions = slices.Clone(p.cat.Versions(e.Name))
	}
	if !slices.Contains(names, e.Name) {
		msg := fmt.Sprintf("unknown component %q", e.Name)
		if s := strictyaml.Suggest(e.Name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if len(names) == 0 {
			msg += "; no components are available"
		} else {
			sorted := slices.Sorted(slices.Values(names))
			msg += "; available: " + strings.Join(sorted, ", ")
		}
		p.d.Errorf(e.Key, e.Path, "%s", msg)
		return ResolvedComponent{}, false
	}
	versions = slices.DeleteFunc(versions, func(v *version.Version) bool { return v == nil })
	slices.SortFunc(versions, func(a, b *version.Version) int { return a.Compare(b) })
	for i := len(versions) - 1; i >= 0; i-- {
		if cons.Check(versions[i]) {
			return ResolvedComponent{Name: e.Name, Constraint: constraint, Version: versions[i]}, true
		}
	}
	avail := make([]string, len(versions))
	for i, v := range versions {
		avail[i] = v.String()
	}
	if len(avail) == 0 {
		avail = []string{"none"}
	}
	p.d.Errorf(e.Value, e.Path, "no version satisfies %q (available: %s)", constraint, strings.Join(avail, ", "))
	return ResolvedComponent{}, false
}

func (p *parser) fleet(n *yaml.Node, f *Fleet) {
	if n == nil {
		return
	}
	m := p.d.Map(n, "fleet")
	if v := m.Required("size"); v != nil {
		f.Size, _ = p.d.Int(v, "fleet.size", 1, MaxFleetSize)
	}
	if v := m.Required("port"); v != nil {
		f.Port, _ = p.d.Int(v, "fleet.port", 1, 65535)
	}
	p.health(m.Required("health"), &f.Health)
	m.Finish()
}

func (p *parser) health(n *yaml.Node, h *Health) {
	*h = Health{
		Interval:           DefaultHealthInterval,
		Timeout:            DefaultHealthTimeout,
		HealthyThreshold:   DefaultHealthyThreshold,
		UnhealthyThreshold: DefaultUnhealthyThreshold,
	}
	if p.aws {
		h.Interval, h.Timeout = DefaultAWSHealthInterval, DefaultAWSHealthTimeout
	}
	if n == nil {
		return
	}
	m := p.d.Map(n, "fleet.health")
	if v := m.Required("path"); v != nil {
		p.at["fleet.health.path"] = v
		if s, ok := p.d.String(v, "fleet.health.path"); ok {
			if !strings.HasPrefix(s, "/") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				p.d.Errorf(v, "fleet.health.path", "invalid path %q (write an HTTP path starting with '/', such as /healthz)", s)
			}
			h.Path = s
		}
	}
	intervalOK, timeoutOK := true, true
	if v := m.Field("interval"); v != nil {
		p.at["fleet.health.interval"] = v
		if h.Interval, intervalOK = p.positive(v, "fleet.health.interval"); intervalOK {
			p.interval = v
		}
	}
	timeout := m.Field("timeout")
	if timeout != nil {
		p.at["fleet.health.timeout"] = timeout
		h.Timeout, timeoutOK = p.positive(timeout, "fleet.health.timeout")
	}
	if p.aws && timeout == nil && h.Timeout >= h.Interval {
		// An interval written shorter than the default timeout: the timeout follows it.
		h.Timeout = max(h.Interval-time.Second, 0)
	}
	if !p.aws && intervalOK && timeoutOK && h.Timeout > h.Interval {
		at := timeout
		if at == nil {
			at = m.Field("interval")
		}
		p.d.Errorf(at, "fleet.health.timeout", "timeout %s is longer than interval %s; it must be <= interval", h.Timeout, h.Interval)
	}
	if v := m.Field("healthyThreshold"); v != nil {
		p.at["fleet.health.healthyThreshold"] = v
		h.HealthyThreshold, _ = p.d.Int(v, "fleet.health.healthyThreshold", 1, MaxHealthyCount)
	}
	if v := m.Field("unhealthyThreshold"); v != nil {
		p.at["fleet.health.unhealthyThreshold"] = v
		h.UnhealthyThreshold, _ = p.d.Int(v, "fleet.health.unhealthyThreshold", 1, MaxHealthyCount)
	}
	m.Finish()
}

// positive decodes a duration that must be greater than zero.
func (p *parser) positive(n *yaml.Node, path string) (time.Duration, bool) {
	v, ok := p.d.Duration(n, path)
	if !ok {
		return 0, false
	}
	if v <= 0 {
		p.d.Errorf(n, path, "must be greater than 0, got %s", v)
		return 0, false
	}
	return v, true
}

func (p *parser) rollout(n *yaml.Node, r *Rollout) {
	*r = Rollout{
		Strategy:            StrategyBlueGreen,
		ProgressDeadline:    DefaultProgressDeadline,
		DrainTimeout:        DefaultDrainTimeout,
		Steps:               []Step{{Weight: 100}},
		ScaleDownDelay:      DefaultScaleDownDelay,
		AbortScaleDownDelay: DefaultAbortScaleDownDelay,
	}
	if n == nil {
		return
	}
	m := p.d.Map(n, "rollout")
	if v := m.Field("strategy"); v != nil {
		if s, ok := p.d.String(v, "rollout.strategy"); ok && s != StrategyBlueGreen {
			p.d.Errorf(v, "rollout.strategy", "unsupported strategy %q (only %q is available)", s, StrategyBlueGreen)
		}
	}
	if v := m.Field("progressDeadline"); v != nil {
		var ok bool
		if r.ProgressDeadline, ok = p.positive(v, "rollout.progressDeadline"); ok {
			p.deadline = v
		}
	}
	if v := m.Field("drainTimeout"); v != nil {
		p.at["rollout.drainTimeout"] = v
		if d, ok := p.d.Duration(v, "rollout.drainTimeout"); ok {
			if d < 0 {
				p.d.Errorf(v, "rollout.drainTimeout", "must not be negative, got %s", d)
			}
			r.DrainTimeout = max(d, 0)
		}
	}
	if v := m.Field("steps"); v != nil {
		r.Steps = p.steps(v)
	}
	r.PrePromotionAnalysis = p.ref(m.Field("prePromotionAnalysis"), "rollout.prePromotionAnalysis")
	r.PostPromotionAnalysis = p.ref(m.Field("postPromotionAnalysis"), "rollout.postPromotionAnalysis")
	if v := m.Field("scaleDownDelay"); v != nil {
		r.ScaleDownDelay = p.nonNegative(v, "rollout.scaleDownDelay", DefaultScaleDownDelay)
	}
	if v := m.Field("abortScaleDownDelay"); v != nil {
		r.AbortScaleDownDelay = p.nonNegative(v, "rollout.abortScaleDownDelay", DefaultAbortScaleDownDelay)
	}
	m.Finish()
}

func (p *parser) target(n *yaml.Node, t *Target) {
	if n == nil {
		return
	}
	m := p.d.Map(n, "target")
	local, aws := m.Field("local"), m.Field("aws")
	switch {
	case !m.OK():
	case local == nil && aws == nil:
		p.d.Errorf(n, "target", "one target is required: local (this machine) or aws (EC2 behind an Application Load Balancer)")
	case local != nil && aws != nil:
		p.d.Errorf(m.Key("aws"), "target", "set only one of local or aws")
	}
	if local != nil {
		t.Local = p.local(local)
	}
	if aws != nil {
		p.aws = local == nil
		t.AWS = p.awsTarget(m.Key("aws"), aws)
	}
	m.Finish()
}

func (p *parser) local(n *yaml.Node) *LocalTarget {
	lt := &LocalTarget{Listen: DefaultListen}
	m := p.d.Map(n, "target.local")
	if v := m.Field("listen"); v != nil {
		if s, ok := p.d.String(v, "target.local.listen"); ok {
			if msg := checkListen(s); msg != "" {
				p.d.Errorf(v, "target.local.listen", "%s", msg)
			}
			lt.Listen = s
		}
	}
	if v := m.Field("lb"); v != nil {
		p.localLB(v, &lt.LB)
	}
	m.Finish()
	return lt
}

// localLB decodes target.local.lb, the bounds of kiln's own load balancer.
func (p *parser) localLB(n *yaml.Node, px *LocalLB) {
	m := p.d.Map(n, "target.local.lb")
	if v := m.Field("maxHeaderBytes"); v != nil {
		px.MaxHeaderBytes, _ = p.d.Int(v, "target.local.lb.maxHeaderBytes", MinLBHeaderBytes, MaxLBHeaderBytes)
	}
	for _, f := range []struct {
		name string
		to   *time.Duration
	}{
		{"readHeaderTimeout", &px.ReadHeaderTimeout},
		{"idleTimeout", &px.IdleTimeout},
		{"requestTimeout", &px.RequestTimeout},
		{"upstreamHeaderTimeout", &px.UpstreamHeaderTimeout},
	} {
		if v := m.Field(f.name); v != nil {
			*f.to, _ = p.positive(v, "target.local.lb."+f.name)
		}
	}
	if v := m.Field("exposeTarget"); v != nil {
		px.ExposeTarget, _ = p.d.Bool(v, "target.local.lb.exposeTarget")
	}
	m.Finish()
}

func checkListen(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("invalid address %q (write host:port, such as 127.0.0.1:8080)", s)
	}
	if host == "" {
		return fmt.Sprintf("address %q has no host; write 127.0.0.1:%s to serve this machine only, or 0.0.0.0:%s for every interface", s, port, port)
	}
	if host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Sprintf("host %q must be an IP address or localhost", host)
	}
	pn, err := strconv.Atoi(port)
	if err != nil || pn < 0 || pn > 65535 {
		return fmt.Sprintf("port %q must be a number from 0 to 65535 (0 picks a free port)", port)
	}
	return ""
}

func (p *parser) images(n *yaml.Node, im *Images) {
	im.Keep = DefaultImagesKeep
	if n == nil {
		return
	}
	m := p.d.Map(n, "images")
	if v := m.Field("keep"); v != nil {
		im.Keep, _ = p.d.Int(v, "images.keep", MinImagesKeep, math.MaxInt32)
	}
	m.Finish()
}

// CheckServiceName returns an error unless s is a valid service name: a DNS label of at most
// MaxServiceLength lower-case letters, digits and '-', starting with a letter and not ending
// with '-'.
func CheckServiceName(s string) error {
	if !serviceRE.MatchString(s) {
		return fmt.Errorf("invalid service name %q (use 1 to %d lower-case letters, digits and '-', starting with a letter and not ending with '-')", s, MaxServiceLength)
	}
	return nil
}
