package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kilnhq/kiln/backup/agentstatus"
)

// Progress counts what a command has done; it is read by the periodic log
// line and by the Prometheus endpoint kiln-metrics scrapes.
type Progress struct {
	Op              string
	Items           atomic.Int64
	Bytes           atomic.Int64 // uncompressed bytes
	Volumes         atomic.Int64 // volumes completed (uploaded or restored)
	VolumesInFlight atomic.Int64
	Throttles       atomic.Int64
	Capacity        func() float64        // consumed capacity units so far
	EstimatedItems  atomic.Int64          // from the table's item count, 0 when unknown
	Lease           atomic.Pointer[Lease] // the agent's table lease, nil for other commands
	start           time.Time
}

func newProgress(op string) *Progress { return &Progress{Op: op, start: time.Now()} }

// Log writes one slog line with rates and ETA.
func (p *Progress) Log(log *slog.Logger) {
	el := time.Since(p.start).Seconds()
	items, bytes := p.Items.Load(), p.Bytes.Load()
	rate := float64(items) / max(el, 1e-9)
	attrs := []any{
		"op", p.Op, "items", items, "items_per_s", round(rate), "bytes_per_s", round(float64(bytes) / max(el, 1e-9)),
		"volumes", p.Volumes.Load(), "volumes_in_flight", p.VolumesInFlight.Load(), "throttles", p.Throttles.Load(),
	}
	if p.Capacity != nil {
		attrs = append(attrs, "capacity_units", round(p.Capacity()), "capacity_per_s", round(p.Capacity()/max(el, 1e-9)))
	}
	if l := p.Lease.Load(); l != nil {
		st := l.Status()
		attrs = append(attrs, "lease", st.State, "lease_holder", st.Holder.Instance)
	}
	if est := p.EstimatedItems.Load(); est > 0 && rate > 0 && est > items {
		attrs = append(attrs, "eta", (time.Duration(float64(est-items)/rate) * time.Second).Round(time.Second).String())
	}
	log.Info("progress", attrs...)
}

func round(f float64) float64 { return float64(int64(f*10)) / 10 }

// Report logs progress every interval until ctx is done.
func (p *Progress) Report(ctx context.Context, log *slog.Logger, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Log(log)
		}
	}
}

// WriteMetrics writes the counters in Prometheus text format.
func (p *Progress) WriteMetrics(w io.Writer) {
	g := func(name, help, typ string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s{op=%q} %g\n", name, help, name, typ, name, p.Op, v)
	}
	g("kiln_backup_items_total", "Items dumped, restored or replayed.", "counter", float64(p.Items.Load()))
	g("kiln_backup_bytes_total", "Uncompressed item bytes processed.", "counter", float64(p.Bytes.Load()))
	g("kiln_backup_volumes_total", "Volumes completed.", "counter", float64(p.Volumes.Load()))
	g("kiln_backup_volumes_in_flight", "Volumes being written or uploaded.", "gauge", float64(p.VolumesInFlight.Load()))
	g("kiln_backup_throttles_total", "Throttling errors received.", "counter", float64(p.Throttles.Load()))
	if p.Capacity != nil {
		g("kiln_backup_capacity_units_total", "Consumed read or write capacity units.", "counter", p.Capacity())
	}
	g("kiln_backup_estimated_items", "Item count estimate of the table (for ETA).", "gauge", float64(p.EstimatedItems.Load()))
	if l := p.Lease.Load(); l != nil {
		writeLeaseMetrics(w, l.Status())
	}
}

// ServeMetrics serves /metrics (and, for the agent, its lease status at
// agentstatus.Path) on addr until ctx is done. It returns the
// bound address (useful with port 0).
func (p *Progress) ServeMetrics(ctx context.Context, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		p.WriteMetrics(w)
	})
	mux.HandleFunc(agentstatus.Path, func(w http.ResponseWriter, r *http.Request) {
		l := p.Lease.Load()
		if l == nil {
			http.Error(w, "not an agent: no lease", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(l.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	go func() { <-ctx.Done(); srv.Close() }()
	return l.Addr().String(), nil
}
