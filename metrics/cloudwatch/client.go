package cloudwatch

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Region of the endpoint; "" falls back to AWS_REGION, AWS_DEFAULT_REGION, then the
	// instance metadata service.
	Region string
	// Endpoint overrides the service URL ("" keeps the regional endpoint).
	Endpoint string
	// Credentials overrides the credential chain (tests use static keys).
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the HTTP client.
	HTTPClient *http.Client
	// Getenv reads the environment; nil means no environment.
	Getenv func(string) string
}

// NewClient builds a CloudWatch client with the SDK's own retries turned off (the
// publisher retries with its own bounded backoff) and request compression left on.
//
// Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or else
// the instance role through the instance metadata service, which is how a baked image runs.
// The SDK's config package (shared files, SSO, ...) is deliberately not used: it costs
// about a megabyte of resident memory on every instance for sources an image never has.
func NewClient(ctx context.Context, o ClientOptions) (*cw.Client, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	region := o.Region
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = getenv(k)
		}
	}
	if region == "" {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		out, err := imds.New(imds.Options{HTTPClient: hc}).GetRegion(rctx, &imds.GetRegionInput{})
		cancel()
		if err != nil {
			return nil, errors.New("no region: set cloudwatch.region or AWS_REGION (the instance metadata service did not answer)")
		}
		region = out.Region
	}
	creds := o.Credentials
	if creds == nil {
		if id := getenv("AWS_ACCESS_KEY_ID"); id != "" {
			creds = credentials.NewStaticCredentialsProvider(id, getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"))
		} else {
			creds = aws.NewCredentialsCache(ec2rolecreds.New(func(eo *ec2rolecreds.Options) {
				eo.Client = imds.New(imds.Options{HTTPClient: hc})
			}))
		}
	}
	return cw.New(cw.Options{
		Region:      region,
		Credentials: creds,
		HTTPClient:  hc,
		Retryer:     aws.NopRetryer{},
	}, func(co *cw.Options) {
		if o.Endpoint != "" {
			co.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}
