package metrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
)

// Exit codes of Main.
const (
	ExitOK     = 0
	ExitFailed = 1 // the daemon could not start or serve
	ExitUsage  = 2 // bad flags or configuration
)

// ImageConfigPath is where, inside an image ($KILN_IMAGE_DIR), kiln-metrics looks for its
// configuration when neither --config nor KILN_METRICS_CONFIG names one.
const ImageConfigPath = "etc/kiln-metrics.yaml"

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Main runs kiln-metrics with the given arguments (without the program name) and returns
// the process exit code. SIGHUP reloads the configuration; SIGTERM and SIGINT stop the
// daemon after flushing the CloudWatch buffer within shutdown_timeout.
func Main(args []string) int {
	startWithOneP()
	return run(context.Background(), args, os.Stderr, os.Getenv)
}

func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("kiln-metrics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("KILN_METRICS_CONFIG"), "configuration file (YAML); without one the defaults read kiln boot's environment")
	listen := fs.String("listen", "", "address of the HTTP server, overrides the file (e.g. 127.0.0.1:9100)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "kiln-metrics: --log-level: %v\n", err)
		return ExitUsage
	}
	if *configPath == "" {
		// An image may carry its own configuration next to the binary's other files.
		if dir := getenv("KILN_IMAGE_DIR"); dir != "" {
			if p := filepath.Join(dir, ImageConfigPath); fileExists(p) {
				*configPath = p
			}
		}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})).With("component", "kiln-metrics")

	if *check {
		d := &Daemon{getenv: getenv, configPath: *configPath, listen: *listen}
		if _, err := d.loadConfig(); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitUsage
		}
		fmt.Fprintln(stderr, "configuration ok")
		return ExitOK
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := NewDaemon(ctx, DaemonOptions{ConfigPath: *configPath, Listen: *listen, Log: log, Getenv: getenv})
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, err)
			return ExitUsage
		}
		log.Error("start", "err", err)
		return ExitFailed
	}
	cfg := d.Config()
	if cfg.MemoryLimit > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("listen", "err", err)
		return ExitFailed
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.Reload(ctx)
			}
		}
	}()
	log.Info("serving", "listen", ln.Addr().String(), "config", *configPath, "version", Version)
	if err := d.Run(ctx, ln); err != nil {
		log.Error("serve", "err", err)
		return ExitFailed
	}
	log.Info("stopped")
	return ExitOK
}
