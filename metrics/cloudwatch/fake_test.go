package cloudwatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kilnhq/kiln/metrics/cloudwatch/cwfake"
)

func newFake(t *testing.T) *cwfake.Server { return cwfake.New(t) }

// client builds a real SDK client pointed at the fake with static credentials.
func client(t *testing.T, f *cwfake.Server) API {
	t.Helper()
	c, err := NewClient(context.Background(), ClientOptions{Region: "us-east-1", Endpoint: f.URL(),
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
