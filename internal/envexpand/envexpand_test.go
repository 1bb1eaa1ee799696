package envexpand

import (
	"errors"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"PORT": "8080", "KILN_PORT_METRICS": "9100", "EMPTY": "", "secret:DB": "pw"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		in, out string
		unset   bool
		bad     bool
	}{
		{in: "127.0.0.1:${PORT}", out: "127.0.0.1:8080"},
		{in: "${PORT}/${KILN_PORT_METRICS}", out: "8080/9100"},
		{in: "cost: $5, $PORT stays", out: "cost: $5, $PORT stays"},
		{in: "[${EMPTY}]", out: "[]"},
		{in: "pa$${PORT}ss", out: "pa${PORT}ss"},
		{in: "$${unclosed and ${PORT}", out: "${unclosed and 8080"},
		{in: "$$ and $$$${PORT}", out: "$$ and $$${PORT}"},
		{in: "${NOPE}", unset: true},
		{in: "${PORT", bad: true},
		{in: "${lower}", bad: true},
		{in: "${}", bad: true},
		{in: "u:${secret:DB}@h", out: "u:pw@h"},
		{in: "${secret:NOPE}", unset: true},
		{in: "${secret:db}", bad: true},
		{in: "${secret:}", bad: true},
	} {
		got, err := Expand(tc.in, lookup)
		var e *Error
		switch {
		case tc.unset || tc.bad:
			if !errors.As(err, &e) || e.Unset != tc.unset {
				t.Errorf("Expand(%q) = %q, %v; want unset=%v error", tc.in, got, err, tc.unset)
			}
		case err != nil || got != tc.out:
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

func TestSecretRefs(t *testing.T) {
	for _, tc := range []struct {
		in    string
		names []string
		any   bool
	}{
		{in: "${PORT}"},
		{in: "u:${secret:A}@${secret:B_2}/${PORT}", names: []string{"A", "B_2"}, any: true},
		{in: "${secret:bad}", any: true},
		{in: "${secret:A", any: true},
	} {
		names, any := SecretRefs(tc.in)
		if any != tc.any || len(names) != len(tc.names) {
			t.Errorf("SecretRefs(%q) = %v, %v; want %v, %v", tc.in, names, any, tc.names, tc.any)
			continue
		}
		for i := range names {
			if names[i] != tc.names[i] {
				t.Errorf("SecretRefs(%q) = %v; want %v", tc.in, names, tc.names)
			}
		}
	}
}
