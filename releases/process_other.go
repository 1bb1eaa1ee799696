//go:build !unix

package releases

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("not supported on this system")

// processStart cannot tell here; the lock is then never judged stale.
func processStart(int) (uint64, bool, error) { return 0, false, errUnsupported }

func flockTry(*os.File) (bool, error) { return false, errUnsupported }

func flockRelease(*os.File) error { return errUnsupported }
