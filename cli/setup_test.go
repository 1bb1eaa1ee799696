package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/targets"
)

// TestAWSPluginMatchesGoMod: the plugin kiln setup installs is the one the aws programs
// are compiled against.
func TestAWSPluginMatchesGoMod(t *testing.T) {
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/pulumi/pulumi-aws/sdk/v6 v(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod does not require github.com/pulumi/pulumi-aws/sdk/v6")
	}
	if got := string(m[1]); got != awsPlugin.Version {
		t.Errorf("go.mod has pulumi-aws v%s, kiln setup installs the plugin v%s", got, awsPlugin.Version)
	}
}

// fakePulumi writes a model of the Pulumi CLI (not Pulumi) for setup's tests and points
// KILN_PULUMI at it. It logs its arguments to the returned file; `plugin install` fails
// as it does offline, or, with install, puts a plugin into $PULUMI_HOME's cache as the
// real one does. PULUMI_HOME becomes an empty directory, and PATH one without plugins.
func fakePulumi(t *testing.T, install bool) (log, home string) {
	t.Helper()
	dir := t.TempDir()
	log, home = filepath.Join(dir, "args.log"), filepath.Join(dir, "pulumi-home")
	t.Setenv("PULUMI_HOME", home)
	t.Setenv("PATH", t.TempDir())
	plugin := filepath.Join(awsPlugin.CacheDir(home), awsPlugin.Binary())
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if install {
		cache := filepath.Dir(plugin)
		script += fmt.Sprintf("/bin/mkdir -p %s && printf '#!/bin/sh\\n' > %s && /bin/chmod 755 %s && /bin/rm -f %s.partial\n", cache, plugin, plugin, cache)
	} else {
		script += "echo 'warning: Error downloading plugin: dial tcp: lookup get.pulumi.com: no such host' >&2\n" +
			"echo 'error: failed to download plugin: failed all 5 attempts' >&2\nexit 1\n"
	}
	bin := filepath.Join(dir, "bin", "pulumi")
	os.Mkdir(filepath.Dir(bin), 0o755)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_PULUMI", bin)
	return log, home
}

// awsExample is the README's aws manifest.
const awsExample = "../examples/aws"

// here turns the expectations, written for pulumi-aws 6.83.4 on linux-amd64, into this
// machine's and go.mod's (TestAWSPluginMatchesGoMod checks the version).
var here = strings.NewReplacer("6.83.4", awsPlugin.Version, "linux-amd64", runtime.GOOS+"-"+runtime.GOARCH)

func TestSetupAWSPluginCannotBeDownloaded(t *testing.T) {
	log, home := fakePulumi(t, false)
	code, out, errOut := kiln(t, awsExample, "setup")
	pulumi := os.Getenv("KILN_PULUMI")
	if code != ExitFailed || !strings.Contains(out, "pulumi CLI: "+pulumi) {
		t.Fatalf("setup: exit %d, stdout %q, stderr %q; want exit %d after the CLI", code, out, errOut, ExitFailed)
	}
	tarball := "pulumi-resource-aws-v6.83.4-linux-amd64.tar.gz"
	for _, want := range []string{
		"kiln: the pulumi-aws provider plugin v6.83.4 is not installed, and \"pulumi plugin install resource aws v6.83.4\" could not download it (exit status 1)",
		"  warning: Error downloading plugin: dial tcp: lookup get.pulumi.com: no such host\n  error: failed to download plugin: failed all 5 attempts\n",
		"https://get.pulumi.com/releases/plugins/" + tarball,
		"https://github.com/pulumi/pulumi-aws/releases/download/v6.83.4/" + tarball,
		pulumi + " plugin install resource aws v6.83.4 --file " + tarball,
		"or unpack it into " + filepath.Join(home, "plugins", "resource-aws-v6.83.4") + " (which then holds pulumi-resource-aws)",
	} {
		if !strings.Contains(errOut, here.Replace(want)) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if got, _ := os.ReadFile(log); string(got) != "plugin install resource aws v6.83.4\n" {
		t.Errorf("pulumi was run with %q", got)
	}
}

func TestSetupInstallsAWSPlugin(t *testing.T) {
	log, home := fakePulumi(t, true)
	code, out, errOut := kiln(t, awsExample, "setup")
	want := filepath.Join(home, "plugins", "resource-aws-v6.83.4", "pulumi-resource-aws")
	if code != ExitOK || !strings.Contains(out, "pulumi-aws provider plugin v6.83.4: "+want+"\n") {
		t.Fatalf("setup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Installed once: the second setup finds it in the cache.
	os.Remove(log)
	if code, out, errOut = kiln(t, awsExample, "setup"); code != ExitOK || !strings.Contains(out, want) {
		t.Fatalf("second setup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(log); !errors.Is(err, os.ErrNotExist) {
		t.Error("the second setup ran pulumi again")
	}
	// A partial install (the CLI marks one while it unpacks) is no plugin.
	os.WriteFile(awsPlugin.CacheDir(home)+".partial", nil, 0o644)
	if code, _, _ = kiln(t, awsExample, "setup"); code != ExitOK {
		t.Fatalf("setup after a partial install: exit %d", code)
	}
	if got, _ := os.ReadFile(log); string(got) != "plugin install resource aws v6.83.4\n" {
		t.Errorf("after a partial install pulumi was run with %q", got)
	}
}

func TestSetupFindsAWSPluginOnPath(t *testing.T) {
	log, _ := fakePulumi(t, false)
	dir := os.Getenv("PATH")
	os.WriteFile(filepath.Join(dir, "pulumi-resource-aws"), []byte("#!/bin/sh\n"), 0o755)
	code, out, errOut := kiln(t, awsExample, "setup")
	if code != ExitOK || !strings.Contains(out, "pulumi-aws provider plugin v6.83.4: "+filepath.Join(dir, "pulumi-resource-aws")) {
		t.Fatalf("setup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(log); !errors.Is(err, os.ErrNotExist) {
		t.Error("setup ran pulumi although the plugin is on PATH")
	}
}

// TestSetupWithoutAWSManifest: only an aws manifest asks for the plugin (go tool task
// setup runs kiln setup where there is no manifest).
func TestSetupWithoutAWSManifest(t *testing.T) {
	log, _ := fakePulumi(t, false)
	empty := t.TempDir()
	for _, tc := range []struct {
		dir  string
		args []string
		code int
		msg  string
	}{
		{empty, []string{"setup"}, ExitOK, ""},
		{"../examples/demo", []string{"setup"}, ExitOK, ""},
		{empty, []string{"setup", "-f", "kiln.yaml"}, ExitFailed, "kiln.yaml"}, // named, so it must exist
		{empty, []string{"setup", "missing.yaml"}, ExitFailed, "missing.yaml"},
		{awsExample, []string{"setup", "--file", "../demo/kiln.yaml"}, ExitOK, ""},
	} {
		code, out, errOut := kiln(t, tc.dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) || code == ExitOK && !strings.Contains(out, "pulumi CLI: ") {
			t.Errorf("kiln %v in %s: exit %d, stdout %q, stderr %q; want exit %d mentioning %q", tc.args, tc.dir, code, out, errOut, tc.code, tc.msg)
		}
	}
	bad := filepath.Join(empty, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: kiln/v1\ntarget: {aws: {region: mars}}\n"), 0o644)
	if code, _, errOut := kiln(t, empty, "setup", bad); code != ExitInvalid || !strings.Contains(errOut, bad+":2:24: target.aws.region: invalid region \"mars\"") {
		t.Errorf("setup of an invalid manifest: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(log); !errors.Is(err, os.ErrNotExist) {
		t.Error("setup without an aws manifest ran pulumi")
	}
}

func TestValidateAWSExample(t *testing.T) {
	if !targets.Has("aws") {
		t.Fatal("kiln has no aws target")
	}
	code, out, errOut := kiln(t, awsExample, "validate", "-o", "text")
	if code != ExitOK || out != "kiln.yaml: ok: service demo 1.0.0, 2 instance(s) per slot on the aws target\n  component kiln-metrics 0.1.0 (wanted \">= 0.1, < 1.0\")\n" {
		t.Fatalf("validate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
