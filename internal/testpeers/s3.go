package testpeers

import (
	"net/http/httptest"

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
