package releases

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/backup/store"
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
// AWS SDK finds them: the same client kiln-backup's store makes.
func S3Client(ctx context.Context, b backend.Backend) (*s3.Client, error) {
	client, err := store.NewS3Client(ctx, store.Options{S3Region: b.Region, S3Endpoint: b.Endpoint, S3PathStyle: b.PathStyle})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b, err)
	}
	return client, nil
}
