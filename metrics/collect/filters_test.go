package collect

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestDefaultFiltersMatchTheirExpressions checks each default filter against the regular
// expression its documentation gives, on real device, filesystem and mount names, near
// misses, and random strings over the characters that matter.
func TestDefaultFiltersMatchTheirExpressions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     Matcher
		expr  string
		names []string
		chars string
	}{
		{"disk", DefaultDiskIgnore, `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$`, []string{
			"sda", "sda1", "sdb12", "sdaa3", "hda1", "vda", "vda1", "xvda", "xvda1", "xvdf", "xda1", "sd1", "sdA1",
			"nvme0n1", "nvme0n1p1", "nvme10n2p13", "nvmen1p1", "nvme0np1", "nvme0n1p", "nvme0n1q1",
			"mmcblk0", "mmcblk0p1", "mmcblkp1", "loop0", "loop", "ram0", "zram0", "zzram0", "fd0", "dm-0", "md0",
			"sr0", "", "1", "loop0\n", "sda1\n1", "ram00",
		}, "0123456789adhlmnoprsvxz\n-"},
		{"fstype", DefaultFSTypeIgnore, `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs|nfs4?|cifs|smb3|fuse\..*|9p|ceph|glusterfs)$`, []string{
			"ext4", "xfs", "btrfs", "vfat", "tmpfs", "proc", "procfs", "sysfs", "cgroup", "cgroup2", "cgroup3",
			"nfs", "nfs4", "nfs3", "fuse", "fuse.", "fuse.sshfs", "fuse.a\nb", "fuseblk", "overlay", "overlayfs",
			"9p", "ceph", "cephfs", "", "proc\n", "autofs ",
		}, "cfgnoprsu.\n4"},
		{"mount", DefaultMountIgnore, `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+)($|/)`, []string{
			"/", "/dev", "/dev/", "/dev/shm", "/devices", "/proc", "/proc/sys/fs", "/sys", "/sys/fs/cgroup", "/system",
			"/run", "/run/credentials", "/run/credentials/", "/run/credentials/a", "/run/credentials/a/b",
			"/run/credentials/\n", "/run/credentials/a\n", "/run/credentials/a/\nb", "/run/credentials//\n",
			"/run/credentials/\n/", "/var/lib/docker", "/var/lib/docker/", "/var/lib/docker/overlay2/x/merged",
			"/home", "/boot/efi", "", "dev", "/dev\n",
		}, "/cdeprsv\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp.MustCompile(tc.expr)
			check := func(s string) {
				if got, want := tc.f.MatchString(s), re.MatchString(s); got != want {
					t.Errorf("%q: filter says %v, the expression %v", s, got, want)
				}
			}
			for _, s := range tc.names {
				check(s)
			}
			r := rand.New(rand.NewPCG(1, 2))
			prefixes := append(tc.names, "")
			for range 200_000 {
				b := []byte(prefixes[r.IntN(len(prefixes))])
				for range r.IntN(6) {
					b = append(b, tc.chars[r.IntN(len(tc.chars))])
				}
				check(string(b))
			}
		})
	}
}
