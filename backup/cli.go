package backup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// Exit codes of kiln-backup.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitCorrupt = 3 // verify or restore found a corrupt volume
)

const usage = `usage: kiln-backup <command> [flags]

commands:
  agent        keep a table backed up: dumps every --dump-every, incrementals in between
  dump         scan a table into compressed volumes in a store (resumable)
  finalize     write a dump's manifest once every segment is done
  incremental  follow the table's stream into change volumes
  verify       re-read a dump's volumes and check digests and counts
  restore      write a dump (and its changes) into a table

Run kiln-backup <command> -h for the flags of a command.
`

// Main runs kiln-backup with args (without the program name) and returns
// the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stderr)
}

type common struct {
	fs              *flag.FlagSet
	storeURL        string
	id              string
	s3              store.Options
	aws             AWSOptions
	logLevel        string
	progress        time.Duration
	metricsListen   string
	parallel        int
	memoryLimit     int64
	log             *slog.Logger
	progressCounter *Progress
}

func newCommon(name string, stderr io.Writer) *common {
	c := &common{fs: flag.NewFlagSet("kiln-backup "+name, flag.ContinueOnError)}
	fs := c.fs
	fs.SetOutput(stderr)
	fs.StringVar(&c.storeURL, "store", os.Getenv("KILN_BACKUP_STORE"), "where dumps live: file:///dir or s3://bucket/prefix (env KILN_BACKUP_STORE)")
	fs.StringVar(&c.id, "id", "", "dump id: the dump's directory in the store (dump: \"auto\" resumes the table's unfinished dump or starts <table>-<time>)")
	fs.StringVar(&c.s3.S3Endpoint, "s3-endpoint", "", "S3-compatible endpoint URL")
	fs.StringVar(&c.s3.S3Region, "s3-region", "", "S3 region (default: AWS config)")
	fs.BoolVar(&c.s3.S3PathStyle, "s3-path-style", false, "use path-style S3 addressing")
	fs.Int64Var(&c.s3.PartSize, "s3-part-size", 16<<20, "multipart upload part size in bytes")
	fs.StringVar(&c.aws.Region, "region", "", "AWS region of the table (default: AWS config)")
	fs.StringVar(&c.aws.Endpoint, "endpoint", "", "DynamoDB endpoint URL (e.g. a local dynalite)")
	fs.StringVar(&c.aws.StreamsEndpoint, "streams-endpoint", "", "DynamoDB Streams endpoint URL")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&c.progress, "progress-interval", 30*time.Second, "how often to log progress (0: never)")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9465)")
	fs.IntVar(&c.parallel, "parallel", 4, "segments or volumes processed at once")
	fs.Int64Var(&c.memoryLimit, "memory-limit", 64<<20, "soft Go heap limit in bytes, keeps memory flat however big the table (0: none; GOMEMLIMIT wins)")
	return c
}

func (c *common) parse(args []string, stderr io.Writer, op string) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", c.logLevel, err)
	}
	c.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if c.storeURL == "" {
		return errors.New("--store is required (file:///dir or s3://bucket/prefix)")
	}
	if c.id == "" {
		return errors.New("--id is required")
	}
	c.progressCounter = newProgress(op)
	if c.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The agent runs beside production services: collect garbage
		// sooner rather than let the heap grow with the run's length.
		debug.SetMemoryLimit(c.memoryLimit)
	}
	return nil
}

func (c *common) start(ctx context.Context) error {
	go c.progressCounter.Report(ctx, c.log, c.progress)
	if c.metricsListen != "" {
		addr, err := c.progressCounter.ServeMetrics(ctx, c.metricsListen)
		if err != nil {
			return err
		}
		c.log.Info("serving metrics", "addr", addr)
	}
	return nil
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmds := map[string]func(context.Context, []string, io.Writer) error{
		"agent": cmdAgent, "dump": cmdDump, "finalize": cmdFinalize, "verify": cmdVerify, "restore": cmdRestore, "incremental": cmdIncremental,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kiln-backup: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	err := fn(ctx, args[1:], stderr)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "kiln-backup %s: %v\n", args[0], err)
		return ExitUsage
	case IsCorrupt(err):
		fmt.Fprintf(stderr, "kiln-backup %s: %v\n", args[0], err)
		return ExitCorrupt
	default:
		fmt.Fprintf(stderr, "kiln-backup %s: %v\n", args[0], err)
		return ExitError
	}
}

type usageError struct{ error }

func (c *common) openStore(ctx context.Context) (store.Store, error) {
	s, err := store.Open(ctx, c.storeURL, c.s3)
	if err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

// dumpFlags defines the dump command's flags on c.
func dumpFlags(c *common, cfg *DumpConfig, share *string, pageLimit *int) {
	fs := c.fs
	fs.StringVar(&cfg.Table, "table", "", "table to dump")
	fs.StringVar(share, "segments", "16", "scan segments: TOTAL, or FIRST-LAST/TOTAL for this machine's share")
	fs.Int64Var(&cfg.VolumeBytes, "volume-bytes", 64<<20, "cut volumes at this many uncompressed bytes (0: no byte limit)")
	fs.Int64Var(&cfg.VolumeItems, "volume-items", 0, "cut volumes at this many items (0: no item limit)")
	fs.IntVar(&cfg.LocalVolumes, "local-volumes", 2, "K: at most K volumes on local disk at once; 0 streams volumes into uploads")
	fs.StringVar(&cfg.SpoolDir, "spool-dir", "", "local volume dir (default $KILN_DATA_DIR/kiln-backup/spool or the temp dir)")
	fs.Float64Var(&cfg.ReadBudget, "rcu", 0, "read budget in RCU/s (0: unthrottled)")
	fs.IntVar(pageLimit, "page-limit", 0, "Scan page item limit (0: 1 MB pages)")
	fs.BoolVar(&cfg.ConsistentRead, "consistent-read", false, "strongly consistent scan (costs twice the RCU)")
}

func cmdDump(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("dump", stderr)
	var cfg DumpConfig
	var share string
	var pageLimit int
	dumpFlags(c, &cfg, &share, &pageLimit)
	if err := c.parse(args, stderr, "dump"); err != nil {
		return usageOrHelp(err)
	}
	sh, err := ParseSegmentShare(share)
	if err != nil {
		return usageError{err}
	}
	if cfg.Table == "" {
		return usageError{errors.New("--table is required")}
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = filepath.Join(dataDir(), "spool")
	}
	cfg.Share, cfg.PageLimit, cfg.DumpID, cfg.Log, cfg.Progress = sh, int32(pageLimit), c.id, c.log, c.progressCounter
	if cfg.Parallel = c.parallel; cfg.Parallel <= 0 {
		return usageError{errors.New("--parallel must be positive")}
	}
	if cfg.Store, err = c.openStore(ctx); err != nil {
		return err
	}
	if cfg.DB, err = NewDynamoDB(ctx, c.aws); err != nil {
		return err
	}
	if cfg.DumpID == AutoID {
		if cfg.DumpID, err = resolveAutoID(ctx, cfg.Store, cfg.Table, clock.Real{}); err != nil {
			return err
		}
		c.log.Info("dump id chosen", "dump", cfg.DumpID)
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	_, err = Dump(ctx, cfg)
	return err
}

// agentFlags defines the agent command's flags on c.
func agentFlags(c *common, cfg *AgentConfig, share *string, pageLimit *int) {
	dumpFlags(c, &cfg.Dump, share, pageLimit)
	c.fs.DurationVar(&cfg.DumpEvery, "dump-every", 24*time.Hour, "time from one dump's start to the next")
	c.fs.DurationVar(&cfg.IncrementalEvery, "incremental-every", time.Hour, "how often to read the table's stream into change volumes (0: never)")
	c.fs.Int64Var(&cfg.Incremental.VolumeRecords, "volume-records", 10000, "cut change volumes at this many records")
	c.fs.StringVar(&cfg.Incremental.StreamARN, "stream-arn", "", "stream ARN (default: the table's latest stream)")
	c.id = AutoID // the agent picks dump ids itself
}

func cmdAgent(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("agent", stderr)
	var cfg AgentConfig
	var share string
	var pageLimit int
	agentFlags(c, &cfg, &share, &pageLimit)
	if err := c.parse(args, stderr, "agent"); err != nil {
		return usageOrHelp(err)
	}
	if c.id != AutoID {
		return usageError{errors.New("agent chooses dump ids itself; do not pass --id")}
	}
	sh, err := ParseSegmentShare(share)
	if err != nil {
		return usageError{err}
	}
	if cfg.Dump.Table == "" {
		return usageError{errors.New("--table is required")}
	}
	if cfg.Dump.SpoolDir == "" {
		cfg.Dump.SpoolDir = filepath.Join(dataDir(), "spool")
	}
	cfg.Dump.Share, cfg.Dump.PageLimit, cfg.Dump.Log, cfg.Dump.Progress, cfg.Dump.Parallel = sh, int32(pageLimit), c.log, c.progressCounter, c.parallel
	if cfg.Dump.Store, err = c.openStore(ctx); err != nil {
		return err
	}
	if cfg.Dump.DB, err = NewDynamoDB(ctx, c.aws); err != nil {
		return err
	}
	if cfg.IncrementalEvery > 0 {
		if cfg.Incremental.Streams, err = NewStreams(ctx, c.aws); err != nil {
			return err
		}
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	return Agent(ctx, cfg)
}

func cmdFinalize(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("finalize", stderr)
	if err := c.parse(args, stderr, "finalize"); err != nil {
		return usageOrHelp(err)
	}
	s, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	m, _, err := Finalize(ctx, s, c.id, nil)
	if err != nil {
		return err
	}
	c.log.Info("manifest written", "dump", c.id, "items", m.Items, "volumes", m.Volumes)
	return nil
}

func cmdVerify(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("verify", stderr)
	if err := c.parse(args, stderr, "verify"); err != nil {
		return usageOrHelp(err)
	}
	s, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	_, err = Verify(ctx, s, c.id, c.parallel, c.log)
	return err
}

func cmdRestore(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("restore", stderr)
	var cfg RestoreConfig
	fs := c.fs
	fs.StringVar(&cfg.Table, "table", "", "target table (default: the dumped table's name)")
	fs.BoolVar(&cfg.Create, "create", false, "create the table from the dump's schema if it does not exist")
	fs.StringVar(&cfg.StateFile, "state", "", "local checkpoint file (default $KILN_DATA_DIR/restore-<id>-<table>.json)")
	fs.Float64Var(&cfg.WriteBudget, "wcu", 0, "write budget in WCU/s (0: unthrottled)")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", 30, "BatchWriteItem attempts for unprocessed items before failing")
	fs.BoolVar(&cfg.SkipChanges, "skip-changes", false, "do not replay change volumes")
	if err := c.parse(args, stderr, "restore"); err != nil {
		return usageOrHelp(err)
	}
	var err error
	if cfg.Store, err = c.openStore(ctx); err != nil {
		return err
	}
	if cfg.DB, err = NewDynamoDB(ctx, c.aws); err != nil {
		return err
	}
	cfg.DumpID, cfg.Parallel, cfg.Log, cfg.Progress = c.id, c.parallel, c.log, c.progressCounter
	if cfg.StateFile == "" {
		name := cfg.Table
		if name == "" {
			name = "source"
		}
		cfg.StateFile = filepath.Join(dataDir(), "restore-"+c.id+"-"+name+".json")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StateFile), 0o755); err != nil {
		return err
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	_, err = Restore(ctx, cfg)
	return err
}

func cmdIncremental(ctx context.Context, args []string, stderr io.Writer) error {
	c := newCommon("incremental", stderr)
	var cfg IncrementalConfig
	fs := c.fs
	fs.StringVar(&cfg.Table, "table", "", "table whose stream to follow (its latest stream is used)")
	fs.StringVar(&cfg.StreamARN, "stream-arn", "", "stream ARN (default: the table's latest stream)")
	fs.Int64Var(&cfg.VolumeRecords, "volume-records", 10000, "cut change volumes at this many records")
	fs.BoolVar(&cfg.Follow, "follow", false, "keep following the stream until stopped (default: stop when caught up)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 5*time.Second, "wait between reads of a caught-up shard when following")
	if err := c.parse(args, stderr, "incremental"); err != nil {
		return usageOrHelp(err)
	}
	if cfg.Table == "" && cfg.StreamARN == "" {
		return usageError{errors.New("--table or --stream-arn is required")}
	}
	var err error
	if cfg.Store, err = c.openStore(ctx); err != nil {
		return err
	}
	if cfg.DB, err = NewDynamoDB(ctx, c.aws); err != nil {
		return err
	}
	if cfg.Streams, err = NewStreams(ctx, c.aws); err != nil {
		return err
	}
	cfg.DumpID, cfg.Log, cfg.Progress = c.id, c.log, c.progressCounter
	if err := c.start(ctx); err != nil {
		return err
	}
	_, err = Incremental(ctx, cfg)
	return err
}

func usageOrHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// dataDir is the writable per-instance dir kiln gives units, or the temp dir.
func dataDir() string {
	if d := os.Getenv("KILN_DATA_DIR"); d != "" {
		return filepath.Join(d, "kiln-backup")
	}
	return filepath.Join(os.TempDir(), "kiln-backup")
}
