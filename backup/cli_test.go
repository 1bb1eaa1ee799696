package backup

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/internal/clock"
)

func TestCLIUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage: kiln-backup"},
		{[]string{"explode"}, `unknown command "explode"`},
		{[]string{"dump", "--store", "file:///tmp/x", "--id", "a"}, "--table is required"},
		{[]string{"dump", "--table", "t", "--id", "a"}, "--store is required"},
		{[]string{"dump", "--table", "t", "--store", "file:///tmp/x", "--id", "a", "--segments", "9-2/8"}, `--segments "9-2/8"`},
		{[]string{"dump", "--table", "t", "--store", "ftp://x", "--id", "a"}, "scheme must be file or s3"},
		{[]string{"verify", "--store", "file:///tmp/x"}, "--id is required"},
		{[]string{"restore", "--store", "file:///tmp/x", "--id", "a", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"incremental", "--store", "file:///tmp/x", "--id", "a"}, "--table or --stream-arn is required"},
	}
	for _, tc := range cases {
		var out strings.Builder
		code := run(context.Background(), tc.args, &out)
		if code != ExitUsage || !strings.Contains(out.String(), tc.want) {
			t.Errorf("kiln-backup %v: exit %d, output %q; want exit %d mentioning %q", tc.args, code, out.String(), ExitUsage, tc.want)
		}
	}
}

func TestCLIAutoIDAndVerify(t *testing.T) {
	ep, db := dynalite(t)
	createTable(t, db, "orders")
	var items []Item
	for i := range 50 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "orders", items)
	root := t.TempDir()
	args := []string{"dump", "--table", "orders", "--id", "auto", "--store", "file://" + root, "--endpoint", ep, "--segments", "2",
		"--spool-dir", filepath.Join(t.TempDir(), "spool"), "--progress-interval", "0"}
	var out strings.Builder
	if code := run(context.Background(), args, &out); code != ExitOK {
		t.Fatalf("dump --id auto: exit %d\n%s", code, out.String())
	}
	s := dirStoreAt(t, root)
	var p autoPointer
	if _, err := getJSON(context.Background(), s, autoKey("orders"), &p); err != nil || !strings.HasPrefix(p.DumpID, "orders-") {
		t.Fatalf("auto pointer: %+v, %v", p, err)
	}
	m, err := LoadManifest(context.Background(), s, p.DumpID)
	if err != nil || m.Items != 50 {
		t.Fatalf("auto dump manifest: %+v, %v", m, err)
	}
	// An unfinished auto dump is resumed, not restarted.
	if err := s.Delete(context.Background(), manifestKey(p.DumpID)); err != nil {
		t.Fatal(err)
	}
	if id, err := resolveAutoID(context.Background(), s, "orders", clock.Real{}); err != nil || id != p.DumpID {
		t.Fatalf("auto id with an unfinished dump = %q, %v; want %q", id, err, p.DumpID)
	}
	if code := run(context.Background(), []string{"finalize", "--store", "file://" + root, "--id", p.DumpID}, &out); code != ExitOK {
		t.Fatalf("finalize: exit %d\n%s", code, out.String())
	}
	if code := run(context.Background(), []string{"verify", "--store", "file://" + root, "--id", p.DumpID}, &out); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s", code, out.String())
	}
	if code := run(context.Background(), []string{"verify", "--store", "file://" + root, "--id", "nope"}, &out); code != ExitError {
		t.Fatalf("verify of a missing dump: exit %d", code)
	}
}

func TestProgressMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newProgress("dump")
	p.Items.Add(42)
	p.VolumesInFlight.Add(2)
	p.Capacity = func() float64 { return 7.5 }
	addr, err := p.ServeMetrics(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`kiln_backup_items_total{op="dump"} 42`, `kiln_backup_volumes_in_flight{op="dump"} 2`, `kiln_backup_capacity_units_total{op="dump"} 7.5`, "# TYPE kiln_backup_items_total counter"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
