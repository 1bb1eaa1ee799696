package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 is a Store in an S3 bucket under a key prefix. Put goes through the
// SDK's upload manager: one PutObject for small objects, a multipart upload
// (aborted on failure) for large ones. S3 makes an object visible only when
// its upload completes, which gives Put its atomicity.
type S3 struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string
}

var _ Store = (*S3)(nil)

// NewS3 returns a store in bucket under prefix, configured from the standard
// AWS environment (credentials chain, region) and opts.
func NewS3(ctx context.Context, bucket, prefix string, opts Options) (*S3, error) {
	client, err := NewS3Client(ctx, opts)
	if err != nil {
		return nil, err
	}
	return NewS3WithClient(client, bucket, prefix, opts.PartSize), nil
}

// NewS3Client returns a client of AWS S3 or of the S3-compatible server at
// opts.S3Endpoint, configured from the standard AWS environment and opts.
func NewS3Client(ctx context.Context, opts Options) (*s3.Client, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.S3Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.S3Region))
	}
	if c := LoopbackCredentials(opts.S3Endpoint); c != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(c))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.S3Endpoint)
		}
		o.UsePathStyle = opts.S3PathStyle
		// Checksums the SDK adds by default are not understood by every
		// S3-compatible server; ask for them only when an API requires them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return client, nil
}

// LoopbackCredentials returns placeholder credentials for an endpoint on
// the loopback interface (a local emulator such as dynalite or an embedded
// S3 server, which check that requests are signed, not by whom) when the
// environment names no access key; nil otherwise, and the SDK's usual chain
// (environment, files, instance role) applies. It lets a service on kiln's
// local target back up a local table without secrets in its settings.
func LoopbackCredentials(endpoint string) aws.CredentialsProvider {
	if endpoint == "" || os.Getenv("AWS_ACCESS_KEY_ID") != "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil
	}
	return credentials.NewStaticCredentialsProvider("kiln-local", "kiln-local", "")
}

// NewS3WithClient returns a store using an existing client.
func NewS3WithClient(client *s3.Client, bucket, prefix string, partSize int64) *S3 {
	if partSize <= 0 {
		partSize = 16 << 20
	}
	up := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = 2
	})
	return &S3{client: client, uploader: up, bucket: bucket, prefix: strings.Trim(prefix, "/")}
}

// String implements Store.
func (s *S3) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

func (s *S3) key(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if s.prefix == "" {
		return key, nil
	}
	return s.prefix + "/" + key, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.uploader.Upload(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: r})
	if err != nil {
		return fmt.Errorf("put %s: %w", s.String()+"/"+key, err)
	}
	return nil
}

// Create implements Store with a conditional PutObject (If-None-Match: *).
// Only small objects are created this way (leases), so no multipart upload.
func (s *S3) Create(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(body), IfNoneMatch: aws.String("*")})
	if err != nil {
		// 412 when the object exists; S3 answers 409 to a conditional write
		// racing another one on the same key: either way another writer won.
		var re *awshttp.ResponseError
		if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict) {
			return fmt.Errorf("create %s: %w", s.String()+"/"+key, ErrExists)
		}
		return fmt.Errorf("create %s: %w", s.String()+"/"+key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return out.Body, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (int64, error) {
	k, err := s.key(key)
	if err != nil {
		return 0, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("stat %s: %w", key, ErrNotFound)
		}
		return 0, fmt.Errorf("stat %s: %w", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	full := prefix
	if s.prefix != "" {
		full = s.prefix + "/" + prefix
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.prefix != "" {
				k = strings.TrimPrefix(k, s.prefix+"/")
			}
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}
