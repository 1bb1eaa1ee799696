package backend

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseReadsFileAndS3URLs(t *testing.T) {
	for _, tc := range []struct {
		url, pulumi, store string
		lease              time.Duration
	}{
		{"file:///var/lib/kiln/pulumi", "file:///var/lib/kiln/pulumi", "file:///var/lib/kiln/pulumi", 0},
		{"s3://team-state", "s3://team-state?region=us-east-1", "s3://team-state", time.Minute},
		{"s3://team-state/shop/prod?region=eu-west-1", "s3://team-state/shop/prod?region=eu-west-1", "s3://team-state/shop/prod?region=eu-west-1", time.Minute},
		{"s3://b/p?endpoint=http://127.0.0.1:9000&lease=30s", "s3://b/p?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1&s3ForcePathStyle=true",
			"s3://b/p?endpoint=http%3A%2F%2F127.0.0.1%3A9000&lease=30s", 30 * time.Second},
	} {
		b, err := Parse(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got := b.PulumiURL(); got != tc.pulumi {
			t.Errorf("%s: Pulumi URL %s, want %s", tc.url, got, tc.pulumi)
		}
		if got := b.String(); got != tc.store {
			t.Errorf("%s: String %s, want %s", tc.url, got, tc.store)
		}
		if b.Lease != tc.lease {
			t.Errorf("%s: lease %s, want %s", tc.url, b.Lease, tc.lease)
		}
	}
}

// A URL kiln cannot use is refused with what to write instead.
func TestParseRefusesBadURLsSayingWhatToWrite(t *testing.T) {
	for _, tc := range []struct{ url, says string }{
		{"", "no scheme"},
		{"/var/lib/kiln", "no scheme"},
		{"file://relative/dir", "absolute directory"},
		{"file:///dir?x=1", "absolute directory"},
		{"gs://bucket", "not gs"},
		{"s3://", "no bucket"},
		{"s3://b?endpoint=127.0.0.1:9000", "http(s) URL"},
		{"s3://b?lease=1s", "3s or more"},
		{"s3://b?lease=soon", "Go duration"},
		{"s3://b?regoin=eu-west-1", `unknown parameter "regoin"`},
	} {
		_, err := Parse(tc.url)
		var be *Error
		if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "s3://bucket/prefix") && !strings.Contains(tc.says, "http") && !strings.Contains(tc.says, "duration") && !strings.Contains(tc.says, "3s") {
			t.Errorf("%q: %v; want an error saying %q and what to write", tc.url, err, tc.says)
		}
	}
}
