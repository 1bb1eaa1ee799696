//go:build e2e

package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnhq/kiln/stacks/pulumicli"
)

// TestSetupAWSPluginWithThePulumiCLI drives the pinned Pulumi CLI itself. Its plugin
// downloads go to a server of the test on 127.0.0.1 (PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES),
// which first has no plugin, as where downloads are blocked, and later serves one. The
// plugin is a shell script in the release tarball's layout: a stand-in that is never run,
// not the AWS provider.
func TestSetupAWSPluginWithThePulumiCLI(t *testing.T) {
	root, err := pulumicli.Ensure(context.Background(), pulumicli.Options{Progress: os.Stderr, IgnorePath: true})
	if err != nil {
		t.Fatalf("pulumi cli: %v", err)
	}
	pulumi := filepath.Join(root, "bin", "pulumi")
	t.Setenv("KILN_PULUMI", pulumi)
	t.Setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
	t.Setenv("PATH", "/usr/bin:/bin") // no pulumi-resource-aws
	home := t.TempDir()
	t.Setenv("PULUMI_HOME", home)
	tarball := pluginTarball(t)
	var serve atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serve.Load() || path.Base(r.URL.Path) != awsPlugin.Tarball() {
			http.NotFound(w, r)
			return
		}
		w.Write(tarball)
	}))
	defer srv.Close()
	t.Setenv("PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES", ".*="+srv.URL)

	// Nothing to download: setup fails and says how to install the plugin by hand.
	code, _, errOut := kiln(t, awsExample, "setup")
	if code != ExitFailed || !strings.Contains(errOut, "kiln: the "+awsPlugin.String()+" is not installed") {
		t.Fatalf("setup without a download: exit %d, stderr:\n%s", code, errOut)
	}
	// By hand, as it says: the tarball copied here and the --file command it prints.
	m := regexp.MustCompile(`(?m)^  (\S+ plugin install resource aws \S+ --file (\S+))$`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no --file command in:\n%s", errOut)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, m[2]), tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(m[1])
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || args[0] != pulumi {
		t.Fatalf("%s: %v\n%s", m[1], err, out)
	}
	want := filepath.Join(awsPlugin.CacheDir(home), awsPlugin.Binary())
	code, out, errOut := kiln(t, awsExample, "setup")
	if code != ExitOK || !strings.Contains(out, awsPlugin.String()+": "+want+"\n") {
		t.Fatalf("setup after installing by hand: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}

	// Downloadable: into a fresh Pulumi home, setup installs it itself.
	serve.Store(true)
	home = t.TempDir()
	t.Setenv("PULUMI_HOME", home)
	want = filepath.Join(awsPlugin.CacheDir(home), awsPlugin.Binary())
	code, out, errOut = kiln(t, awsExample, "setup")
	if code != ExitOK || !strings.Contains(out, awsPlugin.String()+": "+want+"\n") {
		t.Fatalf("setup with a download: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// pluginTarball is a release tarball holding a stand-in pulumi-resource-aws.
func pluginTarball(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("#!/bin/sh\necho 'a stand-in for kiln setup tests, not the AWS provider' >&2\nexit 1\n")
	if err := tw.WriteHeader(&tar.Header{Name: awsPlugin.Binary(), Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
