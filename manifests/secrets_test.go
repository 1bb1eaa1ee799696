package manifests_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/manifests"
)

func TestSecretsDeclaredAndReferenced(t *testing.T) {
	src := edit(t, "app:\n", "secrets: [DB_PASSWORD, API_TOKEN]\napp:\n",
		"    GREETING: hi\n", "    GREETING: hi\n    DATABASE_URL: \"postgres://app:${secret:DB_PASSWORD}@db/app\"\n    TOKEN: ${secret:API_TOKEN}\n")
	m, err := manifests.Parse("kiln.yaml", []byte(src), testCatalog)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := []string{"API_TOKEN", "DB_PASSWORD"}; !reflect.DeepEqual(m.Secrets, want) {
		t.Errorf("Secrets = %v, want %v", m.Secrets, want)
	}
	// The reference is kept as written: the value is only known when an instance starts.
	if got := m.App.Env["DATABASE_URL"]; got != "postgres://app:${secret:DB_PASSWORD}@db/app" {
		t.Errorf("app.env.DATABASE_URL = %q, want the reference as written", got)
	}
}

func TestSecretErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pairs []string
		want  []string // each a substring of one error, in order
	}{
		{"undeclared", []string{"    GREETING: hi\n", "    GREETING: ${secret:DB_PASWORD}\n", "app:\n", "secrets: [DB_PASSWORD]\napp:\n"},
			[]string{"kiln.yaml:4:", "kiln.yaml:9:15: app.env.GREETING: secret DB_PASWORD is not declared (did you mean DB_PASSWORD?)"}},
		{"unreferenced", []string{"app:\n", "secrets: [DB_PASSWORD]\napp:\n"},
			[]string{"kiln.yaml:4:11: secrets[0]: secret DB_PASSWORD is declared but nothing refers to it"}},
		{"bad name", []string{"app:\n", "secrets: [db-password]\napp:\n"},
			[]string{"kiln.yaml:4:11: secrets[0]: invalid secret name \"db-password\""}},
		{"twice", []string{"app:\n", "secrets: [A, A]\napp:\n", "    GREETING: hi\n", "    GREETING: ${secret:A}\n"},
			[]string{"kiln.yaml:4:14: secrets[1]: secret A is declared twice"}},
		{"malformed reference", []string{"app:\n", "secrets: [A]\napp:\n", "    GREETING: hi\n", "    GREETING: \"${secret:A} ${secret:a}\"\n"},
			[]string{"app.env.GREETING: invalid variable reference \"${secret:a}\" (write ${NAME} or ${secret:NAME}"}},
		{"in args", []string{"app:\n", "secrets: [A]\napp:\n", "    GREETING: hi\n", "    GREETING: ${secret:A}\n",
			`args: ["--verbose", 3]`, `args: ["--token=${secret:A}"]`},
			[]string{"app.args[0]: a secret cannot be passed on the command line"}},
		{"through env in args", []string{"app:\n", "secrets: [A]\napp:\n", "    GREETING: hi\n", "    GREETING: ${secret:A}\n",
			`args: ["--verbose", 3]`, `args: ["--greeting=${GREETING}"]`},
			[]string{"app.args[0]: ${GREETING} holds a secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifests.Parse("kiln.yaml", []byte(edit(t, tc.pairs...)), testCatalog)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q\nlacks %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestSecretInAComponentSetting(t *testing.T) {
	withSetting := func(value string) string {
		return edit(t, "app:\n", "secrets: [S3_KEY]\napp:\n",
			`  kiln-metrics: ">= 0.1, < 1.0"`, "  kiln-metrics:\n    version: \">= 0.1, < 1.0\"\n    settings: {KEY: \""+value+"\"}")
	}
	m, err := manifests.Parse("kiln.yaml", []byte(withSetting("${secret:S3_KEY}")), testCatalog)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := m.Resolved[0].Settings["KEY"]; got != "${secret:S3_KEY}" {
		t.Errorf("setting = %q, want the reference as written", got)
	}
	_, err = manifests.Parse("kiln.yaml", []byte(withSetting("${secret:S3_KEYS}")), testCatalog)
	if err == nil || !strings.Contains(err.Error(), "components.kiln-metrics.settings.KEY: secret S3_KEYS is not declared (did you mean S3_KEY?)") {
		t.Fatalf("an undeclared secret in a setting: %v", err)
	}
}
