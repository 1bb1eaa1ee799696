//go:build e2e

package backup

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/kilnhq/kiln/internal/testpeers"
)

// dynalite starts dynalite and returns its endpoint and a client.
func dynalite(t *testing.T) (string, *dynamodb.Client) {
	t.Helper()
	awsEnv(t)
	ep := testpeers.Dynalite(t)
	db, err := NewDynamoDB(context.Background(), AWSOptions{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	return ep, db
}
