package testpeers

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 starts an in-memory S3-compatible server (gofakes3) on 127.0.0.1 and
// returns its endpoint URL. It is stopped on t.Cleanup. Buckets must be
// created by the caller.
func S3(t TB) string {
	t.Helper()
	url, stop := StartS3()
	t.Cleanup(stop)
	return url
}

// StartS3 is S3 outside a test (a bench command): it returns the endpoint and a stop.
func StartS3() (endpoint string, stop func()) {
	faker := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true))
	srv := httptest.NewServer(faker.Server())
	return srv.URL, srv.Close
}

// S3Writes is an in-process S3 server (gofakes3) that counts the objects
// written to each key: successful PUTs and completed multipart uploads,
// parts and failed writes excluded.
type S3Writes struct {
	URL    string
	mu     sync.Mutex
	writes map[string]int
}

// S3Counting starts an S3Writes on 127.0.0.1, stopped on t.Cleanup.
func S3Counting(t TB) *S3Writes {
	t.Helper()
	s := &S3Writes{writes: map[string]int{}}
	inner := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		inner.ServeHTTP(rec, r)
		q := r.URL.Query()
		whole := (r.Method == http.MethodPut && !q.Has("partNumber")) || (r.Method == http.MethodPost && q.Has("uploadId"))
		if whole && rec.status == http.StatusOK {
			s.mu.Lock()
			s.writes[r.URL.Path]++
			s.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Writes returns how many times each path (/bucket/key) was written.
func (s *S3Writes) Writes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.writes)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
