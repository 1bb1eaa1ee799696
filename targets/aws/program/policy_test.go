package program

import (
	"encoding/json"
	"testing"
)

// stmt is an IAM statement read back for comparison: Action and Resource as lists
// whatever form the document used.
type stmt struct {
	Sid       string
	Action    []string
	Resource  []string
	Condition map[string]any
}

// statements parses an IAM policy document, failing on anything but Allow statements.
func statements(t *testing.T, doc string) []stmt {
	t.Helper()
	var d struct {
		Version   string
		Statement []struct {
			Sid       string
			Effect    string
			Action    any
			Resource  any
			Condition map[string]any
		}
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, doc)
	}
	if d.Version != policyVersion {
		t.Errorf("policy version %q", d.Version)
	}
	var out []stmt
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %q: effect %q", s.Sid, s.Effect)
		}
		out = append(out, stmt{Action: list(s.Action), Resource: list(s.Resource), Condition: s.Condition})
	}
	return out
}

func list(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}
