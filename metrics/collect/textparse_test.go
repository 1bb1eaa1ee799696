package collect

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// canonical renders families as sorted lines (type, help, samples with sorted labels and
// le/quantile values normalised) so that two parsers' results can be compared.
func canonical(fams []Family) []string {
	var out []string
	for _, f := range fams {
		if len(f.Samples) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("# %s %s %q", f.Name, f.Type, f.Help))
		for _, s := range f.Samples {
			ls := slices.Clone(s.Labels)
			for i, l := range ls {
				if l.Name == "le" || l.Name == "quantile" {
					if v, err := strconv.ParseFloat(l.Value, 64); err == nil {
						ls[i].Value = string(AppendFloat(nil, v))
					}
				}
			}
			slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
			out = append(out, fmt.Sprintf("%s %v %s", s.Name, ls, AppendFloat(nil, s.Value)))
		}
	}
	slices.Sort(out)
	return out
}

func ourExposition(t *testing.T) []byte {
	t.Helper()
	var fams []Family
	for _, c := range Host(HostOptions{ProcRoot: "testdata/proc", SysRoot: "testdata/sys", Statfs: func(string) (FSStats, error) { return FSStats{Size: 1}, nil }}) {
		fams, _ = c.Collect(context.Background(), fams)
	}
	fams, _ = Merge(fams)
	return AppendText(nil, fams)
}

// TestParseTextAgreesWithExpfmt compares our parser with Prometheus' own on real
// exposition: node_exporter 1.5.0's output on this project's machines, ours, and the
// histogram/summary corpus used elsewhere.
func TestParseTextAgreesWithExpfmt(t *testing.T) {
	ne, err := os.ReadFile("testdata/node_exporter.prom")
	if err != nil {
		t.Fatal(err)
	}
	corpus := map[string][]byte{
		"node_exporter":    ne,
		"ours":             ourExposition(t),
		"histogram":        []byte(histogramText),
		"odd":              []byte("# HELP x a \\\\ b \\n c\n# TYPE x gauge\nx{a=\"q\\\"uote\\\\ \\n\",b=\"\"} -Inf 1700000000000\nx{ a = \"sp\" , } +Inf\n  \n# just a comment\ny 1e-300\nz NaN\n"),
		"untyped-suffixes": []byte("foo_count 1\nfoo_sum 2\nfoo_bucket{le=\"1\"} 3\n# TYPE bar summary\nbar_count 1\nbar_sum 2\nbar_bucket 3\n"),
	}
	for name, text := range corpus {
		t.Run(name, func(t *testing.T) {
			want, err := parseTextExpfmt(bytes.NewReader(text))
			if err != nil {
				t.Fatalf("expfmt: %v", err)
			}
			got, err := ParseText(bytes.NewReader(text))
			if err != nil {
				t.Fatalf("ParseText: %v", err)
			}
			w, g := canonical(want), canonical(got)
			if !slices.Equal(w, g) {
				for i := range max(len(w), len(g)) {
					var a, b string
					if i < len(w) {
						a = w[i]
					}
					if i < len(g) {
						b = g[i]
					}
					if a != b {
						t.Fatalf("first difference at line %d:\nexpfmt: %s\nours:   %s", i, a, b)
					}
				}
			}
			if len(g) < 3 {
				t.Fatalf("corpus %s parsed to almost nothing: %v", name, g)
			}
		})
	}
}

func TestParseTextRejectsWhatExpfmtRejects(t *testing.T) {
	bad := []string{
		"metric{a=\"b\" 1\n",
		"metric{a=\"b\\x\"} 1\n",
		"metric 1 2 3\n",
		"metric abc\n",
		"# TYPE m foo\nm 1\n",
		"# TYPE m counter\n# TYPE m counter\nm 1\n",
		"metric{a=\"1\",a=\"2\"} 1\n",
		"# HELP x a \\t b\nx 1\n",
		"1metric 1\n",
		"metric{1a=\"x\"} 1\n",
		"m 1\n# TYPE m counter\n",
		"metric{a=\"b\"}\n",
		"metric 1 notatimestamp\n",
		"metric{a=b} 1\n",
		"# HELP m one\n# HELP m two\nm 1\n",
	}
	for _, text := range bad {
		t.Run(text, func(t *testing.T) {
			if _, err := parseTextExpfmt(strings.NewReader(text)); err == nil {
				t.Fatalf("expfmt accepts %q; the case is wrong", text)
			}
			if _, err := ParseText(strings.NewReader(text)); err == nil {
				t.Errorf("ParseText accepts %q, expfmt does not", text)
			} else if !strings.Contains(err.Error(), "line") {
				t.Errorf("error %v should name the line", err)
			}
		})
	}
}

// TestParseTextIsStricterOnHistograms: expfmt accepts a bucket without le and a summary
// sample without quantile; such series cannot be used (the summary needs le), so ours
// refuses the file and says why.
func TestParseTextIsStricterOnHistograms(t *testing.T) {
	for _, text := range []string{"# TYPE h histogram\nh_bucket 1\n", "# TYPE s summary\ns 1\n"} {
		if _, err := ParseText(strings.NewReader(text)); err == nil {
			t.Errorf("ParseText accepts %q", text)
		}
	}
}
