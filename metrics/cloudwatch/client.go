package cloudwatch

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Region overrides the SDK's region chain ("" keeps it).
	Region string
	// Endpoint overrides the service URL ("" keeps the regional endpoint).
	Endpoint string
	// Credentials overrides the SDK's credential chain (tests use static keys).
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the HTTP client.
	HTTPClient *http.Client
}

// NewClient builds a CloudWatch client with the SDK's own retries turned off (the
// publisher retries with its own bounded backoff) and request compression left on.
func NewClient(ctx context.Context, o ClientOptions) (*cw.Client, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(o.HTTPClient))
	} else {
		// A buildable client so that AWS_CA_BUNDLE (custom root CAs) keeps working.
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(time.Minute)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cw.NewFromConfig(cfg, func(co *cw.Options) {
		co.Retryer = aws.NopRetryer{}
		if o.Endpoint != "" {
			co.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}
