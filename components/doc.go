// Package components is the catalog of baked components: programs such as kiln-metrics and
// kiln-backup that kiln copies into an image beside the app and starts on every instance.
//
// Each component version is described by a component.yaml, decoded strictly (unknown fields,
// wrong types and bad values are reported with file:line:column and field path):
//
//	name: kiln-metrics            # component name, a DNS label; must match its directory
//	version: 0.1.0                # semantic version
//	binary: kiln-metrics          # executable name; builtins are built from ./cmd/<binary>
//	description: one line
//	settings: [TABLE]             # variables each service must set (components.<name>.settings)
//	optionalSettings: [ENDPOINT]  # variables a service may set there
//	unit:
//	  mode: service               # service (kept running) | schedule (run every `schedule`)
//	  schedule: ""                # for mode schedule: a Go duration such as 24h
//	  args: ["--listen", "127.0.0.1:${KILN_PORT_METRICS}"]
//	  env: {}                     # extra env; PORT and KILN_* are reserved
//	  ports: [metrics]            # named ports kiln allocates per instance -> KILN_PORT_METRICS
//	  restart: always             # always | on-failure | never (default: always for service,
//	                              # on-failure for schedule)
//	policy: policy.json           # least-privilege IAM policy document beside component.yaml
//
// Args and env values may refer to ${VAR}: the instance variables (InstanceEnv), any
// KILN_PORT_<NAME>, and (in args) the unit's own env; any other '$' is literal text. Loading
// rejects references to anything else; Unit.Expand performs the substitution the way
// `kiln boot` does.
//
// Builtin components live in components/builtin/<name>/ and are embedded in kiln (Builtin);
// other catalogs are directories laid out as <dir>/<name>/<version>/ (LoadDir).
package components
