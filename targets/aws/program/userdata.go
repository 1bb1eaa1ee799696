package program

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"path"
	"strconv"

	"github.com/kilnhq/kiln/boot"
	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/fleet"
)

// dataRoot holds the instances' data directories, one per service.
const dataRoot = "/var/lib/kiln"

// secretParameter is the name of the SSM parameter that holds a service's secret.
func secretParameter(service, name string) string {
	return "/kiln/" + service + "/" + name
}

// bootSpec is what kiln-boot runs on an instance of slot: the AMI's image, the fleet's env,
// the app bound on every interface (the instances' security group admits only the
// balancer) and the secrets as parameter names, never values. Instance is left empty:
// kiln-boot reads the instance's ID from its metadata.
func bootSpec(in FleetInput, slot fleet.Slot, rel fleet.Release) boot.Spec {
	spec := in.Spec
	env := maps.Clone(spec.Env)
	if env == nil {
		env = map[string]string{}
	}
	for name, port := range in.NamedPorts {
		env[components.PortEnv(name)] = strconv.Itoa(port)
	}
	env["PORT"] = strconv.Itoa(spec.Port)
	env["KILN_SERVICE"] = spec.Service
	env["KILN_SLOT"] = string(slot)
	env["KILN_VERSION"] = rel.Version
	bs := boot.Spec{
		ImageDir:     ImageDir,
		Digest:       rel.Image.Digest,
		DataDir:      path.Join(dataRoot, spec.Service),
		Env:          env,
		DrainTimeout: boot.Duration(spec.DrainTimeout),
		Host:         "0.0.0.0",
	}
	if len(in.Secrets) > 0 {
		bs.SSM = &boot.SSMSecrets{Region: in.Settings.Region, Parameters: map[string]string{}}
		for _, name := range in.Secrets {
			bs.SSM.Parameters[name] = secretParameter(spec.Service, name)
		}
	}
	return bs
}

// userData is the launch template's user data: a script cloud-init runs once at first boot,
// writing the instance's boot spec (readable by root only) and restarting kiln-boot, which
// the AMI's unit holds back until the spec exists. Base64, as EC2 wants it.
func userData(bs boot.Spec) (string, error) {
	b, err := json.Marshal(bs)
	if err != nil {
		return "", err
	}
	// JSON holds no newline, so the heredoc's end marker cannot occur inside it.
	script := "#!/bin/bash\n" +
		"set -euo pipefail\n" +
		"umask 077\n" +
		"install -d -m 0700 " + path.Dir(BootSpecPath) + " " + bs.DataDir + "\n" +
		"cat > " + BootSpecPath + " <<'KILN_BOOT_SPEC'\n" + string(b) + "\nKILN_BOOT_SPEC\n" +
		"systemctl restart " + BootUnit + "\n"
	return base64.StdEncoding.EncodeToString([]byte(script)), nil
}
