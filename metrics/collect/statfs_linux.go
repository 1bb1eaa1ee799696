//go:build linux

package collect

import "syscall"

// stRDOnly is ST_RDONLY from statvfs(3), set in Statfs_t.Flags for read-only mounts.
const stRDOnly = 0x1

func statfs(path string) (FSStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return FSStats{}, err
	}
	bs := float64(st.Bsize)
	return FSStats{
		Size: float64(st.Blocks) * bs, Free: float64(st.Bfree) * bs, Avail: float64(st.Bavail) * bs,
		Files: float64(st.Files), FilesFree: float64(st.Ffree), ReadOnly: st.Flags&stRDOnly != 0,
	}, nil
}
