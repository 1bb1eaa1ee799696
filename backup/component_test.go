package backup

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/components"
)

func TestComponentDefinition(t *testing.T) {
	// Decoded by kiln's own catalog, strictly, as kiln bake will.
	cat, err := components.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var def *components.Definition
	for _, d := range cat.Definitions() {
		if d.Name == "kiln-backup" {
			def = d
		}
	}
	if def == nil || def.Binary != "kiln-backup" || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(def.Version.String()) {
		t.Fatalf("component.yaml header: %+v", def)
	}
	if _, err := os.Stat("../cmd/" + def.Binary + "/main.go"); err != nil {
		t.Fatalf("binary %s is not built from ./cmd/%s: %v", def.Binary, def.Binary, err)
	}
	if def.Unit.Mode != "service" || def.Unit.Schedule != 0 || def.Unit.Restart != "always" {
		t.Fatalf("unit: %+v", def.Unit)
	}
	if got := strings.Join(def.Settings, " "); got != "KILN_BACKUP_TABLE KILN_BACKUP_STORE KILN_BACKUP_RCU" {
		t.Fatalf("settings %q", got)
	}
	if got := strings.Join(def.OptionalSettings, " "); got != "KILN_BACKUP_DYNAMODB_ENDPOINT KILN_BACKUP_S3_ENDPOINT KILN_BACKUP_LEASE_TTL KILN_BACKUP_VOLUME_BYTES" {
		t.Fatalf("optional settings %q", got)
	}
	// Settings reach the agent through the unit's env (the bake puts them
	// there), never through argv: the args name none of them.
	env := map[string]string{"KILN_BACKUP_TABLE": "orders", "KILN_BACKUP_STORE": "s3://b/p", "KILN_BACKUP_RCU": "500",
		"KILN_BACKUP_DYNAMODB_ENDPOINT": "http://127.0.0.1:8000", "KILN_BACKUP_S3_ENDPOINT": "http://127.0.0.1:9000", "KILN_BACKUP_LEASE_TTL": "12s", "KILN_BACKUP_VOLUME_BYTES": "1048576",
		"KILN_DATA_DIR": "/data", "KILN_PORT_BACKUP": "9465", "KILN_INSTANCE": "shop-blue-0-abc", "KILN_VERSION": "1.2.0"}
	var args []string
	for _, a := range def.Unit.Args {
		args = append(args, os.Expand(a, func(k string) string {
			v, ok := env[k]
			if !ok || strings.HasPrefix(k, "KILN_BACKUP_") {
				t.Errorf("arg %q uses ${%s}: settings go through the env", a, k)
			}
			return v
		}))
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	for _, p := range def.Unit.Ports {
		if !strings.Contains(strings.Join(def.Unit.Args, " "), "${KILN_PORT_"+strings.ToUpper(p)+"}") {
			t.Errorf("port %q is allocated but not used", p)
		}
	}
	c := newCommon("agent", &strings.Builder{})
	var acfg AgentConfig
	var share string
	var pageLimit int
	agentFlags(c, &acfg, &share, &pageLimit)
	if args[0] != "agent" {
		t.Fatalf("the unit runs %q, want agent", args[0])
	}
	if err := c.parse(args[1:], &strings.Builder{}, "agent"); err != nil {
		t.Fatalf("unit args do not parse: %v", err)
	}
	if _, err := ParseSegmentShare(share); err != nil {
		t.Fatal(err)
	}
	cfg := acfg.Dump
	if acfg.IncrementalEvery <= 0 || acfg.IncrementalEvery >= 24*time.Hour || acfg.DumpEvery != 24*time.Hour {
		t.Fatalf("unit schedules: dumps every %v, incrementals every %v", acfg.DumpEvery, acfg.IncrementalEvery)
	}
	if cfg.Table != "orders" || cfg.ReadBudget != 500 || c.storeURL != "s3://b/p" || c.metricsListen != "127.0.0.1:9465" || c.id != AutoID || cfg.SpoolDir != "/data/kiln-backup/spool" || cfg.VolumeBytes != 1<<20 {
		t.Fatalf("unit args and env parsed to %+v store=%q metrics=%q id=%q", cfg, c.storeURL, c.metricsListen, c.id)
	}
	if c.aws.Endpoint != "http://127.0.0.1:8000" || c.s3.S3Endpoint != "http://127.0.0.1:9000" || !c.s3.S3PathStyle {
		t.Fatalf("endpoint settings parsed to %+v %+v", c.aws, c.s3)
	}
	if acfg.Holder.Instance != "shop-blue-0-abc" || acfg.Holder.Release != "1.2.0" || acfg.Holder.Host == "" || acfg.LeaseTTL != 12*time.Second {
		t.Fatalf("lease holder %+v ttl %v", acfg.Holder, acfg.LeaseTTL)
	}

	pol, err := cat.Policy(def)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Effect   string
			Action   []string
			Resource string
		}
	}
	d := json.NewDecoder(bytes.NewReader(pol))
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("policy.json: %v", err)
	}
	var actions []string
	for _, s := range doc.Statement {
		if s.Effect != "Allow" || strings.Contains(s.Resource, "*:*:*") || s.Resource == "*" {
			t.Errorf("statement too broad: %+v", s)
		}
		actions = append(actions, s.Action...)
	}
	want := []string{"dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords",
		"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListBucket"}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Fatalf("policy actions %v, want exactly %v", actions, want)
	}
}
