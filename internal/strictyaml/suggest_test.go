package strictyaml

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSuggest(t *testing.T) {
	known := []string{"apiVersion", "service", "version", "healthyThreshold", "unhealthyThreshold", "path", "port", "size"}
	cases := map[string]string{
		"servce":                 "service",
		"apiversion":             "apiVersion",
		"HealthyThreshold":       "healthyThreshold",
		"unhealthythreshold":     "unhealthyThreshold",
		"pth":                    "path",
		"prt":                    "port",
		"replicas":               "",
		"x":                      "",
		strings.Repeat("a", 200): "",
	}
	for in, want := range cases {
		if got := Suggest(in, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"size", "sise", 1}, {"port", "path", 3},
	}
	for _, c := range cases {
		if got := levenshtein(c.a, c.b); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestShort(t *testing.T) {
	if got := Short("abc"); got != "abc" {
		t.Errorf("Short(abc) = %q", got)
	}
	long := strings.Repeat("é", 40) // 80 bytes
	got := Short(long)
	if len(got) > 60 || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Errorf("Short(long) = %q", got)
	}
}
