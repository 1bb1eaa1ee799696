package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kilnhq/kiln/internal/fileperm"
)

// What keeps other local users away from a rollout's control socket: its directory must
// be this user's own and closed to everyone else, and each end of a connection checks
// the other's uid (SO_PEERCRED), so no one else can steer a rollout nor answer in its
// place.

// checkDir refuses a socket directory that someone else made or may write to: it must be
// a directory (not a link to one), owned by this user, with mode 0700.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir() || !ok:
		return fmt.Errorf("control socket directory %s is not a directory: remove it", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("control socket directory %s belongs to uid %d, not to you (uid %d): someone else made it; remove it", dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm() != fileperm.Dir:
		return fmt.Errorf("control socket directory %s has mode %04o, want 0700 (others could replace the socket): chmod 700 %s", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// maxSocketPath is the longest path a unix socket address holds (sun_path less its NUL).
const maxSocketPath = 107

// withAddr calls fn with an address for the socket at path: path itself when it fits a
// socket address, else /proc/self/fd/<n>/<name> through a descriptor of its directory,
// which Linux resolves like the path, so a deep state directory still works.
func withAddr(path string, fn func(addr string) error) error {
	if len(path) <= maxSocketPath {
		return fn(path)
	}
	fd, err := syscall.Open(filepath.Dir(path), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer syscall.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, filepath.Base(path)))
}

// peerUID is the uid of the process at the other end of a unix connection: the client
// for an accepted connection, the listening process for a dialled one.
func peerUID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix connection: %T", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return int(cred.Uid), nil
}

// checkPeer refuses a connection whose other end runs as another user.
func checkPeer(conn net.Conn) error {
	uid, err := peerUID(conn)
	if err != nil {
		return fmt.Errorf("control socket: who is at the other end: %w", err)
	}
	if uid != os.Geteuid() {
		return fmt.Errorf("control socket: the other end runs as uid %d, not as you (uid %d): refused", uid, os.Geteuid())
	}
	return nil
}

// dial connects to the rollout listening on path. A listener of another user is refused:
// it could answer "ok" for a rollout that never hears the command.
func dial(ctx context.Context, path string) (net.Conn, error) {
	var conn net.Conn
	err := withAddr(path, func(addr string) (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", addr)
		return err
	})
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, ErrNoRollout
	}
	if err != nil {
		return nil, err
	}
	if err := checkPeer(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
