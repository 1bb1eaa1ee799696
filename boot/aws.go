package boot

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// On an EC2 instance kiln-boot asks the instance metadata service (IMDSv2; the SDK's
// client takes a session token first, and AWS_EC2_METADATA_SERVICE_ENDPOINT overrides its
// address, as everywhere in the SDK) for the instance ID and the instance role's
// credentials, and reads the instance's secrets from SSM with them. It builds its clients
// from the SSM client, imds and ec2rolecreds alone, not the SDK's config package: an
// image never has the shared files, SSO or profiles config reads, and kiln-boot stays small
// (docs/benchmarks.md).

// awsTimeout bounds each call to IMDS and SSM, retries included: an instance whose
// metadata service or parameters cannot be reached fails its boot, and its auto scaling
// group replaces it.
const awsTimeout = 30 * time.Second

// ssmBatch is how many parameters one GetParameters call may name.
const ssmBatch = 10

// instanceID reads the instance's ID from IMDSv2.
func instanceID(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, awsTimeout)
	defer cancel()
	out, err := imds.New(imds.Options{}).GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		return "", fmt.Errorf("instance ID from the instance metadata service: %w", err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return "", fmt.Errorf("instance ID from the instance metadata service: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("the instance metadata service answered %q for the instance ID", id)
	}
	return id, nil
}

// readSSM reads the secrets s names, with the instance role's credentials. Every
// parameter must exist and be a SecureString the role may decrypt; an error names the
// parameters and secrets concerned, never a value.
func readSSM(ctx context.Context, s *SSMSecrets) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, awsTimeout)
	defer cancel()
	client := ssm.New(ssm.Options{
		Region:      s.Region,
		Credentials: aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imds.New(imds.Options{}) })),
	}, func(o *ssm.Options) {
		// As the SDK's config package would: the service's own variable, then the global one.
		for _, k := range []string{"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"} {
			if v := os.Getenv(k); v != "" && o.BaseEndpoint == nil {
				o.BaseEndpoint = aws.String(v)
			}
		}
	})
	secretsOf := map[string][]string{} // parameter -> the secrets it holds
	for _, name := range slices.Sorted(maps.Keys(s.Parameters)) {
		secretsOf[s.Parameters[name]] = append(secretsOf[s.Parameters[name]], name)
	}
	named := func(p string) string { return fmt.Sprintf("%s (secret %s)", p, strings.Join(secretsOf[p], ", ")) }
	params := slices.Sorted(maps.Keys(secretsOf))
	secrets := make(map[string]string, len(params))
	for batch := range slices.Chunk(params, ssmBatch) {
		out, err := client.GetParameters(ctx, &ssm.GetParametersInput{Names: batch, WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, fmt.Errorf("secrets: read SSM parameters %s: %w", strings.Join(batch, ", "), err)
		}
		if len(out.InvalidParameters) > 0 {
			var missing []string
			for _, p := range out.InvalidParameters {
				missing = append(missing, named(p))
			}
			slices.Sort(missing)
			return nil, fmt.Errorf("secrets: SSM parameter %s does not exist in %s", strings.Join(missing, ", "), s.Region)
		}
		for _, p := range out.Parameters {
			param := aws.ToString(p.Name)
			if p.Type != "SecureString" {
				return nil, fmt.Errorf("secrets: SSM parameter %s is a %s, not a SecureString", named(param), p.Type)
			}
			for _, name := range secretsOf[param] {
				secrets[name] = aws.ToString(p.Value)
			}
		}
	}
	for _, p := range params {
		if _, ok := secrets[secretsOf[p][0]]; !ok {
			return nil, fmt.Errorf("secrets: SSM did not return parameter %s", named(p))
		}
	}
	return secrets, nil
}
