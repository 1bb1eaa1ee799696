package collect

import (
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the media type of the text exposition format written by WriteText.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// AppendText appends families to b in the Prometheus text exposition format and returns the
// extended buffer. Families must already be merged (see Merge); reusing b across gathers
// keeps the writer allocation-free in steady state.
func AppendText(b []byte, fams []Family) []byte {
	for i := range fams {
		f := &fams[i]
		if len(f.Samples) == 0 {
			continue
		}
		if f.Help != "" {
			b = append(b, "# HELP "...)
			b = append(b, f.Name...)
			b = append(b, ' ')
			b = appendEscaped(b, f.Help, false)
			b = append(b, '\n')
		}
		t := f.Type
		if t == "" {
			t = Untyped
		}
		b = append(b, "# TYPE "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = append(b, t...)
		b = append(b, '\n')
		for j := range f.Samples {
			b = appendSample(b, &f.Samples[j])
		}
	}
	return b
}

// WriteText writes families to w in the text exposition format.
func WriteText(w io.Writer, fams []Family) error {
	_, err := w.Write(AppendText(nil, fams))
	return err
}

func appendSample(b []byte, s *Sample) []byte {
	b = append(b, s.Name...)
	if len(s.Labels) > 0 {
		b = append(b, '{')
		for i, l := range s.Labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l.Name...)
			b = append(b, '=', '"')
			b = appendEscaped(b, l.Value, true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = AppendFloat(b, s.Value)
	return append(b, '\n')
}

// AppendFloat appends v as the exposition format spells numbers (+Inf, -Inf, NaN, or the
// shortest representation that round-trips).
func AppendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes backslash and newline (HELP text) and also double quotes in label
// values, as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}
