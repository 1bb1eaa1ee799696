package program

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/manifests"
)

// stmt is an IAM statement read back for comparison: Action and Resource as lists
// whatever form the document used.
type stmt struct {
	Sid       string
	Action    []string
	Resource  []string
	Condition map[string]any
}

// statements parses an IAM policy document, failing on anything but Allow statements.
func statements(t *testing.T, doc string) []stmt {
	t.Helper()
	var d struct {
		Version   string
		Statement []struct {
			Sid       string
			Effect    string
			Action    any
			Resource  any
			Condition map[string]any
		}
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, doc)
	}
	if d.Version != policyVersion {
		t.Errorf("policy version %q", d.Version)
	}
	var out []stmt
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %q: effect %q", s.Sid, s.Effect)
		}
		out = append(out, stmt{Action: list(s.Action), Resource: list(s.Resource), Condition: s.Condition})
	}
	return out
}

func list(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

// builtinResolved resolves the builtin kiln-backup and kiln-metrics as a manifest would.
func builtinResolved(t *testing.T, backupSettings map[string]string) ([]manifests.ResolvedComponent, *components.Catalog) {
	t.Helper()
	cat, err := components.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var out []manifests.ResolvedComponent
	for _, name := range []string{"kiln-backup", "kiln-metrics"} {
		vs := cat.Versions(name)
		if len(vs) == 0 {
			t.Fatalf("no builtin %s", name)
		}
		rc := manifests.ResolvedComponent{Name: name, Version: vs[len(vs)-1]}
		if name == "kiln-backup" {
			rc.Settings = backupSettings
		}
		out = append(out, rc)
	}
	return out, cat
}

var backupSettings = map[string]string{"KILN_BACKUP_TABLE": "orders", "KILN_BACKUP_STORE": "s3://shop-backups/orders/", "KILN_BACKUP_RCU": "500"}

func TestPoliciesSubstituteTheComponentsSettings(t *testing.T) {
	rcs, cat := builtinResolved(t, backupSettings)
	docs, err := Policies(rcs, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("%d policies", len(docs))
	}
	backup := statements(t, string(docs[0]))
	want := []stmt{
		{Action: []string{"dynamodb:DescribeTable", "dynamodb:Scan"}, Resource: []string{"arn:aws:dynamodb:*:*:table/orders"}},
		{Action: []string{"dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"}, Resource: []string{"arn:aws:dynamodb:*:*:table/orders/stream/*"}},
		{Action: []string{"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"}, Resource: []string{"arn:aws:s3:::shop-backups/orders/*"}},
		{Action: []string{"s3:DeleteObject"}, Resource: []string{"arn:aws:s3:::shop-backups/orders/_lease/*"}},
		{Action: []string{"s3:ListBucket"}, Resource: []string{"arn:aws:s3:::shop-backups"},
			Condition: map[string]any{"StringLike": map[string]any{"s3:prefix": []any{"orders/*"}}}},
	}
	if !reflect.DeepEqual(backup, want) {
		t.Errorf("kiln-backup policy:\n%+v\nwant\n%+v", backup, want)
	}
	metrics := statements(t, string(docs[1]))
	if want := []stmt{{Action: []string{"cloudwatch:PutMetricData"}, Resource: []string{"*"},
		Condition: map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": "Kiln"}}}}; !reflect.DeepEqual(metrics, want) {
		t.Errorf("kiln-metrics policy %+v, want %+v", metrics, want)
	}
}

func TestPoliciesRefuseAnUnresolvedPlaceholder(t *testing.T) {
	for name, store := range map[string]string{
		"file store":     "file:///var/backups",
		"no prefix":      "s3://shop-backups",
		"not a store":    "",
		"another scheme": "gs://shop-backups/orders",
	} {
		t.Run(name, func(t *testing.T) {
			settings := map[string]string{"KILN_BACKUP_TABLE": "orders", "KILN_BACKUP_RCU": "500"}
			if store != "" {
				settings["KILN_BACKUP_STORE"] = store
			}
			rcs, cat := builtinResolved(t, settings)
			_, err := Policies(rcs, cat)
			if err == nil || !strings.Contains(err.Error(), "kiln-backup") || !strings.Contains(err.Error(), "${KILN_BACKUP_PREFIX}") {
				t.Errorf("err = %v, want one naming kiln-backup and ${KILN_BACKUP_PREFIX}", err)
			}
		})
	}
}

// instanceStatements reads the fleet's instance role policy; nil when it has none.
func instanceStatements(t *testing.T, m *awsModel) []stmt {
	t.Helper()
	rp, ok := m.ofType(typeRolePolicy)["shop-instance"]
	if !ok {
		return nil
	}
	return statements(t, rp.str("policy"))
}

func TestFleetInstanceRoleHoldsExactlyWhatIsGiven(t *testing.T) {
	rcs, cat := builtinResolved(t, backupSettings)
	docs, err := Policies(rcs, cat)
	if err != nil {
		t.Fatal(err)
	}
	var fromComponents []stmt
	for _, d := range docs {
		fromComponents = append(fromComponents, statements(t, string(d))...)
	}
	readSecrets := stmt{Action: []string{"ssm:GetParameters"}, Resource: []string{
		"arn:aws:ssm:" + modelRegion + ":" + modelAccount + ":parameter/kiln/shop/API_TOKEN",
		"arn:aws:ssm:" + modelRegion + ":" + modelAccount + ":parameter/kiln/shop/DB_PASSWORD",
	}}
	for _, c := range []struct {
		name     string
		policies [][]byte
		secrets  []string
		want     []stmt
	}{
		{"nothing", nil, nil, nil},
		{"secrets", nil, []string{"API_TOKEN", "DB_PASSWORD"}, []stmt{readSecrets}},
		{"components", docs, nil, fromComponents},
		{"both", docs, []string{"API_TOKEN", "DB_PASSWORD"}, append(slices.Clone(fromComponents), readSecrets)},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := fleetInput(phaseSpec("first deploy"))
			in.Policies, in.Secrets = c.policies, c.secrets
			m, _ := run(t, Fleet(in), false, withSecrets("API_TOKEN", "a", "DB_PASSWORD", "b"))
			if got := instanceStatements(t, m); !reflect.DeepEqual(got, c.want) {
				t.Errorf("instance role policy:\n%+v\nwant\n%+v", got, c.want)
			}
			// No managed policy widens it.
			if n := len(m.ofType(typeAttachment)); n != 0 {
				t.Errorf("%d managed policies on the instance role", n)
			}
		})
	}
}

func TestFleetRefusesPoliciesWithTheSameSid(t *testing.T) {
	rcs, cat := builtinResolved(t, backupSettings)
	docs, err := Policies(rcs, cat)
	if err != nil {
		t.Fatal(err)
	}
	in := fleetInput(phaseSpec("first deploy"))
	in.Policies = [][]byte{docs[0], docs[0]}
	if _, _, err := runErr(Fleet(in), false); err == nil || !strings.Contains(err.Error(), "DumpTable") {
		t.Errorf("err = %v", err)
	}
}
