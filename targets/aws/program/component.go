package program

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/images"
)

// Where an instance holds what the AMI brings (see docs/aws.md): the image, the same bytes
// as the local image directory, and kiln-boot, the image's own copy, run by a systemd unit.
const (
	ImageDir     = "/opt/kiln/image"
	BootPath     = "/opt/kiln/bin/kiln-boot"
	BootSpecPath = "/etc/kiln/boot.json"
	BootUnit     = "kiln-boot.service"
	unitPath     = "/etc/systemd/system/" + BootUnit
	payloadTmp   = "/tmp/kiln-payload.tar.gz"
)

// bootUnitLines are kiln-boot's systemd unit. The AMI enables it, but it waits for the
// instance's spec, which the launch template's user data writes before restarting it.
var bootUnitLines = []string{
	"[Unit]",
	"Description=kiln-boot, the init of a kiln instance",
	"Wants=network-online.target",
	"After=network-online.target",
	"ConditionPathExists=" + BootSpecPath,
	"",
	"[Service]",
	"ExecStart=" + BootPath + " --spec " + BootSpecPath,
	"Restart=always",
	"RestartSec=1",
	// kiln-boot stops its units itself (SIGTERM, then SIGKILL after the drain timeout).
	"KillMode=mixed",
	"",
	"[Install]",
	"WantedBy=multi-user.target",
}

// componentDoc is an Image Builder component document (schemaVersion 1.0).
type componentDoc struct {
	Name          string  `yaml:"name"`
	Description   string  `yaml:"description"`
	SchemaVersion string  `yaml:"schemaVersion"`
	Phases        []phase `yaml:"phases"`
}

type phase struct {
	Name  string `yaml:"name"`
	Steps []step `yaml:"steps"`
}

type step struct {
	Name   string `yaml:"name"`
	Action string `yaml:"action"`
	Inputs any    `yaml:"inputs"`
}

type bashInputs struct {
	Commands []string `yaml:"commands"`
}

// componentDocument returns the Image Builder component that installs one image: its build
// phase fetches the payload from the artifacts bucket, checks its sha256, unpacks it to
// ImageDir, installs the image's kiln-boot and its systemd unit; its validate phase has
// kiln-boot hash the installed image against the digest.
func componentDocument(service, bucket, key string, img BakeImage) (string, error) {
	for _, s := range []string{bucket, key} {
		// Both go into single-quoted shell words.
		if strings.ContainsAny(s, "'\n") {
			return "", fmt.Errorf("component of %s: %q cannot be quoted for the shell", img.Digest, s)
		}
	}
	bash := func(name string, cmds ...string) step {
		return step{Name: name, Action: "ExecuteBash", Inputs: bashInputs{Commands: append([]string{"set -euo pipefail"}, cmds...)}}
	}
	doc := componentDoc{
		Name:          "kiln-" + service + "-" + digestName(img.Digest),
		Description:   fmt.Sprintf("kiln image %s of %s %s", img.Digest, service, img.Version),
		SchemaVersion: "1.0",
		Phases: []phase{
			{Name: "build", Steps: []step{
				bash("FetchPayload", fmt.Sprintf("aws s3 cp 's3://%s/%s' %s", bucket, key, payloadTmp)),
				bash("VerifyPayload", fmt.Sprintf("echo '%s  %s' | sha256sum -c -", img.PayloadSHA256, payloadTmp)),
				bash("UnpackImage",
					"rm -rf "+ImageDir,
					"install -d -m 0755 "+ImageDir,
					"tar -xzf "+payloadTmp+" -C "+ImageDir,
					"rm -f "+payloadTmp),
				bash("InstallBoot",
					"install -d -m 0755 "+path.Dir(BootPath),
					"install -m 0755 "+path.Join(ImageDir, "bin", images.InitName)+" "+BootPath),
				bash("InstallBootUnit",
					"printf '%s\\n' '"+strings.Join(bootUnitLines, "' '")+"' > "+unitPath,
					"chmod 0644 "+unitPath,
					"systemctl daemon-reload",
					"systemctl enable "+BootUnit),
			}},
			{Name: "validate", Steps: []step{
				bash("VerifyImage", verifyCommand(img.Digest)),
			}},
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// verifyCommand is what the component's validate phase runs: kiln-boot exits 0 only when
// the installed image hashes to the digest.
func verifyCommand(digest string) string {
	return BootPath + " --verify " + ImageDir + " --digest " + digest
}
