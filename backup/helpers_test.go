package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/internal/testpeers"
)

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// awsEnv gives the SDK static test credentials and a region.
func awsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "kiln-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "kiln-test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

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

func createTable(t testing.TB, db *dynamodb.Client, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &name,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	if err := waitActive(ctx, db, clock.Real{}, name); err != nil {
		t.Fatal(err)
	}
}

// makeItem builds item i with every attribute type; big items carry a
// binary attribute of about 350 KB.
func makeItem(i int, big bool) Item {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	blob := make([]byte, 16+r.IntN(64))
	for j := range blob {
		blob[j] = byte(r.IntN(256))
	}
	it := Item{
		"pk":   &types.AttributeValueMemberS{Value: fmt.Sprintf("user#%d", i%97)},
		"sk":   &types.AttributeValueMemberN{Value: fmt.Sprint(i)},
		"s":    &types.AttributeValueMemberS{Value: fmt.Sprintf("héllo \"quoted\" \\ <tag> \u2028 %d", i)},
		"n":    &types.AttributeValueMemberN{Value: fmt.Sprintf("%d.%03d", r.IntN(1e6)-5e5, r.IntN(1000))},
		"b":    &types.AttributeValueMemberB{Value: blob},
		"bool": &types.AttributeValueMemberBOOL{Value: i%2 == 0},
		"null": &types.AttributeValueMemberNULL{Value: true},
		"ss":   &types.AttributeValueMemberSS{Value: []string{"a", fmt.Sprint("x", i)}},
		"ns":   &types.AttributeValueMemberNS{Value: []string{"1", fmt.Sprint(i + 2)}},
		"bs":   &types.AttributeValueMemberBS{Value: [][]byte{{0, 1}, {byte(i), 255}}},
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberS{Value: "in list"}, &types.AttributeValueMemberN{Value: "42"},
			&types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberBOOL{Value: false}}},
		}},
		"m": &types.AttributeValueMemberM{Value: Item{
			"nested": &types.AttributeValueMemberM{Value: Item{"deep": &types.AttributeValueMemberS{Value: "yes"}}},
			"empty":  &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
		}},
	}
	if big {
		payload := make([]byte, 350<<10)
		for j := range payload {
			payload[j] = byte(r.IntN(256))
		}
		it["big"] = &types.AttributeValueMemberB{Value: payload}
	}
	return it
}

func putItems(t testing.TB, db *dynamodb.Client, table string, items []Item) {
	t.Helper()
	ctx := context.Background()
	for len(items) > 0 {
		n := min(25, len(items))
		var reqs []types.WriteRequest
		size := 0
		for _, it := range items[:n] {
			b, _ := appendItemJSON(nil, it)
			if size+len(b) > 3<<20 && len(reqs) > 0 {
				break
			}
			size += len(b)
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		items = items[len(reqs):]
		for len(reqs) > 0 {
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
			if err != nil {
				t.Fatalf("fill %s: %v", table, err)
			}
			reqs = out.UnprocessedItems[table]
		}
	}
}

// canonical encodes an item with sets sorted, so it hashes the same
// however DynamoDB orders set members.
func canonical(av types.AttributeValue) types.AttributeValue {
	switch v := av.(type) {
	case *types.AttributeValueMemberSS:
		s := append([]string(nil), v.Value...)
		sort.Strings(s)
		return &types.AttributeValueMemberSS{Value: s}
	case *types.AttributeValueMemberNS:
		s := append([]string(nil), v.Value...)
		sort.Strings(s)
		return &types.AttributeValueMemberNS{Value: s}
	case *types.AttributeValueMemberBS:
		s := append([][]byte(nil), v.Value...)
		sort.Slice(s, func(i, j int) bool { return string(s[i]) < string(s[j]) })
		return &types.AttributeValueMemberBS{Value: s}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = canonical(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: canonicalItem(v.Value)}
	}
	return av
}

func canonicalItem(it Item) Item {
	out := Item{}
	for k, v := range it {
		out[k] = canonical(v)
	}
	return out
}

func itemKey(it Item) string {
	return it["pk"].(*types.AttributeValueMemberS).Value + "/" + it["sk"].(*types.AttributeValueMemberN).Value
}

func itemHash(t testing.TB, it Item) string {
	b, err := appendItemJSON(nil, canonicalItem(it))
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tableHashes scans a whole table into key -> per-item hash.
func tableHashes(t testing.TB, db *dynamodb.Client, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: &table})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			out[itemKey(it)] = itemHash(t, it)
		}
	}
	return out
}

func itemsHashes(t testing.TB, items []Item) map[string]string {
	out := map[string]string{}
	for _, it := range items {
		out[itemKey(it)] = itemHash(t, it)
	}
	return out
}

func diffHashes(want, got map[string]string) string {
	var b strings.Builder
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&b, "missing %s; ", k)
			n++
		} else if g != w {
			fmt.Fprintf(&b, "differs %s; ", k)
			n++
		}
		if n > 10 {
			break
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && n <= 10 {
			fmt.Fprintf(&b, "extra %s; ", k)
			n++
		}
	}
	return b.String()
}

// volumeItems reads every item of a finished dump's volumes (with duplicates).
func volumeItems(t testing.TB, s store.Store, id string) []Item {
	t.Helper()
	ctx := context.Background()
	m, err := LoadManifest(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	var items []Item
	for _, seg := range m.Segments {
		for _, v := range seg.Volumes {
			rc, err := s.Get(ctx, v.Key)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := readVolume(rc, func(it Item) error { items = append(items, it); return nil }); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
	}
	return items
}

func dirStore(t testing.TB) *store.Dir {
	s, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type storeDir = store.Dir

func newStoreDir(root string) (*store.Dir, error) { return store.NewDir(root) }
