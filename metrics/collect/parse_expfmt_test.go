package collect

import (
	"fmt"
	"io"
	"math"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseTextExpfmt is the reference for ParseText: Prometheus' own parser, its result
// converted to our model.
func parseTextExpfmt(r io.Reader, extra ...Label) ([]Family, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	fams := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		f, err := fromDTO(mf, extra)
		if err != nil {
			return nil, err
		}
		fams = append(fams, f)
	}
	fams, _ = Merge(fams)
	return fams, nil
}

func fromDTO(mf *dto.MetricFamily, extra []Label) (Family, error) {
	name := mf.GetName()
	f := Family{Name: name, Help: mf.GetHelp()}
	for _, m := range mf.GetMetric() {
		labels := make([]Label, 0, len(m.GetLabel())+len(extra)+1)
		for _, lp := range m.GetLabel() {
			labels = append(labels, Label{lp.GetName(), lp.GetValue()})
		}
		labels = append(labels, extra...)
		with := func(l Label) []Label {
			return append(labels[:len(labels):len(labels)], l)
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			f.Type = Counter
			f.Samples = append(f.Samples, Sample{name, labels, m.GetCounter().GetValue()})
		case dto.MetricType_GAUGE:
			f.Type = Gauge
			f.Samples = append(f.Samples, Sample{name, labels, m.GetGauge().GetValue()})
		case dto.MetricType_UNTYPED:
			f.Type = Untyped
			f.Samples = append(f.Samples, Sample{name, labels, m.GetUntyped().GetValue()})
		case dto.MetricType_HISTOGRAM:
			f.Type = Histogram
			h := m.GetHistogram()
			sawInf := false
			for _, b := range h.GetBucket() {
				ub := b.GetUpperBound()
				sawInf = sawInf || math.IsInf(ub, 1)
				f.Samples = append(f.Samples, Sample{name + "_bucket",
					with(Label{"le", string(AppendFloat(nil, ub))}), float64(b.GetCumulativeCount())})
			}
			if !sawInf {
				f.Samples = append(f.Samples, Sample{name + "_bucket", with(Label{"le", "+Inf"}), float64(h.GetSampleCount())})
			}
			f.Samples = append(f.Samples,
				Sample{name + "_sum", labels, h.GetSampleSum()},
				Sample{name + "_count", labels, float64(h.GetSampleCount())})
		case dto.MetricType_SUMMARY:
			f.Type = Summary
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				f.Samples = append(f.Samples, Sample{name,
					with(Label{"quantile", string(AppendFloat(nil, q.GetQuantile()))}), q.GetValue()})
			}
			f.Samples = append(f.Samples,
				Sample{name + "_sum", labels, s.GetSampleSum()},
				Sample{name + "_count", labels, float64(s.GetSampleCount())})
		default:
			return f, fmt.Errorf("metric %s: unsupported type %s", name, mf.GetType())
		}
	}
	return f, nil
}
