package components

import (
	"errors"
	"testing"

	"github.com/kilnhq/kiln/internal/strictyaml"
)

// FuzzParseDefinition checks that no component.yaml makes the decoder panic, that failures are
// positioned Errors, and that successes hold the unit rules.
// Run: go test -fuzz=FuzzParseDefinition -fuzztime=20s ./components
func FuzzParseDefinition(f *testing.F) {
	f.Add([]byte(validDef))
	f.Add([]byte(""))
	f.Add([]byte("unit: {mode: schedule, schedule: 1h, args: [\"${A}$$\", \"${\"], env: {A: \"${PORT}\"}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseTest(string(data))
		if err == nil {
			u := d.Unit
			if (u.Mode == ModeSchedule) != (u.Schedule > 0) || u.Restart == "" || d.policy == nil {
				t.Fatalf("accepted an inconsistent definition %+v", d)
			}
			return
		}
		var errs strictyaml.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %v is not Errors", err)
		}
		for _, e := range errs {
			if e.Line < 1 || e.Column < 1 || e.Path == "" || e.Msg == "" {
				t.Fatalf("incomplete error %+v", e)
			}
		}
	})
}
