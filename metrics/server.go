package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/kilnhq/kiln/metrics/collect"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Handler serves /metrics (Prometheus text), /v1/summary (the app's request summary, JSON)
// and /healthz.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", d.serveMetrics)
	mux.HandleFunc("GET /v1/summary", d.serveSummary)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "kiln-metrics %s\n/metrics      Prometheus text\n/v1/summary   app request summary (JSON, ?window=5m)\n", Version)
	})
	return mux
}

func (d *Daemon) serveMetrics(w http.ResponseWriter, r *http.Request) {
	// At most two gathers at once: a scrape storm queues instead of growing the heap.
	select {
	case d.gathers <- struct{}{}:
		defer func() { <-d.gathers }()
	case <-r.Context().Done():
		return
	}
	st := d.state()
	fams := d.gather(r.Context(), st)
	bp := bufPool.Get().(*[]byte)
	b := collect.AppendText((*bp)[:0], fams)
	defer func() {
		if cap(b) <= 4<<20 { // do not keep a freak-sized buffer forever
			*bp = b[:0]
			bufPool.Put(bp)
		}
	}()
	w.Header().Set("Content-Type", collect.ContentType)
	// Once the answer is on its way, hand the gather's garbage back to the OS.
	defer d.releaseMemory()
	defer http.NewResponseController(w).Flush()
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		// Stateless compression keeps no window or hash tables between writes: a
		// standard gzip writer holds several hundred kilobytes, more than the whole
		// exposition, and pooling it keeps that resident.
		zw, _ := gzip.NewWriterLevel(w, gzip.StatelessCompression)
		zw.Write(b)
		zw.Close()
		return
	}
	w.Write(b)
}

func (d *Daemon) serveSummary(w http.ResponseWriter, r *http.Request) {
	st := d.state()
	w.Header().Set("Content-Type", "application/json")
	if st.window == nil {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "summary is off: no summary.target in the configuration (and no PORT to scrape the app)"})
		return
	}
	window := st.cfg.Summary.Window.D()
	if s := r.URL.Query().Get("window"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 || v > st.cfg.Summary.Retention.D() {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf("window=%q: want a duration between 0 and the retention (%s)", s, st.cfg.Summary.Retention.D())})
			return
		}
		window = v
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st.window.Summarize(d.now(), window))
}
