package releases

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNewer(t *testing.T) {
	for _, c := range []struct {
		live, next string
		allow      bool
		downgrade  bool   // want a *DowngradeError
		errText    string // want another error containing this
	}{
		{live: "", next: "1.0.0"},
		{live: "1.0.0", next: "1.0.1"},
		{live: "1.0.0", next: "1.0.0"},        // the same release again
		{live: "1.0.0", next: "1.0"},          // equal in version order
		{live: "1.0.0", next: "1.0.0+build7"}, // metadata does not order
		{live: "1.0.0-rc.1", next: "1.0.0"},
		{live: "1.0.0-rc.1", next: "1.0.0-rc.2"},
		{live: "1.0.0-beta.2", next: "1.0.0-rc.1"},
		{live: "1.0.0", next: "1.0.0-rc.1", downgrade: true},
		{live: "1.0.0", next: "1.0.0-rc.1", allow: true},
		{live: "1.10.0", next: "1.9.0", downgrade: true},
		{live: "1.10.0", next: "1.9.0", allow: true},
		{live: "v2.0.0", next: "2.0.1"},
		{live: "1.0.0", next: "banana", errText: `field version: "banana" is not a version`},
		{live: "banana", next: "1.0.0", errText: `live release: version "banana"`},
	} {
		err := CheckNewer(c.live, c.next, c.allow)
		var de *DowngradeError
		switch {
		case c.downgrade:
			if !errors.As(err, &de) || de.Live != c.live || de.Next != c.next {
				t.Errorf("CheckNewer(%q, %q, %v) = %v, want a DowngradeError", c.live, c.next, c.allow, err)
			} else if msg := err.Error(); !strings.Contains(msg, c.live) || !strings.Contains(msg, c.next) || !strings.Contains(msg, "--allow-downgrade") {
				t.Errorf("message %q does not name both versions and the flag", msg)
			}
		case c.errText != "":
			if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), c.errText) {
				t.Errorf("CheckNewer(%q, %q, %v) = %v, want an error with %q", c.live, c.next, c.allow, err, c.errText)
			}
		case err != nil:
			t.Errorf("CheckNewer(%q, %q, %v) = %v, want nil", c.live, c.next, c.allow, err)
		}
	}
}
