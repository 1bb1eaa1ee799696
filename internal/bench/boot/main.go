// Command boot measures what kiln-boot costs an instance: the resident memory of an idle
// kiln-boot supervising the demo app, beside the app's own, read from /proc after the
// instance has settled.
//
//	go tool task bench:boot          (or: go run ./internal/bench/boot -boot bin/kiln-boot)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/boot"
	"github.com/kilnhq/kiln/images"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	bootBin := flag.String("boot", "bin/kiln-boot", "the kiln-boot binary")
	settle := flag.Duration("settle", 3*time.Second, "how long the instance runs before it is measured")
	flag.Parse()
	init, err := filepath.Abs(*bootBin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kiln-bench-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	store := &images.Store{Dir: filepath.Join(dir, "images")}
	res, err := store.Bake(context.Background(), images.Recipe{Name: "demo", Version: "1.0.0", Init: init,
		App: images.App{Main: "./examples/demo", Dir: wd}})
	if err != nil {
		return err
	}
	// What verifying the image costs every boot: kiln-boot re-hashes it before it starts
	// anything (median of 5, page cache warm, as after a bake).
	var verify []time.Duration
	for range 5 {
		t0 := time.Now()
		if err := images.Verify(res.Image.Dir, res.Image.Digest); err != nil {
			return err
		}
		verify = append(verify, time.Since(t0))
	}
	slices.Sort(verify)
	var size int64
	for _, f := range res.Image.Files {
		size += f.Size
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	spec, err := json.Marshal(boot.Spec{Instance: "demo-blue-0", ImageDir: res.Image.Dir, DataDir: data,
		Env: map[string]string{"PORT": strconv.Itoa(port)}, DrainTimeout: boot.Duration(2 * time.Second)})
	if err != nil {
		return err
	}
	specPath := filepath.Join(dir, "boot.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(res.Image.Dir, res.Image.Init.Path), "--spec", specPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 15*time.Second {
			return fmt.Errorf("the app did not listen within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	untilListening := time.Since(start)
	time.Sleep(*settle)
	app, err := childOf(cmd.Process.Pid)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "idle instance after %s\tRSS\tPSS\tanonymous\t\n", *settle)
	for _, p := range []struct {
		name string
		pid  int
	}{{"kiln-boot", cmd.Process.Pid}, {"demo app", app}} {
		m, err := memory(p.pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", p.name, kb(m["Rss"]), kb(m["Pss"]), kb(m["Anonymous"]))
	}
	tw.Flush()
	st, _ := os.Stat(init)
	fmt.Printf("kiln-boot binary: %.1f MB; start until the app listens: %s (image verification included)\n", float64(st.Size())/1e6, untilListening.Round(time.Millisecond))
	fmt.Printf("image verification per boot: %s for %d files, %.1f MB (median of 5)\n", verify[2].Round(100*time.Microsecond), len(res.Image.Files), float64(size)/1e6)
	return nil
}

// childOf returns the pid of the one child of pid (the app kiln-boot started), whichever
// of its threads started it.
func childOf(pid int) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("kiln-boot %d has no child", pid)
}

// memory reads /proc/<pid>/smaps_rollup, in kB.
func memory(pid int) (map[string]int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB")); err == nil {
			m[k] = n
		}
	}
	return m, sc.Err()
}

func kb(n int) string { return fmt.Sprintf("%.1f MB", float64(n)/1024) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
