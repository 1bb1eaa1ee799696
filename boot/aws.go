package boot

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// On an EC2 instance kiln-boot asks the instance metadata service (IMDSv2; the SDK's
// client takes a session token first, and AWS_EC2_METADATA_SERVICE_ENDPOINT overrides its
// address, as everywhere in the SDK) for the instance ID and the instance role's
// credentials, and reads the instance's secrets from SSM with them (ssm.go). It uses the
// SDK's imds, ec2rolecreds and SigV4 signer only, not its config package (shared files,
// SSO, STS an image never has) nor its SSM client (whose operation schemas cost every
// instance, local ones too, 1.4 MB of heap at start): see docs/benchmarks.md.

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
	client := newSSMClient(s.Region)
	secretsOf := map[string][]string{} // parameter -> the secrets it holds
	for _, name := range slices.Sorted(maps.Keys(s.Parameters)) {
		secretsOf[s.Parameters[name]] = append(secretsOf[s.Parameters[name]], name)
	}
	named := func(p string) string { return fmt.Sprintf("%s (secret %s)", p, strings.Join(secretsOf[p], ", ")) }
	params := slices.Sorted(maps.Keys(secretsOf))
	secrets := make(map[string]string, len(params))
	for batch := range slices.Chunk(params, ssmBatch) {
		out, err := client.getParameters(ctx, batch)
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
			if p.Type != "SecureString" {
				return nil, fmt.Errorf("secrets: SSM parameter %s is a %s, not a SecureString", named(p.Name), p.Type)
			}
			for _, name := range secretsOf[p.Name] {
				secrets[name] = p.Value
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
