// Package cwfake is a fake CloudWatch PutMetricData endpoint for tests: an HTTP server on
// 127.0.0.1 that decodes what the real AWS SDK sends (Smithy RPC v2 CBOR, gzip when the
// SDK compresses) and answers as CloudWatch does, with errors chosen by the test.
package cwfake

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Server is a fake PutMetricData endpoint.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	requests []Request
	respond  func(n int) (status int, errType string)
}

// Request is one decoded PutMetricData call.
type Request struct {
	Namespace string // PutMetricData Namespace
	Gzip      bool   // the body came gzip-encoded
	BodyBytes int    // decoded (uncompressed) body size
	// DatumCount is how many datums the request carried (Datums keeps only the first of
	// a refused request).
	DatumCount int
	Datums     []Datum // decoded datums (only the first of a refused request)
	Status     int     // the HTTP status the fake answered
}

// Datum is one decoded MetricDatum.
type Datum struct {
	Name       string            // MetricName
	Dims       map[string]string // Dimensions by name
	Value      float64           // Value
	Unit       string            // Unit
	At         time.Time         // Timestamp
	Resolution int64             // StorageResolution
}

// New starts a fake on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Server {
	f := &Server{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/service/GraniteServiceVersion20100801/operation/PutMetricData" ||
		r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || r.Header.Get("Authorization") == "" {
		f.t.Errorf("unexpected request %s %s %v", r.Method, r.URL.Path, r.Header)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			f.t.Errorf("gzip: %v", err)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		f.t.Errorf("read body: %v", err)
		return
	}
	req, err := decodePut(raw)
	if err != nil {
		f.t.Errorf("decode PutMetricData: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Gzip, req.BodyBytes = gz, len(raw)

	f.mu.Lock()
	n := len(f.requests)
	status, errType := http.StatusOK, ""
	if f.respond != nil {
		status, errType = f.respond(n)
	}
	req.Status = status
	if status != http.StatusOK {
		// Keep only the first datum of refused requests so that a long outage does not
		// grow the test's own heap (the memory test measures the publisher's).
		req.DatumCount = len(req.Datums)
		req.Datums = []Datum{req.Datums[0]} // a copy: a reslice would pin the whole array
	} else {
		req.DatumCount = len(req.Datums)
	}
	f.requests = append(f.requests, req)
	f.mu.Unlock()

	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.WriteHeader(status)
	if status == http.StatusOK {
		w.Write(cbor.Encode(cbor.Map{}))
		return
	}
	w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#" + errType), "message": cbor.String("fake " + errType)}))
}

func decodePut(raw []byte) (Request, error) {
	v, err := cbor.Decode(raw)
	if err != nil {
		return Request{}, err
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return Request{}, fmt.Errorf("body is %T, want a map", v)
	}
	var req Request
	if s, ok := m["Namespace"].(cbor.String); ok {
		req.Namespace = string(s)
	}
	list, ok := m["MetricData"].(cbor.List)
	if !ok {
		return req, fmt.Errorf("MetricData is %T", m["MetricData"])
	}
	for _, item := range list {
		dm, ok := item.(cbor.Map)
		if !ok {
			return req, fmt.Errorf("datum is %T", item)
		}
		var d Datum
		d.Name = string(dm["MetricName"].(cbor.String))
		if d.Value, err = cbor.AsFloat64(dm["Value"]); err != nil {
			return req, fmt.Errorf("Value: %w", err)
		}
		if d.At, err = cbor.AsTime(dm["Timestamp"]); err != nil {
			return req, fmt.Errorf("Timestamp: %w", err)
		}
		if u, ok := dm["Unit"].(cbor.String); ok {
			d.Unit = string(u)
		}
		if d.Resolution, err = cbor.AsInt64(dm["StorageResolution"]); err != nil {
			return req, fmt.Errorf("StorageResolution: %w", err)
		}
		d.Dims = map[string]string{}
		if dl, ok := dm["Dimensions"].(cbor.List); ok {
			for _, x := range dl {
				xm := x.(cbor.Map)
				d.Dims[string(xm["Name"].(cbor.String))] = string(xm["Value"].(cbor.String))
			}
		}
		req.Datums = append(req.Datums, d)
	}
	return req, nil
}

// Requests returns every request received so far.
func (f *Server) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Accepted returns the datums of successful requests, in order.
func (f *Server) Accepted() []Datum {
	var out []Datum
	for _, r := range f.Requests() {
		if r.Status == http.StatusOK {
			out = append(out, r.Datums...)
		}
	}
	return out
}

// Respond sets how the n-th request (0-based) is answered: an HTTP status and, for
// errors, the modeled error type (e.g. "InvalidParameterValueException"). The default
// accepts everything.
func (f *Server) Respond(fn func(n int) (status int, errType string)) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

// URL is the endpoint to give the SDK as its base endpoint.
func (f *Server) URL() string { return f.srv.URL }

// Close stops the server; later requests fail to connect.
func (f *Server) Close() { f.srv.Close() }
