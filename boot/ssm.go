package boot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// ssmClient makes the one SSM call boot needs, GetParameters, in SSM's JSON protocol (a
// signed POST), with the instance role's credentials.
type ssmClient struct {
	endpoint, region string
	creds            aws.CredentialsProvider
	http             *http.Client
	sleep            func(context.Context, time.Duration) error
}

// ssmAttempts bounds the attempts of one GetParameters: throttling and server errors are
// tried again after 0.2 s, then 0.4 s.
const ssmAttempts = 3

func newSSMClient(region string) *ssmClient {
	endpoint := "https://ssm." + region + ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		endpoint += ".cn"
	}
	// As the SDK's config package would: the service's own variable, then the global one.
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM"} {
		if v := os.Getenv(k); v != "" {
			endpoint = strings.TrimSuffix(v, "/")
		}
	}
	return &ssmClient{endpoint: endpoint, region: region,
		creds: aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imds.New(imds.Options{}) })),
		http:  &http.Client{Timeout: 10 * time.Second},
		sleep: func(ctx context.Context, d time.Duration) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
				return nil
			}
		}}
}

// ssmParameter is one parameter GetParameters returned.
type ssmParameter struct {
	Name, Type, Value string
}

type getParametersOutput struct {
	Parameters        []ssmParameter
	InvalidParameters []string
}

// ssmError is an error SSM answered: its type (e.g. ParameterNotFound) and message.
type ssmError struct {
	status int
	Type   string `json:"__type"`
	Msg    string `json:"message"`
}

func (e *ssmError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Type, e.status, e.Msg)
}

// retryable reports whether another attempt may succeed.
func (e *ssmError) retryable() bool {
	return e.status >= 500 || strings.Contains(e.Type, "Throttling")
}

// getParameters reads names (at most ssmBatch) with decryption.
func (c *ssmClient) getParameters(ctx context.Context, names []string) (*getParametersOutput, error) {
	body, err := json.Marshal(map[string]any{"Names": names, "WithDecryption": true})
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		out, err := c.call(ctx, body)
		if e, ok := err.(*ssmError); !ok || !e.retryable() || attempt == ssmAttempts {
			return out, err
		}
		if err := c.sleep(ctx, time.Duration(100<<attempt)*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (c *ssmClient) call(ctx context.Context, body []byte) (*getParametersOutput, error) {
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("instance role credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonSSM.GetParameters")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "ssm", c.region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSecrets+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &ssmError{status: resp.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Type == "" {
			e.Type = "UnknownError"
		}
		// The type may be qualified: com.amazonaws.ssm#ParameterNotFound.
		e.Type = e.Type[strings.LastIndex(e.Type, "#")+1:]
		return nil, e
	}
	if len(raw) > maxSecrets {
		return nil, fmt.Errorf("answer of more than %d bytes", maxSecrets)
	}
	var out getParametersOutput
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("answer is not GetParameters' JSON: %w", err)
	}
	return &out, nil
}
