package manifests

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/strictyaml"
)

// templateRef is a use of an analysis template name, checked against the analysis: section
// once it is decoded, so that an undefined name is reported where it is used.
type templateRef struct {
	node *yaml.Node
	path string
	name string
}

// ref decodes a template name used by the rollout and remembers it for checkRefs.
func (p *parser) ref(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	s, ok := p.d.String(n, path)
	if !ok {
		return ""
	}
	p.refs = append(p.refs, templateRef{node: n, path: path, name: s})
	return s
}

func (p *parser) checkRefs(section *yaml.Node, templates map[string]analysis.Template) {
	if section != nil && templates == nil {
		return // the section itself is broken and already reported
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range templates {
			if !yield(k) {
				return
			}
		}
	})
	for _, r := range p.refs {
		if _, ok := templates[r.name]; ok {
			continue
		}
		msg := fmt.Sprintf("undefined analysis template %q", strictyaml.Short(r.name))
		if s := strictyaml.Suggest(r.name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if len(names) == 0 {
			msg += "; define it under the top-level analysis: section"
		} else {
			msg += "; defined: " + strings.Join(names, ", ")
		}
		p.d.Errorf(r.node, r.path, "%s", msg)
	}
}

// nonNegative decodes a duration that must be >= 0; on error it returns def.
func (p *parser) nonNegative(n *yaml.Node, path string, def time.Duration) time.Duration {
	d, ok := p.d.Duration(n, path)
	if !ok {
		return def
	}
	if d < 0 {
		p.d.Errorf(n, path, "must not be negative, got %s", d)
		return def
	}
	return d
}

func (p *parser) steps(n *yaml.Node) []Step {
	items, paths := p.d.Seq(n, "rollout.steps")
	if len(items) == 0 {
		if !isBroken(n) {
			p.d.Errorf(n, "rollout.steps", "at least one step is required; leave steps out for the default [{weight: 100}]")
		}
		return []Step{{Weight: 100}}
	}
	steps := make([]Step, 0, len(items))
	prev, prevOK := 0, true
	var last *yaml.Node
	lastWeight := 0
	for i, it := range items {
		path := paths[i]
		m := p.d.Map(it, path)
		var s Step
		w := m.Required("weight")
		if w != nil {
			var ok bool
			if s.Weight, ok = p.d.Int(w, path+".weight", 1, 100); ok {
				if prevOK && i > 0 && s.Weight <= prev {
					p.d.Errorf(w, path+".weight", "weight %d is not greater than the previous step's %d; weights must strictly increase", s.Weight, prev)
				}
				prev, prevOK = s.Weight, true
			} else {
				prevOK = false
			}
		}
		last, lastWeight = w, s.Weight
		if v := m.Field("pause"); v != nil {
			s.Pause, s.Indefinite = p.pause(v, path+".pause")
		}
		s.Analysis = p.ref(m.Field("analysis"), path+".analysis")
		m.Finish()
		steps = append(steps, s)
	}
	if last != nil && lastWeight != 0 && lastWeight != 100 {
		p.d.Errorf(last, paths[len(paths)-1]+".weight", "the last step has weight %d; it must be 100 (all traffic on the new release)", lastWeight)
	}
	return steps
}

func (p *parser) pause(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := p.d.Literal(n, path)
	if !ok {
		return 0, false
	}
	if s == PauseIndefinite {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.d.Errorf(n, path, "invalid pause %q (write a Go duration > 0 such as 30s or 5m, or %s to wait for a human to promote)", strictyaml.Short(s), PauseIndefinite)
		return 0, false
	}
	return d, false
}

func (p *parser) analysis(n *yaml.Node) map[string]analysis.Template {
	if n == nil {
		return nil
	}
	m := p.d.Map(n, "analysis")
	if !m.OK() {
		return nil
	}
	out := map[string]analysis.Template{}
	for _, e := range m.Entries() {
		if !serviceRE.MatchString(e.Name) {
			p.d.Errorf(e.Key, e.Path, "invalid template name %q (use 1 to %d lower-case letters, digits and '-', starting with a letter and not ending with '-')", strictyaml.Short(e.Name), MaxServiceLength)
		}
		out[e.Name] = p.template(e.Value, e.Path)
	}
	return out
}

func (p *parser) template(n *yaml.Node, path string) analysis.Template {
	t := analysis.Template{Interval: analysis.DefaultInterval, InconclusiveLimit: analysis.DefaultInconclusiveLimit}
	m := p.d.Map(n, path)
	if v := m.Field("interval"); v != nil {
		if d, ok := p.positive(v, path+".interval"); ok {
			t.Interval = d
		}
	}
	limitsOK := true
	count := m.Field("count")
	if count != nil {
		var ok bool
		t.Count, ok = p.d.Int(count, path+".count", 0, math.MaxInt32)
		limitsOK = limitsOK && ok
	}
	if v := m.Field("failureLimit"); v != nil {
		t.FailureLimit, _ = p.d.Int(v, path+".failureLimit", 0, math.MaxInt32)
	}
	csl := m.Field("consecutiveSuccessLimit")
	if csl != nil {
		var ok bool
		t.ConsecutiveSuccessLimit, ok = p.d.Int(csl, path+".consecutiveSuccessLimit", 0, math.MaxInt32)
		limitsOK = limitsOK && ok
	}
	if v := m.Field("inconclusiveLimit"); v != nil {
		t.InconclusiveLimit, _ = p.d.Int(v, path+".inconclusiveLimit", 1, math.MaxInt32)
		t.InconclusiveLimit = max(t.InconclusiveLimit, 1)
	}
	if m.OK() && t.Count == 0 && t.ConsecutiveSuccessLimit == 0 && limitsOK {
		at := n
		if count != nil {
			at = count
		} else if csl != nil {
			at = csl
		}
		p.d.Errorf(at, path, "set count (measurements to take) or consecutiveSuccessLimit (passes in a row to succeed) to a number > 0, or the analysis never ends")
	}
	if v := m.Required("metrics"); v != nil {
		items, paths := p.d.Seq(v, path+".metrics")
		if len(items) == 0 && !isBroken(v) {
			p.d.Errorf(v, path+".metrics", "at least one metric is required")
		}
		first := map[string]int{}
		for i, it := range items {
			mt, nameNode := p.metric(it, paths[i], t.Interval)
			if mt.Name != "" {
				if line, dup := first[mt.Name]; dup {
					p.d.Errorf(nameNode, paths[i]+".name", "duplicate metric name %q (first used on line %d)", mt.Name, line)
				} else {
					first[mt.Name] = nameNode.Line
				}
			}
			t.Metrics = append(t.Metrics, mt)
		}
	}
	m.Finish()
	return t
}

// isBroken reports whether n is neither a list nor null: Seq has reported it already.
func isBroken(n *yaml.Node) bool {
	return n.Kind != yaml.SequenceNode && (n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null")
}

var metricKinds = []string{"errorRatio", "latency", "metric"}

func (p *parser) metric(n *yaml.Node, path string, interval time.Duration) (analysis.Metric, *yaml.Node) {
	var mt analysis.Metric
	m := p.d.Map(n, path)
	name := m.Required("name")
	if name != nil {
		if s, ok := p.d.String(name, path+".name"); ok {
			if !serviceRE.MatchString(s) {
				p.d.Errorf(name, path+".name", "invalid metric name %q (use 1 to %d lower-case letters, digits and '-', starting with a letter and not ending with '-')", strictyaml.Short(s), MaxServiceLength)
			}
			mt.Name = s
		}
	}
	var set []string
	for _, k := range metricKinds {
		if m.Field(k) != nil {
			set = append(set, k)
		}
	}
	switch {
	case !m.OK():
	case len(set) == 0:
		p.d.Errorf(n, path, "set one of errorRatio, latency or metric")
	case len(set) > 1:
		p.d.Errorf(m.Key(set[1]), path, "set only one of errorRatio, latency or metric (found %s)", strings.Join(set, " and "))
	}
	if v := m.Field("errorRatio"); v != nil {
		mt.ErrorRatio = p.errorRatio(v, path+".errorRatio", interval)
	}
	if v := m.Field("latency"); v != nil {
		mt.Latency = p.latency(v, path+".latency", interval)
	}
	if v := m.Field("metric"); v != nil {
		mt.Gauge = p.gauge(v, path+".metric")
	}
	m.Finish()
	return mt, name
}

func (p *parser) errorRatio(n *yaml.Node, path string, interval time.Duration) *analysis.ErrorRatio {
	e := &analysis.ErrorRatio{Window: max(analysis.DefaultWindow, interval)}
	m := p.d.Map(n, path)
	if v := m.Required("max"); v != nil {
		if f, ok := p.float(v, path+".max"); ok {
			if f < 0 || f > 1 {
				p.d.Errorf(v, path+".max", "must be a ratio between 0 and 1 (0.01 is 1%%), got %v", f)
			}
			e.Max = f
		}
	}
	e.Window = p.window(m.Field("window"), path+".window", interval, e.Window)
	if v := m.Field("minRequests"); v != nil {
		e.MinRequests, _ = p.d.Int(v, path+".minRequests", 0, math.MaxInt32)
	}
	m.Finish()
	return e
}

func (p *parser) latency(n *yaml.Node, path string, interval time.Duration) *analysis.Latency {
	l := &analysis.Latency{Window: max(analysis.DefaultWindow, interval)}
	m := p.d.Map(n, path)
	if v := m.Required("quantile"); v != nil {
		if f, ok := p.float(v, path+".quantile"); ok {
			if f <= 0 || f >= 1 {
				p.d.Errorf(v, path+".quantile", "must be between 0 and 1, exclusive (0.99 is the 99th percentile), got %v", f)
			}
			l.Quantile = f
		}
	}
	if v := m.Required("max"); v != nil {
		l.Max, _ = p.positive(v, path+".max")
	}
	l.Window = p.window(m.Field("window"), path+".window", interval, l.Window)
	if v := m.Field("minRequests"); v != nil {
		l.MinRequests, _ = p.d.Int(v, path+".minRequests", 0, math.MaxInt32)
	}
	m.Finish()
	return l
}

func (p *parser) window(n *yaml.Node, path string, interval, def time.Duration) time.Duration {
	if n == nil {
		return def
	}
	d, ok := p.positive(n, path)
	if !ok {
		return def
	}
	if d < interval {
		p.d.Errorf(n, path, "window %s is shorter than the template's interval %s; it must span at least two scrapes", d, interval)
		return def
	}
	return d
}

func (p *parser) gauge(n *yaml.Node, path string) *analysis.Gauge {
	g := &analysis.Gauge{Aggregate: analysis.DefaultAggregate}
	m := p.d.Map(n, path)
	if v := m.Required("name"); v != nil {
		if s, ok := p.d.String(v, path+".name"); ok {
			if err := analysis.CheckMetricName(s); err != nil {
				p.d.Errorf(v, path+".name", "%v", err)
			}
			g.Name = s
		}
	}
	lo, hi := m.Field("min"), m.Field("max")
	if lo != nil {
		if f, ok := p.float(lo, path+".min"); ok {
			g.Min = &f
		}
	}
	if hi != nil {
		if f, ok := p.float(hi, path+".max"); ok {
			g.Max = &f
		}
	}
	switch {
	case !m.OK():
	case lo == nil && hi == nil:
		p.d.Errorf(n, path, "set min, max or both: the threshold the value must stay within")
	case g.Min != nil && g.Max != nil && *g.Min > *g.Max:
		p.d.Errorf(lo, path+".min", "min %v is greater than max %v", *g.Min, *g.Max)
	}
	if v := m.Field("aggregate"); v != nil {
		if s, ok := p.d.String(v, path+".aggregate"); ok {
			switch a := analysis.Aggregate(s); a {
			case analysis.AggregateSum, analysis.AggregateMax, analysis.AggregateAvg:
				g.Aggregate = a
			default:
				p.d.Errorf(v, path+".aggregate", "unknown aggregate %q (write sum, max or avg)", strictyaml.Short(s))
			}
		}
	}
	m.Finish()
	return g
}

// float decodes a finite number written as an integer or a decimal.
func (p *parser) float(n *yaml.Node, path string) (float64, bool) {
	s, ok := p.d.Literal(n, path)
	if !ok {
		return 0, false
	}
	tag := n.ShortTag()
	f, err := strconv.ParseFloat(s, 64)
	if tag != "!!int" && tag != "!!float" || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.d.Errorf(n, path, "expected a finite number, got %s", strictyaml.Describe(n))
		return 0, false
	}
	return f, true
}
