package releases

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/kilnhq/kiln/backend"
)

// Open opens the stack's lock, rollout state and history in the backend b.
func Open(ctx context.Context, b backend.Backend, stack string) (Store, error) {
	if !b.Shared() {
		return OpenFileStore(filepath.Join(b.Dir, ".kiln", stack))
	}
	client, err := S3Client(ctx, b)
	if err != nil {
		return nil, err
	}
	return OpenS3Store(S3Options{Client: client, Bucket: b.Bucket, Prefix: b.Prefix, Lease: b.Lease}, stack)
}

// S3Client returns a client of b's bucket, with credentials from the environment as the
// AWS SDK finds them.
func S3Client(ctx context.Context, b backend.Backend) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if b.Region != "" {
		opts = append(opts, config.WithRegion(b.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if b.Endpoint != "" {
			o.BaseEndpoint = aws.String(b.Endpoint)
		}
		o.UsePathStyle = b.PathStyle
	}), nil
}
