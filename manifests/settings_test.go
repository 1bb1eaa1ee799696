package manifests_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/kilnhq/kiln/manifests"
)

// settingsCatalog is a catalog whose kiln-backup needs two settings.
type settingsCatalog struct{ fakeCatalog }

func (c settingsCatalog) Settings(name string, v *version.Version) []string {
	if name == "kiln-backup" {
		return []string{"KILN_BACKUP_TABLE", "KILN_BACKUP_STORE"}
	}
	return nil
}

// OptionalSettings: kiln-backup may also be given an endpoint.
func (c settingsCatalog) OptionalSettings(name string, v *version.Version) []string {
	if name == "kiln-backup" {
		return []string{"KILN_BACKUP_S3_ENDPOINT"}
	}
	return nil
}

func settingsManifest(components string) string {
	return `apiVersion: kiln/v1
service: shop
version: 1.0.0
app: {main: .}
components:
` + components + `
fleet:
  size: 1
  port: 8080
  health: {path: /healthz}
target: {local: {}}
`
}

func TestComponentSettings(t *testing.T) {
	cat := settingsCatalog{fakeCatalog{"kiln-backup": {"0.1.0"}, "kiln-metrics": {"0.1.0"}}}
	for _, tc := range []struct {
		name, components string
		errs             []string
	}{
		{name: "given", components: `  kiln-backup:
    version: ">= 0.1"
    settings: {KILN_BACKUP_TABLE: orders, KILN_BACKUP_STORE: "s3://backups/shop"}
  kiln-metrics: ">= 0.1"`},
		{name: "given, with an optional one", components: `  kiln-backup:
    version: ">= 0.1"
    settings: {KILN_BACKUP_TABLE: orders, KILN_BACKUP_STORE: "s3://backups/shop", KILN_BACKUP_S3_ENDPOINT: "http://127.0.0.1:9000"}`},
		{name: "missing", components: `  kiln-backup: ">= 0.1"`,
			errs: []string{"kiln.yaml:6:3: components.kiln-backup: component kiln-backup 0.1.0 needs settings KILN_BACKUP_TABLE, KILN_BACKUP_STORE"}},
		{name: "one missing, one unknown", components: `  kiln-backup:
    version: ">= 0.1"
    settings: {KILN_BACKUP_TABLE: orders, KILN_BACKUP_TABEL: x}`,
			errs: []string{"kiln.yaml:6:3: components.kiln-backup: component kiln-backup 0.1.0 needs settings KILN_BACKUP_STORE",
				"kiln.yaml:8:15: components.kiln-backup.settings.KILN_BACKUP_TABEL: component kiln-backup 0.1.0 has no setting KILN_BACKUP_TABEL (its settings: KILN_BACKUP_TABLE, KILN_BACKUP_STORE, KILN_BACKUP_S3_ENDPOINT)"}},
		{name: "version required", components: `  kiln-backup:
    settings: {KILN_BACKUP_TABLE: orders}`,
			errs: []string{"kiln.yaml:7:5: components.kiln-backup.version: required field is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifests.Parse("kiln.yaml", []byte(settingsManifest(tc.components)), cat)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got := m.Resolved[0].Settings["KILN_BACKUP_STORE"]; got != "s3://backups/shop" {
					t.Fatalf("settings = %v", m.Resolved[0].Settings)
				}
				if m.Components["kiln-backup"] != ">= 0.1" {
					t.Fatalf("constraint = %q", m.Components["kiln-backup"])
				}
				return
			}
			var errs manifests.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v", err)
			}
			got := err.Error()
			for _, want := range tc.errs {
				if !strings.Contains(got, want) {
					t.Errorf("errors:\n%s\nwant one starting %q", got, want)
				}
			}
			if len(errs) != len(tc.errs) {
				t.Errorf("%d errors, want %d:\n%s", len(errs), len(tc.errs), got)
			}
		})
	}
}
