package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/kilnhq/kiln/internal/clock"
)

// AWSOptions say how to reach DynamoDB and DynamoDB Streams.
type AWSOptions struct {
	Region          string
	Endpoint        string // DynamoDB endpoint override (dynalite, local proxies)
	StreamsEndpoint string // DynamoDB Streams endpoint override
}

func loadAWS(ctx context.Context, o AWSOptions) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	// kiln-backup retries itself (retrier below) so throttling is counted,
	// paced by the budget and never silently given up on.
	opts = append(opts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

// NewDynamoDB returns a DynamoDB client without SDK-level retries.
func NewDynamoDB(ctx context.Context, o AWSOptions) (*dynamodb.Client, error) {
	cfg, err := loadAWS(ctx, o)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(opt *dynamodb.Options) {
		if o.Endpoint != "" {
			opt.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}

// NewStreams returns a DynamoDB Streams client without SDK-level retries.
func NewStreams(ctx context.Context, o AWSOptions) (*dynamodbstreams.Client, error) {
	cfg, err := loadAWS(ctx, o)
	if err != nil {
		return nil, err
	}
	return dynamodbstreams.NewFromConfig(cfg, func(opt *dynamodbstreams.Options) {
		if o.StreamsEndpoint != "" {
			opt.BaseEndpoint = aws.String(o.StreamsEndpoint)
		}
	}), nil
}

// retrier retries throttled calls for as long as the context allows (a
// backup is allowed to be slow, not to give up) and other transient errors
// up to maxAttempts, with full-jitter backoff.
type retrier struct {
	backoff     Backoff
	maxAttempts int
	clock       clock.Clock
	throttles   *atomic.Int64
	log         *slog.Logger
}

var (
	isThrottle  = retry.IsErrorThrottles(retry.DefaultThrottles)
	isRetryable = retry.IsErrorRetryables(retry.DefaultRetryables)
)

func (r *retrier) do(ctx context.Context, op string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case isThrottle.IsErrorThrottle(err) == aws.TrueTernary:
			if r.throttles != nil {
				r.throttles.Add(1)
			}
		case isRetryable.IsErrorRetryable(err) == aws.TrueTernary:
			if attempt+1 >= r.maxAttempts {
				return fmt.Errorf("%s: giving up after %d attempts: %w", op, attempt+1, err)
			}
			r.log.Warn("retrying", "op", op, "attempt", attempt+1, "err", err)
		default:
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := clock.Sleep(ctx, r.clock, r.backoff.Wait(attempt)); err != nil {
			return err
		}
	}
}

// describeSchema reads the table's schema and size estimates.
func describeSchema(ctx context.Context, db *dynamodb.Client, r *retrier, table string) (Schema, error) {
	var out *dynamodb.DescribeTableOutput
	err := r.do(ctx, "describe table "+table, func(ctx context.Context) error {
		var err error
		out, err = db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
		return err
	})
	if err != nil {
		return Schema{}, err
	}
	t := out.Table
	s := Schema{
		TableName:         aws.ToString(t.TableName),
		ItemCountEstimate: aws.ToInt64(t.ItemCount),
		SizeBytesEstimate: aws.ToInt64(t.TableSizeBytes),
	}
	s.KeySchema = keyElems(t.KeySchema)
	for _, a := range t.AttributeDefinitions {
		s.AttributeDefinitions = append(s.AttributeDefinitions, AttributeDef{AttributeName: aws.ToString(a.AttributeName), AttributeType: string(a.AttributeType)})
	}
	for _, g := range t.GlobalSecondaryIndexes {
		s.GlobalSecondaryIndexes = append(s.GlobalSecondaryIndexes, secondaryIndex(aws.ToString(g.IndexName), g.KeySchema, g.Projection))
	}
	for _, l := range t.LocalSecondaryIndexes {
		s.LocalSecondaryIndexes = append(s.LocalSecondaryIndexes, secondaryIndex(aws.ToString(l.IndexName), l.KeySchema, l.Projection))
	}
	if t.BillingModeSummary != nil {
		s.BillingMode = string(t.BillingModeSummary.BillingMode)
	}
	return s, nil
}

func keyElems(ks []types.KeySchemaElement) []KeyElement {
	var out []KeyElement
	for _, k := range ks {
		out = append(out, KeyElement{AttributeName: aws.ToString(k.AttributeName), KeyType: string(k.KeyType)})
	}
	return out
}

func secondaryIndex(name string, ks []types.KeySchemaElement, p *types.Projection) SecondaryIndex {
	si := SecondaryIndex{IndexName: name, KeySchema: keyElems(ks)}
	if p != nil {
		si.ProjectionType = string(p.ProjectionType)
		si.NonKeyAttributes = p.NonKeyAttributes
	}
	return si
}

func isNotFoundTable(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}

// waitActive polls DescribeTable until the table is ACTIVE.
func waitActive(ctx context.Context, db *dynamodb.Client, clk clock.Clock, table string) error {
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		if err != nil && !isNotFoundTable(err) {
			return fmt.Errorf("wait for table %s: %w", table, err)
		}
		if err := clock.Sleep(ctx, clk, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
