// Package boot is kiln-boot, the init of one instance (`kiln-boot --spec FILE`), baked
// into every image: the local target's provider starts it per instance, and on a cloud
// target a service manager runs it inside the machine image. It starts the units baked into the image as supervised child processes,
// restarts them per policy, runs scheduled units, appends their output to
// rotated log files, keeps <dataDir>/status.json current, and stops them
// all (SIGTERM, then SIGKILL after drainTimeout) when cancelled.
package boot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "10s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Spec describes one instance; kiln's provider writes it and starts
// `kiln-boot --spec FILE`.
type Spec struct {
	// Instance is the instance id, e.g. hello-green-0; "" on a cloud instance, whose
	// ID boot reads from the instance metadata service (IMDSv2) and gives units as
	// KILN_INSTANCE.
	Instance string `json:"instance"`
	// ImageDir is the absolute path of the (read-only) image root.
	ImageDir string `json:"imageDir"`
	// Digest, if set, is the image's digest as the deployment recorded it: boot
	// re-hashes the image and refuses to start anything from one that differs.
	Digest string `json:"digest,omitempty"`
	// DataDir is the absolute path of the instance's writable directory;
	// status.json and logs/ live there.
	DataDir string `json:"dataDir"`
	// Env is the instance env given to every unit (PORT, KILN_PORT_*,
	// KILN_SERVICE, ...). boot adds the variables of UnitEnv.
	Env map[string]string `json:"env"`
	// DrainTimeout is how long units get between SIGTERM and SIGKILL.
	DrainTimeout Duration `json:"drainTimeout"`
	// SecretsFD, if not 0, is a file descriptor kiln-boot inherits (a pipe) holding the
	// instance's secrets as a JSON object, name to value. Boot reads it to its end and
	// closes it before any unit starts; a unit's env value ${secret:NAME} is replaced by
	// the value. Secrets never pass through this file, argv or boot's own environment.
	SecretsFD int `json:"secretsFD,omitempty"`
	// Host, if set, is the address the app binds instead of ListenHost: on a cloud
	// target the balancer reaches instances over the network (0.0.0.0, kept to the
	// balancer by the instances' security group).
	Host string `json:"host,omitempty"`
	// SSM, if set, names the instance's secrets as SecureString parameters of AWS
	// Systems Manager, read at boot with the instance's role (credentials from IMDSv2)
	// before any unit starts. Exclusive with SecretsFD.
	SSM *SSMSecrets `json:"ssm,omitempty"`
}

// SSMSecrets are an instance's secrets as SSM parameters.
type SSMSecrets struct {
	// Region is the parameters' region.
	Region string `json:"region"`
	// Parameters maps a secret's name (as ${secret:NAME} references it) to the name of
	// its SecureString parameter, e.g. /kiln/hello/API_TOKEN.
	Parameters map[string]string `json:"parameters"`
}

// ListenHost is the address an instance's app binds: the load balancer
// reaches it on the loopback interface, and nothing else should reach it
// behind the balancer's back.
const ListenHost = "127.0.0.1"

// UnitEnv returns the instance env every unit gets: Env, plus KILN_IMAGE_DIR
// and KILN_DATA_DIR, plus, when Env has a PORT, HOST (ListenHost) and
// KILN_LISTEN (HOST:PORT), the address the app should listen on.
func (s *Spec) UnitEnv() map[string]string {
	env := make(map[string]string, len(s.Env)+4)
	for k, v := range s.Env {
		env[k] = v
	}
	env["KILN_IMAGE_DIR"] = s.ImageDir
	env["KILN_DATA_DIR"] = s.DataDir
	if port, ok := s.Env["PORT"]; ok {
		env["HOST"] = ListenHost
		env["KILN_LISTEN"] = net.JoinHostPort(ListenHost, port)
	}
	return env
}

// Restart policies of a unit.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Modes of a unit.
const (
	ModeService  = "service"
	ModeSchedule = "schedule"
)

// Unit is one process of an image, read from <imageDir>/units/*.json.
type Unit struct {
	// Name names the unit; its log is <dataDir>/logs/<name>.log.
	Name string `json:"name"`
	// Command is the executable, relative to the image root.
	Command string `json:"command"`
	// Args are the arguments; ${VAR} is expanded from the instance env,
	// then the unit env.
	Args []string `json:"args"`
	// Env is extra env; ${VAR} in values is expanded from the instance env.
	Env map[string]string `json:"env"`
	// Restart is always (default), on-failure or never. Service units only.
	Restart string `json:"restart"`
	// Mode is service (default: kept running) or schedule (run to
	// completion every Schedule).
	Mode string `json:"mode"`
	// Schedule is a Go duration, required for mode schedule.
	Schedule string `json:"schedule"`

	period time.Duration // parsed Schedule
	file   string        // where the unit was read from, for errors
}

// LoadSpec reads, strictly decodes and validates an instance spec.
func LoadSpec(path string) (*Spec, error) {
	var s Spec
	if err := decodeStrict(path, &s); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// ssmName is the form of an SSM parameter name (letters, digits, _ . - and /).
	ssmName = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)
)

func (s *SSMSecrets) validate() error {
	if s == nil {
		return nil
	}
	if s.Region == "" {
		return errors.New("ssm.region: must not be empty")
	}
	if len(s.Parameters) == 0 {
		return errors.New("ssm.parameters: must name at least one parameter (leave ssm out when the instance has no secrets)")
	}
	for name, param := range s.Parameters {
		if !envName.MatchString(name) {
			return fmt.Errorf("ssm.parameters: %q is not a valid secret name", name)
		}
		if !ssmName.MatchString(param) || len(param) > 2048 || strings.HasPrefix(strings.ToLower(strings.TrimPrefix(param, "/")), "aws") {
			return fmt.Errorf("ssm.parameters.%s: %q is not an SSM parameter name of one's own", name, param)
		}
	}
	return nil
}

func (s *Spec) validate() error {
	switch {
	case !filepath.IsAbs(s.ImageDir):
		return fmt.Errorf("imageDir: must be an absolute path, got %q", s.ImageDir)
	case !filepath.IsAbs(s.DataDir):
		return fmt.Errorf("dataDir: must be an absolute path, got %q", s.DataDir)
	case s.SecretsFD < 0 || s.SecretsFD > 0 && s.SecretsFD < 3:
		return fmt.Errorf("secretsFD: must be 0 (none) or an inherited descriptor >= 3, got %d", s.SecretsFD)
	case s.DrainTimeout < 0:
		return fmt.Errorf("drainTimeout: must be >= 0, got %s", time.Duration(s.DrainTimeout))
	case s.SSM != nil && s.SecretsFD != 0:
		return errors.New("ssm and secretsFD: an instance's secrets come from one place, set only one")
	}
	if err := s.SSM.validate(); err != nil {
		return err
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env: %q is not a valid variable name", k)
		}
	}
	return nil
}

// LoadUnits reads and validates <imageDir>/units/*.json, sorted by name.
func LoadUnits(imageDir string) ([]*Unit, error) {
	files, err := filepath.Glob(filepath.Join(imageDir, "units", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no units in %s", filepath.Join(imageDir, "units"))
	}
	var units []*Unit
	seen := map[string]string{}
	for _, f := range files {
		var u Unit
		if err := decodeStrict(f, &u); err != nil {
			return nil, err
		}
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if other, dup := seen[u.Name]; dup {
			return nil, fmt.Errorf("%s: name: unit %q is also defined in %s", f, u.Name, other)
		}
		seen[u.Name] = f
		u.file = f
		units = append(units, &u)
	}
	sort.Slice(units, func(i, j int) bool { return units[i].Name < units[j].Name })
	return units, nil
}

var unitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (u *Unit) validate() error {
	if !unitName.MatchString(u.Name) {
		return fmt.Errorf("name: %q must be letters, digits, '.', '_' or '-' (it names the log file)", u.Name)
	}
	if u.Command == "" {
		return errors.New("command: must not be empty")
	}
	if filepath.IsAbs(u.Command) || !filepath.IsLocal(u.Command) {
		return fmt.Errorf("command: %q must be a path inside the image, relative to its root", u.Command)
	}
	if u.Restart == "" {
		u.Restart = RestartAlways
	}
	switch u.Restart {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		return fmt.Errorf("restart: must be always, on-failure or never, got %q", u.Restart)
	}
	if u.Mode == "" {
		u.Mode = ModeService
	}
	switch u.Mode {
	case ModeService:
		if u.Schedule != "" {
			return fmt.Errorf("schedule: only for mode schedule, got %q with mode service", u.Schedule)
		}
	case ModeSchedule:
		d, err := time.ParseDuration(u.Schedule)
		if err != nil || d <= 0 {
			return fmt.Errorf("schedule: mode schedule needs a positive Go duration such as \"24h\", got %q", u.Schedule)
		}
		u.period = d
	default:
		return fmt.Errorf("mode: must be service or schedule, got %q", u.Mode)
	}
	for k := range u.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env: %q is not a valid variable name", k)
		}
	}
	return nil
}

func decodeStrict(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		line := lineAt(data, dec.InputOffset())
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line = lineAt(data, syn.Offset)
		case errors.As(err, &typ):
			line = lineAt(data, typ.Offset)
			err = fmt.Errorf("field %s: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		default:
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				if i := bytes.Index(data, []byte(f)); i >= 0 {
					line = lineAt(data, int64(i))
				}
				err = fmt.Errorf("unknown field %s", f)
			}
		}
		return fmt.Errorf("%s:%d: %w", path, line, err)
	}
	if dec.More() {
		return fmt.Errorf("%s:%d: unexpected data after the JSON object", path, lineAt(data, dec.InputOffset()))
	}
	return nil
}

func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return 1 + bytes.Count(data[:off], []byte("\n"))
}
