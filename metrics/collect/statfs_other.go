//go:build !linux

package collect

import "errors"

func statfs(string) (FSStats, error) {
	return FSStats{}, errors.New("statfs: filesystem metrics are only collected on Linux")
}
