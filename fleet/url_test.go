package fleet

import "testing"

func TestURLKeepsASchemeAndGivesAHostPortPlainHTTP(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":                 "http://127.0.0.1:8080",
		"https://shop-1.elb.example:443": "https://shop-1.elb.example:443",
		"http://shop-1.elb.example":      "http://shop-1.elb.example",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
