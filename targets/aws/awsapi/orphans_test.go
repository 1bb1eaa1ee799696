package awsapi_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kilnhq/kiln/targets/aws/awsapi"
	"github.com/kilnhq/kiln/targets/aws/awsmodel"
)

// The orphaned group is removed from the model of AWS (package awsmodel), whose cloud is
// a directory a test can fill.
func TestAnOrphanedGroupIsRemovedOnceAndOnlyItsName(t *testing.T) {
	dir := t.TempDir()
	store := &awsmodel.Store{Dir: dir}
	for _, name := range []string{"shop-green", "shop-blue"} {
		if err := store.Put(awsmodel.Record{Type: awsmodel.TypeGroup, ID: name, State: awsmodel.StateAvailable,
			Inputs: map[string]any{"name": name, "desiredCapacity": 2.0}, Created: time.Now(), Ready: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	url := awsmodel.StartAPI(t, dir, awsmodel.APIOptions{})
	cfg := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(cfg, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(cfg, "credentials"))
	c, err := awsapi.New(context.Background(), "eu-west-1", awsapi.Options{Endpoints: awsapi.All(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDMODEL", "model-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.RemoveOrphanGroup(context.Background(), "shop-green")
	if err != nil || !found {
		t.Fatalf("remove shop-green: found %v, %v", found, err)
	}
	left, err := store.List(awsmodel.TypeGroup)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != "shop-blue" {
		t.Fatalf("groups left: %+v, want shop-blue only", left)
	}
	// Gone already: nothing to do, no error.
	if found, err := c.RemoveOrphanGroup(context.Background(), "shop-green"); err != nil || found {
		t.Fatalf("remove shop-green again: found %v, %v", found, err)
	}
}
