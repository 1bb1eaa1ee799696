// Package awsapi is what the aws target reads from AWS at run time, through the AWS SDK for
// Go v2: the fleet's health (ELBv2 target health joined with the auto scaling groups'
// instance lifecycle), the load balancer's and kiln-metrics' CloudWatch metrics as an
// analysis.Source, and the removal of AMIs the images stack no longer declares (Image
// Builder makes them, not the stack, so kiln deregisters them). It never changes anything
// the Pulumi stacks own.
//
// Tests run it against awsfake, a model of these APIs on 127.0.0.1.
package awsapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

// Endpoints override the URL of each service ("" keeps the SDK's: the regional endpoint,
// or AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL as the SDK reads them).
type Endpoints struct {
	ELBv2       string
	AutoScaling string
	EC2         string
	CloudWatch  string
}

// All returns Endpoints with every service at url (a test's model of AWS serves all).
func All(url string) Endpoints {
	return Endpoints{ELBv2: url, AutoScaling: url, EC2: url, CloudWatch: url}
}

// Options configure New.
type Options struct {
	Endpoints Endpoints
	// Credentials replace the SDK's default chain (tests give static keys).
	Credentials aws.CredentialsProvider
	// MaxAttempts bounds the attempts of one call, retries of throttling and transient
	// errors included (DefaultMaxAttempts when 0); MaxBackoff bounds the wait between two
	// (DefaultMaxBackoff when 0). A call that still fails is an error the engine sees.
	MaxAttempts int
	MaxBackoff  time.Duration
	// HTTPClient replaces the SDK's HTTP client.
	HTTPClient *http.Client
}

// The retry budget of one call by default: the SDK's backoff with jitter, capped at 5 s,
// waits up to 2 s, up to 4 s, then 5 s, 5 s and 5 s between the 6 attempts, so a call
// fails after 15 to 21 s of throttling.
const (
	DefaultMaxAttempts = 6
	DefaultMaxBackoff  = 5 * time.Second
)

// Clients are the AWS service clients of one region.
type Clients struct {
	ELBv2       *elb.Client
	AutoScaling *autoscaling.Client
	EC2         *ec2.Client
	CloudWatch  *cloudwatch.Client
}

// New returns the clients of region with the SDK's default configuration (environment,
// shared files, SSO, instance role), except what o overrides.
func New(ctx context.Context, region string, o Options) (*Clients, error) {
	attempts, backoff := o.MaxAttempts, o.MaxBackoff
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if backoff <= 0 {
		backoff = DefaultMaxBackoff
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts, so.MaxBackoff = attempts, backoff
			})
		}),
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(o.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	e := o.Endpoints
	return &Clients{
		ELBv2:       elb.NewFromConfig(cfg, func(c *elb.Options) { c.BaseEndpoint = endpoint(e.ELBv2, c.BaseEndpoint) }),
		AutoScaling: autoscaling.NewFromConfig(cfg, func(c *autoscaling.Options) { c.BaseEndpoint = endpoint(e.AutoScaling, c.BaseEndpoint) }),
		EC2:         ec2.NewFromConfig(cfg, func(c *ec2.Options) { c.BaseEndpoint = endpoint(e.EC2, c.BaseEndpoint) }),
		CloudWatch:  cloudwatch.NewFromConfig(cfg, func(c *cloudwatch.Options) { c.BaseEndpoint = endpoint(e.CloudWatch, c.BaseEndpoint) }),
	}, nil
}

// endpoint returns the override when there is one, else what the SDK resolved.
func endpoint(override string, resolved *string) *string {
	if override != "" {
		return aws.String(override)
	}
	return resolved
}
