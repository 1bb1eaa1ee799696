package components

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/internal/envexpand"
	"github.com/kilnhq/kiln/internal/strictyaml"
)

// Unit modes.
const (
	ModeService  = "service"  // kept running
	ModeSchedule = "schedule" // run every Unit.Schedule
)

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// InstanceEnv returns the names of the variables `kiln boot` gives every unit of an instance,
// besides KILN_PORT_<NAME> for each named port (see PortEnv).
func InstanceEnv() []string { return envexpand.InstanceVars() }

// Definition is one version of a baked component, decoded from its component.yaml.
type Definition struct {
	Name        string
	Version     *version.Version
	Binary      string // executable name; builtins are built from ./cmd/<Binary>
	Description string
	// Settings name the variables a service must set for this component in its manifest
	// (components.<name>.settings); the bake adds them to the unit's env.
	Settings []string
	// OptionalSettings name variables a service may set there too.
	OptionalSettings []string
	Unit             Unit
	Policy           string // file name of the IAM policy document, beside component.yaml
	// Dir is the absolute directory holding component.yaml, the policy and the binary;
	// "" for builtin components, which are embedded in kiln.
	Dir string

	policy []byte // the policy document, read and checked when the catalog was loaded
}

// Unit says how an instance runs the component.
type Unit struct {
	Mode     string        // ModeService or ModeSchedule
	Schedule time.Duration // for ModeSchedule: the period (> 0); 0 for ModeService
	Args     []string      // may hold ${VAR} references, see Expand
	Env      map[string]string
	Ports    []string // named ports allocated per instance, passed as PortEnv(name)
	Restart  string   // RestartAlways, RestartOnFailure or RestartNever
}

// BinaryPath is the component's executable for definitions loaded from a directory, or "" for
// builtins (built from ./cmd/<Binary> into kiln's bin dir).
func (d *Definition) BinaryPath() string {
	if d.Dir == "" {
		return ""
	}
	return filepath.Join(d.Dir, d.Binary)
}

// PortEnv is the environment variable carrying the named port: KILN_PORT_ and the name in upper
// case with '-' turned into '_' (metrics -> KILN_PORT_METRICS).
func PortEnv(name string) string {
	return "KILN_PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

var (
	nameRE     = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)
	binaryRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	portRE     = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$`)
	envKeyRE   = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	policyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.json$`)
)

// source is where a component.yaml comes from, and what its contents must agree with.
type source struct {
	readPolicy  func(name string) ([]byte, error) // the bytes of a file beside component.yaml
	dirName     string                            // the component's directory: name must match it
	dirVersion  string                            // the version directory ("" for builtins)
	checkBinary func(name string) error           // nil for builtins, built from ./cmd/<binary>
}

// parseDefinition decodes one component.yaml strictly and checks it against its source.
func parseDefinition(file string, data []byte, src source) (*Definition, error) {
	d := strictyaml.NewDecoder(file)
	root := d.Document(data, "fields (name, version, binary, description, settings, optionalSettings, unit, policy)")
	if root == nil {
		return nil, d.Err()
	}
	def := &Definition{}
	m := d.Map(root, "")
	if v := m.Required("name"); v != nil {
		if s, ok := d.String(v, "name"); ok {
			if !nameRE.MatchString(s) {
				d.Errorf(v, "name", "invalid component name %q (use lower-case letters, digits and '-', starting with a letter)", s)
			} else if s != src.dirName {
				d.Errorf(v, "name", "name %q does not match its directory %q", s, src.dirName)
			}
			def.Name = s
		}
	}
	if v := m.Required("version"); v != nil {
		if s, ok := d.Literal(v, "version"); ok {
			ver, err := version.NewSemver(s)
			if err != nil {
				d.Errorf(v, "version", "invalid version %q (write a semantic version such as 0.1.0)", s)
			} else if src.dirVersion != "" {
				if dv, err := version.NewSemver(src.dirVersion); err != nil || !dv.Equal(ver) {
					d.Errorf(v, "version", "version %s does not match its directory %q", ver, src.dirVersion)
				}
			}
			def.Version = ver
		}
	}
	if v := m.Required("binary"); v != nil {
		if s, ok := d.String(v, "binary"); ok {
			if !binaryRE.MatchString(s) {
				d.Errorf(v, "binary", "invalid binary name %q (a file name: letters, digits, '.', '_' and '-', no '/')", s)
			} else if src.checkBinary != nil {
				if err := src.checkBinary(s); err != nil {
					d.Errorf(v, "binary", "%v", err)
				}
			}
			def.Binary = s
		}
	}
	if v := m.Required("description"); v != nil {
		if s, ok := d.String(v, "description"); ok {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\r\n") {
				d.Errorf(v, "description", "must be one non-empty line")
			}
			def.Description = strings.TrimSpace(s)
		}
	}
	def.Settings = decodeSettings(d, m.Field("settings"), "settings", nil)
	def.OptionalSettings = decodeSettings(d, m.Field("optionalSettings"), "optionalSettings", def.Settings)
	decodeUnit(d, m.Required("unit"), &def.Unit, append(slices.Clone(def.Settings), def.OptionalSettings...))
	policyNode := m.Required("policy")
	if policyNode != nil {
		if s, ok := d.String(policyNode, "policy"); ok {
			def.Policy = s
			if !policyName.MatchString(s) {
				d.Errorf(policyNode, "policy", "invalid policy file name %q (a .json file beside component.yaml, such as policy.json)", s)
			} else if b, err := src.readPolicy(s); err != nil {
				d.Errorf(policyNode, "policy", "%v", err)
			} else if msg := checkPolicy(b); msg != "" {
				d.Errorf(policyNode, "policy", "%s: %s", s, msg)
			} else {
				def.policy = b
			}
		}
	}
	m.Finish()
	if err := d.Err(); err != nil {
		return nil, err
	}
	return def, nil
}

// decodeSettings reads the names of the variables a service must (or, for
// optionalSettings, may) set for this component (in the manifest's
// components.<name>.settings); the unit may refer to them. taken are names
// already declared.
func decodeSettings(d *strictyaml.Decoder, n *yaml.Node, field string, taken []string) []string {
	if n == nil {
		return nil
	}
	var out []string
	items, paths := d.Seq(n, field)
	for i, it := range items {
		s, ok := d.String(it, paths[i])
		switch {
		case !ok:
		case !envKeyRE.MatchString(s):
			d.Errorf(it, paths[i], "invalid variable name %q (use A-Z, 0-9 and _, not starting with a digit)", s)
		case envexpand.IsInstanceVar(s):
			d.Errorf(it, paths[i], "%s is set by kiln boot and cannot be a setting", s)
		case slices.Contains(out, s) || slices.Contains(taken, s):
			d.Errorf(it, paths[i], "setting %s is listed twice", s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func decodeUnit(d *strictyaml.Decoder, n *yaml.Node, u *Unit, settings []string) {
	if n == nil {
		return
	}
	m := d.Map(n, "unit")
	if v := m.Required("mode"); v != nil {
		if s, ok := d.String(v, "unit.mode"); ok {
			if s != ModeService && s != ModeSchedule {
				d.Errorf(v, "unit.mode", "unknown mode %q (use %s or %s)", s, ModeService, ModeSchedule)
			}
			u.Mode = s
		}
	}
	schedule, scheduleBad := m.Field("schedule"), false
	if schedule != nil {
		s, ok := d.String(schedule, "unit.schedule")
		switch {
		case !ok:
			scheduleBad = true
		case s == "":
		case u.Mode == ModeService:
			d.Errorf(schedule, "unit.schedule", "a service unit runs continuously; leave schedule empty or use mode schedule")
		default:
			dur, ok := d.Duration(schedule, "unit.schedule")
			if ok && dur <= 0 {
				d.Errorf(schedule, "unit.schedule", "must be greater than 0, got %s", dur)
			}
			scheduleBad = !ok || dur <= 0
			u.Schedule = dur
		}
	}
	if u.Mode == ModeSchedule && u.Schedule == 0 && !scheduleBad {
		at := schedule
		if at == nil {
			at = n
		}
		d.Errorf(at, "unit.schedule", "a schedule unit needs a period, a Go duration such as 24h")
	}
	u.Ports = []string{}
	if v := m.Field("ports"); v != nil {
		items, paths := d.Seq(v, "unit.ports")
		for i, it := range items {
			s, ok := d.String(it, paths[i])
			switch {
			case !ok:
			case !portRE.MatchString(s):
				d.Errorf(it, paths[i], "invalid port name %q (lower-case letters, digits and '-', starting with a letter)", s)
			case slices.Contains(u.Ports, s):
				d.Errorf(it, paths[i], "port %q is listed twice", s)
			default:
				u.Ports = append(u.Ports, s)
			}
		}
	}
	u.Env = map[string]string{}
	if v := m.Field("env"); v != nil {
		em := d.Map(v, "unit.env")
		for _, e := range em.Entries() {
			switch {
			case !envKeyRE.MatchString(e.Name):
				d.Errorf(e.Key, e.Path, "invalid variable name %q (use A-Z, 0-9 and _, not starting with a digit)", e.Name)
			case envexpand.IsInstanceVar(e.Name) || strings.HasPrefix(e.Name, "KILN_"):
				d.Errorf(e.Key, e.Path, "%s is set by kiln boot and reserved", e.Name)
			}
			if s, ok := d.Literal(e.Value, e.Path); ok {
				// Env values see the instance env and the settings only, not each other:
				// no ordering puzzles.
				if msg := checkRefs(s, settingsEnv(settings, nil)); msg != "" {
					d.Errorf(e.Value, e.Path, "%s", msg)
				}
				u.Env[e.Name] = s
			}
		}
	}
	u.Args = []string{}
	if v := m.Field("args"); v != nil {
		items, paths := d.Seq(v, "unit.args")
		for i, it := range items {
			if s, ok := d.Literal(it, paths[i]); ok {
				if msg := checkRefs(s, settingsEnv(settings, u.Env)); msg != "" {
					d.Errorf(it, paths[i], "%s", msg)
				}
				u.Args = append(u.Args, s)
			}
		}
	}
	u.Restart = RestartAlways
	if u.Mode == ModeSchedule {
		u.Restart = RestartOnFailure
	}
	if v := m.Field("restart"); v != nil {
		if s, ok := d.String(v, "unit.restart"); ok {
			switch s {
			case RestartAlways, RestartOnFailure, RestartNever:
				u.Restart = s
			default:
				d.Errorf(v, "unit.restart", "unknown restart policy %q (use %s, %s or %s)", s, RestartAlways, RestartOnFailure, RestartNever)
			}
		}
	}
	m.Finish()
}

// settingsEnv is the unit env a reference may use: the unit's own plus the settings,
// which the bake adds to it from the manifest.
func settingsEnv(settings []string, unitEnv map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range unitEnv {
		m[k] = v
	}
	for _, s := range settings {
		m[s] = ""
	}
	return m
}

// checkRefs validates the ${VAR} references in s: each must name an instance variable, a
// KILN_PORT_* variable or a key of unitEnv. It returns "" or what is wrong.
func checkRefs(s string, unitEnv map[string]string) string {
	_, err := expand(s, func(name string) (string, bool) {
		if envexpand.IsInstanceVar(name) {
			return "", true
		}
		_, ok := unitEnv[name]
		return "", ok
	})
	if err != nil {
		return err.Error()
	}
	return ""
}

// expand is envexpand.Expand with the catalog's messages, which say what is available.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	out, err := envexpand.Expand(s, lookup)
	var e *envexpand.Error
	if errors.As(err, &e) {
		switch {
		case e.Unset:
			return "", fmt.Errorf("unknown variable ${%s} (available: %s, KILN_PORT_<NAME> and, in args, the unit's env)", strictyaml.Short(e.Name()), strings.Join(envexpand.InstanceVars(), ", "))
		case !strings.HasSuffix(e.Ref, "}"):
			return "", fmt.Errorf("unclosed ${ in %q", strictyaml.Short(e.Ref))
		default:
			return "", fmt.Errorf("invalid variable reference %q (write ${NAME} with A-Z, 0-9 and _)", strictyaml.Short(e.Ref))
		}
	}
	return out, err
}

// Expand returns the unit's args and env with ${VAR} references replaced, as `kiln boot` does.
// instanceEnv is what boot gives every unit (InstanceEnv() and KILN_PORT_<NAME>); env values
// see only it, args also see the unit's own env. A '$' not followed by '{' is kept as it is.
func (u Unit) Expand(instanceEnv map[string]string) (args []string, env map[string]string, err error) {
	fromInstance := func(name string) (string, bool) {
		v, ok := instanceEnv[name]
		return v, ok
	}
	env = make(map[string]string, len(u.Env))
	for k, v := range u.Env {
		if env[k], err = expand(v, fromInstance); err != nil {
			return nil, nil, fmt.Errorf("expand env %s: %w", k, err)
		}
	}
	args = make([]string, len(u.Args))
	for i, a := range u.Args {
		args[i], err = expand(a, func(name string) (string, bool) {
			if v, ok := instanceEnv[name]; ok {
				return v, true
			}
			v, ok := env[name]
			return v, ok
		})
		if err != nil {
			return nil, nil, fmt.Errorf("expand args[%d]: %w", i, err)
		}
	}
	return args, env, nil
}

// checkPolicy checks that b is an IAM policy document (a JSON object with Version and
// Statement) that grants no blanket "*" action. It returns "" or what is wrong.
func checkPolicy(b []byte) string {
	var doc struct {
		Version   *string         `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Sprintf("not a JSON policy document: %v", err)
	}
	if doc.Version == nil || len(doc.Statement) == 0 {
		return "an IAM policy document needs Version and Statement"
	}
	var stmts []struct {
		Action any `json:"Action"`
	}
	if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		var one struct {
			Action any `json:"Action"`
		}
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return "Statement must be a list of statements or one statement object"
		}
		stmts = append(stmts, one)
	}
	for _, st := range stmts {
		actions := []any{st.Action}
		if list, ok := st.Action.([]any); ok {
			actions = list
		}
		for _, a := range actions {
			if a == "*" || a == "*:*" {
				return `grants every action ("*"); a component's policy must list the actions it needs`
			}
		}
	}
	return ""
}
