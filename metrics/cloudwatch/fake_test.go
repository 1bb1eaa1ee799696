package cloudwatch

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/cbor"
)

// fakeCloudWatch is a PutMetricData endpoint on 127.0.0.1 that decodes what the real SDK
// sends (Smithy RPC v2 CBOR, gzip when the SDK compresses) and answers as CloudWatch does.
type fakeCloudWatch struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []fakeRequest
	// respond decides the answer to the n-th request (0-based): an HTTP status and, for
	// errors, the modeled error type; nil means success.
	respond func(n int) (status int, errType string)
}

type fakeRequest struct {
	Namespace string
	Gzip      bool
	BodyBytes int // decoded (uncompressed) body size
	// DatumCount is how many datums the request carried (Datums keeps only the first of
	// a refused request).
	DatumCount int
	Datums     []fakeDatum
	Status     int
}

type fakeDatum struct {
	Name       string
	Dims       map[string]string
	Value      float64
	Unit       string
	At         time.Time
	Resolution int64
}

func newFake(t *testing.T) *fakeCloudWatch {
	f := &fakeCloudWatch{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloudWatch) serve(w http.ResponseWriter, r *http.Request) {
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
		req.Datums = []fakeDatum{req.Datums[0]} // a copy: a reslice would pin the whole array
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

func decodePut(raw []byte) (fakeRequest, error) {
	v, err := cbor.Decode(raw)
	if err != nil {
		return fakeRequest{}, err
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return fakeRequest{}, fmt.Errorf("body is %T, want a map", v)
	}
	var req fakeRequest
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
		var d fakeDatum
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

func (f *fakeCloudWatch) snapshot() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// accepted returns the datums of successful requests, in order.
func (f *fakeCloudWatch) accepted() []fakeDatum {
	var out []fakeDatum
	for _, r := range f.snapshot() {
		if r.Status == http.StatusOK {
			out = append(out, r.Datums...)
		}
	}
	return out
}

// client builds a real SDK client pointed at the fake with static credentials.
func (f *fakeCloudWatch) client(t *testing.T) API {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	c, err := NewClient(context.Background(), ClientOptions{Region: "us-east-1", Endpoint: f.srv.URL,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret-never-logged", "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sleeps records the backoffs the publisher asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}
