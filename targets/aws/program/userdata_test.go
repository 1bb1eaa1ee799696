package program

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/boot"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// decodeUserData returns the script and the boot spec a launch template's user data writes.
func decodeUserData(t *testing.T, lt *modelResource) (string, boot.Spec) {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(lt.str("userData"))
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	_, rest, ok := strings.Cut(script, "<<'KILN_BOOT_SPEC'\n")
	body, _, ok2 := strings.Cut(rest, "\nKILN_BOOT_SPEC\n")
	if !ok || !ok2 {
		t.Fatalf("user data writes no boot spec:\n%s", script)
	}
	var bs boot.Spec
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bs); err != nil {
		t.Fatal(err)
	}
	return script, bs
}

// withSecrets gives the stack's config the secrets' values, as kiln secret set does.
func withSecrets(kv ...string) pulumi.RunOption {
	return func(ri *pulumi.RunInfo) {
		ri.Config = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			ri.Config[stacks.SecretConfigKey(kv[i])] = kv[i+1]
			ri.ConfigSecretKeys = append(ri.ConfigSecretKeys, stacks.SecretConfigKey(kv[i]))
		}
	}
}

func TestFleetUserDataWritesTheBootSpec(t *testing.T) {
	in := fleetInput(phaseSpec("step 10/90"))
	in.Secrets, in.SecretsVersion = []string{"API_TOKEN"}, "s1"
	in.NamedPorts = map[string]int{"metrics": 9100}
	m, _ := run(t, Fleet(in), false, withSecrets("API_TOKEN", "hunter2-secret"))
	script, bs := decodeUserData(t, m.get(t, typeLT, "shop-green"))
	want := boot.Spec{
		ImageDir: "/opt/kiln/image", Digest: v2.Image.Digest, DataDir: "/var/lib/kiln/shop",
		Env: map[string]string{"PORT": "8080", "KILN_SERVICE": "shop", "KILN_SLOT": "green", "KILN_VERSION": "2.0.0",
			"LOG_LEVEL": "info", "KILN_PORT_METRICS": "9100"},
		DrainTimeout: boot.Duration(30 * time.Second), Host: "0.0.0.0",
		SSM: &boot.SSMSecrets{Region: modelRegion, Parameters: map[string]string{"API_TOKEN": "/kiln/shop/API_TOKEN"}},
	}
	if !reflect.DeepEqual(bs, want) {
		t.Errorf("boot spec = %+v, want %+v", bs, want)
	}
	bashSyntax(t, "user data", script)
	if !strings.HasPrefix(script, "#!/bin/bash\n") || !strings.HasSuffix(script, "systemctl restart kiln-boot.service\n") {
		t.Errorf("user data script:\n%s", script)
	}
	// The secret's value is only in its parameter, marked secret.
	for k, r := range m.res {
		if k == typeParam+"::shop-secret-API_TOKEN" {
			v := r.Inputs["value"]
			if !v.IsSecret() || plain(v) != "hunter2-secret" {
				t.Errorf("parameter value %v is not the secret, marked secret", v)
			}
			if r.str("type") != "SecureString" || r.str("name") != "/kiln/shop/API_TOKEN" {
				t.Errorf("parameter %s type %s", r.str("name"), r.str("type"))
			}
			if o := r.Inputs["overwrite"]; !o.IsBool() || !o.BoolValue() {
				t.Errorf("parameter overwrite = %v, want true (a resume takes over a half-created one)", o)
			}
			continue
		}
		if b, _ := json.Marshal(r.Inputs.Mappable()); strings.Contains(string(b), "hunter2") {
			t.Errorf("%s holds the secret's value", k)
		}
		if lt := r.str("userData"); lt != "" {
			if b, _ := base64.StdEncoding.DecodeString(lt); strings.Contains(string(b), "hunter2") {
				t.Errorf("%s user data holds the secret's value", k)
			}
		}
	}
	// No secrets: no SSM section.
	m, _ = run(t, Fleet(fleetInput(phaseSpec("first deploy"))), false)
	if _, bs := decodeUserData(t, m.get(t, typeLT, "shop-blue")); bs.SSM != nil || len(m.ofType(typeParam)) != 0 {
		t.Errorf("secrets without any: %+v, %d parameters", bs.SSM, len(m.ofType(typeParam)))
	}
}

func TestFleetUserDataRunsAndWritesAPrivateSpec(t *testing.T) {
	in := fleetInput(phaseSpec("first release"))
	in.Spec.Env["QUOTED"] = `it's "here" $HOME` + "`x`"
	m, _ := run(t, Fleet(in), false)
	script, want := decodeUserData(t, m.get(t, typeLT, "shop-blue"))
	// Run it for real with its absolute paths moved under a temporary root and a
	// systemctl that records what it was asked.
	root := t.TempDir()
	move := strings.NewReplacer("/etc/kiln", root+"/etc/kiln", "/var/lib/kiln", root+"/var/lib/kiln")
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "{") { // the spec itself stays as written
			lines[i] = move.Replace(l)
		}
	}
	script = strings.Join(lines, "\n")
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$@\" > "+root+"/systemctl.log\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user data failed: %v\n%s", err, out)
	}
	specPath := filepath.Join(root, "etc/kiln/boot.json")
	fi, err := os.Stat(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("boot.json mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var got boot.Spec
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || got.Env["QUOTED"] != in.Spec.Env["QUOTED"] {
		t.Errorf("boot.json = %+v, want %+v", got, want)
	}
	if log, _ := os.ReadFile(filepath.Join(root, "systemctl.log")); string(log) != "restart kiln-boot.service\n" {
		t.Errorf("systemctl called with %q", log)
	}
}

func TestFleetSecretChangedMidRolloutChurnsNoSlot(t *testing.T) {
	// Blue runs with secrets s1; the secret is set again (s2) while green is deployed.
	spec := phaseSpec("step 10/90").Clone()
	b, g := spec.Slots[fleet.Blue], spec.Slots[fleet.Green]
	b.Release.Secrets, g.Release.Secrets = "s1", "s2"
	spec.Slots[fleet.Blue], spec.Slots[fleet.Green] = b, g
	in := fleetInput(spec)
	in.Secrets = []string{"API_TOKEN"}

	in.SecretsVersion = "s1"
	before, _ := run(t, Fleet(in), false, withSecrets("API_TOKEN", "old"))
	in.SecretsVersion = "s2"
	after, _ := run(t, Fleet(in), false, withSecrets("API_TOKEN", "new"))
	_, _, changed := changes(before, after)
	if want := []string{typeParam + "::shop-secret-API_TOKEN"}; !reflect.DeepEqual(changed, want) {
		t.Errorf("setting a secret changed %v, want only %v", changed, want)
	}

	// A secret added by s2: the blue slot (s1) keeps the user data it was made with; the
	// green one (s2) names the new secret.
	in.Secrets = []string{"API_TOKEN", "DB_PASSWORD"}
	added, _ := run(t, Fleet(in), false, withSecrets("API_TOKEN", "new", "DB_PASSWORD", "pw"))
	for slot, frozen := range map[fleet.Slot]bool{fleet.Blue: true, fleet.Green: false} {
		lt := added.get(t, typeLT, "shop-"+string(slot))
		if got := slices.Contains(lt.RPC.GetIgnoreChanges(), "userData"); got != frozen {
			t.Errorf("slot %s: user data ignored %v, want %v", slot, got, frozen)
		}
	}
	if _, bs := decodeUserData(t, added.get(t, typeLT, "shop-green")); bs.SSM.Parameters["DB_PASSWORD"] != "/kiln/shop/DB_PASSWORD" {
		t.Errorf("green does not read the new secret: %v", bs.SSM.Parameters)
	}
	for _, slot := range fleet.Slots {
		if deps := added.get(t, typeASG, "shop-"+string(slot)).RPC.GetDependencies(); !slices.ContainsFunc(deps, func(u string) bool {
			return strings.HasSuffix(u, "::shop-instance") && strings.Contains(u, "rolePolicy")
		}) {
			t.Errorf("group %s does not wait for its role's policy: %v", slot, deps)
		}
	}
}

func TestFleetMissingSecretIsAnError(t *testing.T) {
	in := fleetInput(phaseSpec("first deploy"))
	in.Secrets = []string{"API_TOKEN"}
	_, _, err := runErr(Fleet(in), false)
	if err == nil || !strings.Contains(err.Error(), "kiln secret set API_TOKEN") {
		t.Errorf("err = %v", err)
	}
}
