//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kilnhq/kiln/internal/testpeers"
)

const backupManifest = `apiVersion: kiln/v1
service: shop
version: %s
app:
  binary: %s
components:
  kiln-backup:
    version: "~> 0.2"
    settings:
      KILN_BACKUP_TABLE: orders
      KILN_BACKUP_STORE: s3://backups/shop
      KILN_BACKUP_RCU: "%d"
      KILN_BACKUP_DYNAMODB_ENDPOINT: %s
      KILN_BACKUP_S3_ENDPOINT: %s
      KILN_BACKUP_LEASE_TTL: 10s
      KILN_BACKUP_VOLUME_BYTES: "1048576"
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 200ms, timeout: 150ms, healthyThreshold: 2, unhealthyThreshold: 2}
rollout:
  progressDeadline: 60s
  drainTimeout: 5s
  scaleDownDelay: 0s
target:
  local:
    listen: 127.0.0.1:0
`

// backupStatus is the part of kiln status --output json about backup agents.
type backupStatus struct {
	Backup []struct {
		Instance string `json:"instance"`
		Table    string `json:"table"`
		State    string `json:"state"`
		Holder   struct {
			Instance, Release string
		} `json:"holder"`
		Error string `json:"error"`
	} `json:"backup"`
}

// TestBackupAgentsOneLeaseAcrossRolloutsAndKill bakes kiln-backup into a service of two
// instances whose agents back up a 100k-item dynalite table into an S3-compatible store
// at a low read budget. During the dump two releases roll out (each retiring the slot
// whose agent works) and the lease holder's instance is killed with SIGKILL. Then: one
// dump, every volume written once, the consumed capacity (measured between the agents
// and DynamoDB) within 110 % of the budget over every 10-second window, verify ok, and
// a restore identical to the table.
func TestBackupAgentsOneLeaseAcrossRolloutsAndKill(t *testing.T) {
	// About 6 200 RCU to read: at 40 RCU/s the dump lasts ~2.5 minutes, longer than three
	// rollouts even on a loaded machine (up to ~50 s each were seen).
	const items, budget = 100_000, 40
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	dynamo := testpeers.Dynalite(t)
	meter := testpeers.NewCapacityMeter(t, dynamo)
	s3 := testpeers.S3Counting(t)
	db := dynamoClient(t, dynamo)
	fillOrders(t, db, items)

	release := func(version string) {
		t.Helper()
		body := fmt.Sprintf(backupManifest, version, demoBin, budget, meter.URL, s3.URL)
		if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := kiln(t, dir, "rollout", "--output", "json")
		if fin := finished(t, out); code != 0 || fin["outcome"] != "promoted" {
			t.Fatalf("rollout %s: exit %d, %v\n%s", version, code, fin, errOut)
		}
	}
	volumes := func() int {
		n := 0
		for k := range s3.Writes() {
			if strings.Contains(k, "/data/seg-") {
				n++
			}
		}
		return n
	}
	waitVolumes := func(n int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for volumes() < n {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d volumes after 3 minutes (%d)", n, volumes())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	start := time.Now()
	release("1.0.0")
	waitVolumes(4)
	t.Logf("%v: 1.0.0 live, %d volumes; rolling out 2.0.0", time.Since(start).Round(time.Second), volumes())
	release("2.0.0")
	waitVolumes(volumes() + 4)
	t.Logf("%v: 2.0.0 live, %d volumes; rolling out 3.0.0", time.Since(start).Round(time.Second), volumes())
	release("3.0.0")
	waitVolumes(volumes() + 2)

	// kiln status names the holder: exactly one active agent, the other on standby.
	holder := leaseHolder(t, dir, "3.0.0")
	pid := bootPID(t, dir, holder)
	if getObject(s3.URL, "backups/shop/_auto/orders.json") == nil || dumpComplete(s3.URL) {
		t.Fatalf("the dump finished before the kill (the rollouts took %v): nothing left to take over", time.Since(start))
	}
	t.Logf("%v: %d volumes; kill -9 of %s (kiln boot pid %d), which holds the lease", time.Since(start).Round(time.Second), volumes(), holder, pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := volumes()
	waitVolumes(killed + 1)
	t.Logf("%v: the other instance took over", time.Since(start).Round(time.Second))

	id := waitManifest(t, s3.URL)
	t.Logf("%v: dump %s complete, %d volumes", time.Since(start).Round(time.Second), id, volumes())

	var dumps []string
	for k, n := range s3.Writes() {
		if strings.HasSuffix(k, "/plan.json") {
			dumps = append(dumps, k)
		}
		if strings.Contains(k, "/data/seg-") && n != 1 {
			t.Errorf("volume %s written %d times", k, n)
		}
	}
	if len(dumps) != 1 {
		t.Fatalf("dumps started: %v, want exactly one", dumps)
	}
	peak, total, span := meter.MaxWindow(10 * time.Second)
	t.Logf("consumed %.0f RCU in %v (%.1f RCU/s, budget %d); peak 10 s window %.0f RCU (%.0f %% of budget × 10 s)",
		total, span.Round(time.Second), total/span.Seconds(), budget, peak, 100*peak/(budget*10))
	if limit := 1.1 * budget * 10; peak > limit {
		t.Fatalf("%.0f RCU consumed in a 10 s window; the budget allows %.0f (110 %%)", peak, limit)
	}

	backupTool(t, s3.URL, dynamo, "verify", "--id", id)
	backupTool(t, s3.URL, dynamo, "restore", "--id", id, "--table", "orders-restored", "--create", "--wcu", "0",
		"--state", filepath.Join(t.TempDir(), "restore.json"))
	want, n := tableDigest(t, db, "orders")
	got, m := tableDigest(t, db, "orders-restored")
	if n != items || m != n || got != want {
		t.Fatalf("restored table: %d items, digest %s; the table: %d items, digest %s", m, got, n, want)
	}
}

func dynamoClient(t *testing.T, endpoint string) *dynamodb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("e2e", "e2e", "")))
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// fillOrders creates the orders table with n items of about 500 bytes.
func fillOrders(t *testing.T, db *dynamodb.Client, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	// dynalite answers CreateTable before the table is ACTIVE (it makes it so a moment
	// later, its own write done): a write before then is refused, as DynamoDB refuses one.
	waiter := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond })
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders")}, 30*time.Second); err != nil {
		t.Fatalf("orders table: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := w * 25; from < n; from += 8 * 25 {
				var reqs []types.WriteRequest
				for i := from; i < min(from+25, n); i++ {
					sum := sha256.Sum256([]byte(fmt.Sprint(i)))
					note := strings.Repeat(hex.EncodeToString(sum[:]), 7) // ~450 bytes, different per item
					reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
						"id":    &types.AttributeValueMemberS{Value: fmt.Sprintf("order-%06d", i)},
						"total": &types.AttributeValueMemberN{Value: fmt.Sprint(i % 9973)},
						"note":  &types.AttributeValueMemberS{Value: note},
					}}})
				}
				for len(reqs) > 0 {
					out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"orders": reqs}})
					if err != nil {
						errs <- err
						return
					}
					reqs = out.UnprocessedItems["orders"]
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("fill orders: %v", err)
	}
}

// tableDigest returns a sha256 over every item of table (order-independent) and the count.
func tableDigest(t *testing.T, db *dynamodb.Client, table string) (string, int) {
	t.Helper()
	var sums []string
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			b, err := json.Marshal(it) // map keys sorted; members marshal their values
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			sums = append(sums, hex.EncodeToString(s[:]))
		}
	}
	sort.Strings(sums)
	all := sha256.Sum256([]byte(strings.Join(sums, "\n")))
	return hex.EncodeToString(all[:]), len(sums)
}

// leaseHolder reads kiln status: exactly one instance's agent is active, every other one
// stands by naming it; all run release version.
func leaseHolder(t *testing.T, dir, version string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errOut := kiln(t, dir, "status", "--output", "json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errOut)
		}
		var st backupStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var active []string
		standbyOK := true
		for _, a := range st.Backup {
			if a.State == "active" {
				active = append(active, a.Instance)
			}
		}
		for _, a := range st.Backup {
			if a.State != "active" && (len(active) != 1 || a.Holder.Instance != active[0]) {
				standbyOK = false
			}
		}
		if len(st.Backup) == 2 && len(active) == 1 && standbyOK && st.Backup[0].Table == "orders" {
			_, text, _ := kiln(t, dir, "status", "--output", "text")
			if !strings.Contains(text, "backup    orders: lease held by "+active[0]+" (release "+version) {
				t.Fatalf("kiln status does not show the holder %s:\n%s", active[0], text)
			}
			t.Logf("kiln status:\n%s", text)
			return active[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show one active agent and one standby naming it:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// bootPID returns the pid of the kiln boot process of instance id.
func bootPID(t *testing.T, dir, id string) int {
	t.Helper()
	for _, l := range leftovers(dir) {
		if strings.Contains(l, "boot --spec ") && strings.Contains(l, "/"+id+"/boot.json") {
			var pid int
			fmt.Sscanf(l, "%d:", &pid)
			return pid
		}
	}
	t.Fatalf("no kiln boot process for %s", id)
	return 0
}

// dumpID returns the table's current dump and whether it is complete.
func dumpID(s3URL string) (id string, complete bool) {
	var ptr struct{ DumpID string }
	if b := getObject(s3URL, "backups/shop/_auto/orders.json"); b == nil || json.Unmarshal(b, &ptr) != nil || ptr.DumpID == "" {
		return "", false
	}
	return ptr.DumpID, getObject(s3URL, "backups/shop/"+ptr.DumpID+"/manifest.json") != nil
}

func dumpComplete(s3URL string) bool { _, done := dumpID(s3URL); return done }

// waitManifest waits for the table's dump to complete and returns its id.
func waitManifest(t *testing.T, s3URL string) string {
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	for {
		if id, done := dumpID(s3URL); done {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatal("the dump did not complete within 6 minutes")
		}
		time.Sleep(time.Second)
	}
}

func getObject(s3URL, path string) []byte {
	resp, err := httpGet(s3URL + "/" + path)
	if err != nil {
		return nil
	}
	return resp
}

// backupTool runs the kiln-backup binary against the test's stores and fails on a non-zero exit.
func backupTool(t *testing.T, s3URL, dynamo string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args = append(args, "--store", "s3://backups/shop", "--s3-endpoint", s3URL, "--s3-path-style", "--endpoint", dynamo, "--progress-interval", "0")
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kiln-backup"), args...)
	cmd.Env = append(os.Environ(), "AWS_REGION=us-east-1", "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln-backup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
