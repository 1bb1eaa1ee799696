package collect

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseText reads the Prometheus text exposition format (version 0.0.4) into families,
// merged and sorted. extra labels are appended to every sample.
//
// It is a small parser of our own rather than prometheus/common's expfmt, which pulls in
// protobuf and costs the daemon about 1.5 MB of resident memory on every instance; the
// tests check it against expfmt on real exposition (node_exporter's, ours) and on malformed
// input. Timestamps are accepted and ignored; names must be legacy (unquoted) names.
func ParseText(r io.Reader, extra ...Label) ([]Family, error) {
	p := textParser{fams: map[string]*Family{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		p.line++
		if err := p.parseLine(sc.Text(), extra); err != nil {
			return nil, fmt.Errorf("text format parsing error in line %d: %w", p.line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]Family, 0, len(p.order))
	for _, name := range p.order {
		if f := p.fams[name]; len(f.Samples) > 0 {
			out = append(out, *f)
		}
	}
	out, _ = Merge(out)
	return out, nil
}

type textParser struct {
	line  int
	fams  map[string]*Family // by family name
	order []string
	typed map[string]bool // families with a TYPE line
	seen  map[string]bool // families with samples
}

func (p *textParser) family(name string) *Family {
	f, ok := p.fams[name]
	if !ok {
		f = &Family{Name: name, Type: Untyped}
		p.fams[name] = f
		p.order = append(p.order, name)
	}
	return f
}

func (p *textParser) parseLine(line string, extra []Label) error {
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return nil
	}
	if line[0] == '#' {
		return p.parseComment(line[1:])
	}
	name, rest := cutName(line, true)
	if name == "" {
		return fmt.Errorf("invalid metric name in %q", truncate(line, 60))
	}
	var labels []Label
	rest = strings.TrimLeft(rest, " \t")
	if strings.HasPrefix(rest, "{") {
		var err error
		labels, rest, err = parseLabels(rest[1:])
		if err != nil {
			return err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return fmt.Errorf("want a value and an optional timestamp after %s, got %q", name, rest)
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return fmt.Errorf("metric %s: %w", name, err)
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return fmt.Errorf("metric %s: invalid timestamp %q", name, fields[1])
		}
	}
	f := p.familyOf(name)
	switch f.Type {
	case Histogram:
		if name == f.Name+"_bucket" && !hasLabel(labels, "le") {
			return fmt.Errorf("histogram bucket %s without an le label", name)
		}
		if name == f.Name {
			return fmt.Errorf("histogram %s: sample without _bucket, _sum or _count suffix", name)
		}
	case Summary:
		if name == f.Name && !hasLabel(labels, "quantile") {
			return fmt.Errorf("summary %s: sample without a quantile label", name)
		}
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[f.Name] = true
	labels = append(labels, extra...)
	f.Samples = append(f.Samples, Sample{Name: name, Labels: labels, Value: v})
	return nil
}

// familyOf finds the family a sample name belongs to: histogram and summary families own
// their _bucket, _sum and _count series when declared by a TYPE line.
func (p *textParser) familyOf(name string) *Family {
	for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := p.fams[base]; ok && (f.Type == Histogram || f.Type == Summary && suffix != "_bucket") {
				return f
			}
		}
	}
	return p.family(name)
}

func (p *textParser) parseComment(s string) error {
	fields := strings.Fields(s)
	if len(fields) < 2 || (fields[0] != "HELP" && fields[0] != "TYPE") {
		return nil // a plain comment
	}
	name := fields[1]
	if n, rest := cutName(name, true); n == "" || rest != "" {
		return fmt.Errorf("invalid metric name %q in %s line", name, fields[0])
	}
	if p.typed == nil {
		p.typed = map[string]bool{}
	}
	f := p.family(name)
	if fields[0] == "HELP" {
		if f.Help != "" {
			return fmt.Errorf("second HELP line for metric name %q", name)
		}
		_, after, _ := strings.Cut(s, name)
		help, err := unescapeHelp(strings.TrimLeft(after, " \t"))
		f.Help = help
		return err
	}
	if len(fields) != 3 {
		return fmt.Errorf("TYPE line for %s wants exactly one type", name)
	}
	if p.typed[name] {
		return fmt.Errorf("second TYPE line for metric name %q, or TYPE reported after samples", name)
	}
	if p.seen[name] {
		return fmt.Errorf("TYPE line for %s after its samples", name)
	}
	switch t := Type(strings.ToLower(fields[2])); t {
	case Counter, Gauge, Histogram, Summary, Untyped:
		f.Type = t
	default:
		return fmt.Errorf("unknown metric type %q", fields[2])
	}
	p.typed[name] = true
	return nil
}

// cutName splits a leading metric name (or label name when metric is false) off s.
func cutName(s string, metric bool) (name, rest string) {
	i := 0
	for i < len(s) {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9') || (metric && c == ':')
		if !ok {
			break
		}
		i++
	}
	return s[:i], s[i:]
}

// parseLabels parses name="value" pairs up to the closing brace.
func parseLabels(s string) ([]Label, string, error) {
	var labels []Label
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		name, rest := cutName(s, false)
		if name == "" {
			return nil, "", fmt.Errorf("invalid label name in %q", truncate(s, 40))
		}
		rest = strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(rest, "=") {
			return nil, "", fmt.Errorf("expected '=' after label name %s", name)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if !strings.HasPrefix(rest, `"`) {
			return nil, "", fmt.Errorf("expected '\"' to start the value of label %s", name)
		}
		value, after, err := unquoteLabel(rest[1:])
		if err != nil {
			return nil, "", fmt.Errorf("label %s: %w", name, err)
		}
		if hasLabel(labels, name) {
			return nil, "", fmt.Errorf("duplicate label name %s", name)
		}
		if name == "__name__" {
			return nil, "", fmt.Errorf("label name __name__ is reserved")
		}
		labels = append(labels, Label{name, value})
		after = strings.TrimLeft(after, " \t")
		switch {
		case strings.HasPrefix(after, ","):
			s = after[1:]
		case strings.HasPrefix(after, "}"):
			s = after
		default:
			return nil, "", fmt.Errorf("expected ',' or '}' after label %s", name)
		}
	}
}

// unquoteLabel reads a label value up to its closing quote, undoing \\, \" and \n.
func unquoteLabel(s string) (string, string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if b == nil {
				return s[:i], s[i+1:], nil
			}
			return string(b), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("unterminated escape")
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			i++
			switch s[i] {
			case '\\':
				b = append(b, '\\')
			case '"':
				b = append(b, '"')
			case 'n':
				b = append(b, '\n')
			default:
				return "", "", fmt.Errorf("invalid escape sequence '\\%c'", s[i])
			}
		case '\n':
			return "", "", fmt.Errorf("newline in label value")
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

// unescapeHelp undoes the two escapes HELP text may hold (\\ and \n).
func unescapeHelp(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("unterminated escape in HELP text")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("invalid escape sequence '\\%c' in HELP text", s[i])
		}
	}
	return b.String(), nil
}

func parseValue(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// ParseFloat refuses some spellings the format allows for infinities.
		switch strings.ToLower(s) {
		case "+inf", "inf":
			return parseValue("+Inf")
		case "-inf":
			return parseValue("-Inf")
		}
		return 0, fmt.Errorf("invalid value %q", s)
	}
	return v, nil
}

func hasLabel(ls []Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
