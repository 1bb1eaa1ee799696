package releases

import (
	"fmt"

	"github.com/hashicorp/go-version"
)

// DowngradeError is returned by CheckNewer when the next release is older than the live one.
type DowngradeError struct {
	Live, Next string
}

// Error names both versions and the flag that allows the downgrade.
func (e *DowngradeError) Error() string {
	return fmt.Sprintf("version %s is older than the live version %s; pass --allow-downgrade to deploy it anyway", e.Next, e.Live)
}

// CheckNewer checks that release version next may replace the live one: it must be newer
// (hashicorp/go-version order, so 1.0.0-rc.1 < 1.0.0 and build metadata is ignored)
// unless allowDowngrade. An empty live means nothing is live yet. Equal versions pass:
// it is the same release again, which the caller reports.
func CheckNewer(live, next string, allowDowngrade bool) error {
	n, err := version.NewVersion(next)
	if err != nil {
		return fmt.Errorf("field version: %q is not a version: %w", next, err)
	}
	if live == "" {
		return nil
	}
	l, err := version.NewVersion(live)
	if err != nil {
		return fmt.Errorf("live release: version %q is not a version: %w", live, err)
	}
	if n.LessThan(l) && !allowDowngrade {
		return &DowngradeError{Live: live, Next: next}
	}
	return nil
}
