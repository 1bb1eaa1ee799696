//go:build e2e

package testpeers

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestInstallDynalite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script, err := InstallDynalite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(script)
	if err != nil || !strings.Contains(string(b), "dynalite/cli.js") {
		t.Fatalf("wrapper %s: %v", script, err)
	}
}

func TestDynaliteAnswersAndStops(t *testing.T) {
	var endpoint string
	t.Run("run", func(t *testing.T) {
		endpoint = Dynalite(t)
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// dynalite answers (with a signature error: this request is unsigned).
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if _, err := http.Get(endpoint); err == nil {
		t.Fatal("dynalite still answers after its test ended")
	}
}
