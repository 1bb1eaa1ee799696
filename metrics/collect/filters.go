package collect

import "strings"

// Matcher decides whether a name is left out; *regexp.Regexp is one.
type Matcher interface {
	MatchString(s string) bool
}

// MatchFunc turns a function into a Matcher.
type MatchFunc func(s string) bool

// MatchString reports whether f matches s.
func (f MatchFunc) MatchString(s string) bool { return f(s) }

// The default filters, in the same spirit as node_exporter's. They are plain functions
// rather than compiled regular expressions: a compiled expression and its matching
// machines stay on the heap for the daemon's whole life on every instance. Each one is
// exactly the regular expression in its comment (filters_test.go checks them against it);
// a configured expression replaces it.
var (
	// DefaultDiskIgnore: ^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$
	// (partitions, loop and ram devices).
	DefaultDiskIgnore Matcher = MatchFunc(ignoreDisk)
	// DefaultFSTypeIgnore: ^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|
	// devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|
	// securityfs|selinuxfs|squashfs|sysfs|tracefs|nfs4?|cifs|smb3|fuse\..*|9p|ceph|glusterfs)$
	// (pseudo and network filesystems: statfs(2) on a dead server blocks forever).
	DefaultFSTypeIgnore Matcher = MatchFunc(ignoreFSType)
	// DefaultMountIgnore: ^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+)($|/)
	DefaultMountIgnore Matcher = MatchFunc(ignoreMount)
)

func ignoreDisk(name string) bool {
	// Every alternative ends in a non-digit, so \d+$ is the whole trailing run of digits.
	p := strings.TrimRight(name, "0123456789")
	if len(p) == len(name) {
		return false
	}
	switch p {
	case "ram", "zram", "loop", "fd":
		return true
	}
	if rest, ok := cutAnyPrefix(p, "hd", "sd", "vd", "xvd"); ok {
		return rest != "" && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz") == ""
	}
	if rest, ok := strings.CutPrefix(p, "nvme"); ok { // \d+n\d+p
		rest, ok = cutDigits(rest)
		if rest, ok2 := strings.CutPrefix(rest, "n"); ok && ok2 {
			rest, ok = cutDigits(rest)
			return ok && rest == "p"
		}
		return false
	}
	if rest, ok := strings.CutPrefix(p, "mmcblk"); ok { // \d+p
		rest, ok = cutDigits(rest)
		return ok && rest == "p"
	}
	return false
}

var ignoredFSTypes = [...]string{"autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs",
	"debugfs", "devpts", "devtmpfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay",
	"proc", "procfs", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs",
	"nfs", "nfs4", "cifs", "smb3", "9p", "ceph", "glusterfs"}

func ignoreFSType(fstype string) bool {
	for _, t := range ignoredFSTypes {
		if fstype == t {
			return true
		}
	}
	// fuse\..*$: "." does not match a newline.
	rest, ok := strings.CutPrefix(fstype, "fuse.")
	return ok && !strings.Contains(rest, "\n")
}

func ignoreMount(mount string) bool {
	for _, dir := range [...]string{"/dev", "/proc", "/sys"} {
		if rest, ok := strings.CutPrefix(mount, dir); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	// .+($|/): one or more characters other than a newline, then the end or a slash.
	if rest, ok := cutAnyPrefix(mount, "/run/credentials/", "/var/lib/docker/"); ok {
		line, _, nl := strings.Cut(rest, "\n")
		if !nl {
			return line != ""
		}
		return strings.Contains(line[min(1, len(line)):], "/")
	}
	return false
}

func cutAnyPrefix(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest, true
		}
	}
	return s, false
}

// cutDigits removes one or more leading ASCII digits; ok is false without any.
func cutDigits(s string) (rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[i:], i > 0
}
