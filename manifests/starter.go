package manifests

import (
	"strings"
)

// starterTemplate is the manifest `kiln init` writes; SERVICE is replaced by the service name.
// It must stay valid against an empty catalog: TestStarterValidates decodes it.
const starterTemplate = `# kiln.yaml: how kiln bakes, boots and rolls out this service.
# Check it with "kiln validate"; every field is described below.
apiVersion: kiln/v1
# The service name: lower-case letters, digits and '-', at most 40, starting with a letter.
service: SERVICE
# The release version (semantic versioning). Bump it for every release you deploy.
version: 0.1.0

app:
  # The Go main package built at bake time, relative to this file (or an import path).
  main: .
  # Or a prebuilt executable instead of main:
  # binary: ./bin/SERVICE
  args: []
  # Extra environment. KILN_LISTEN (the address to listen on, HOST:PORT), HOST, PORT and
  # KILN_* are set by kiln. In args and env values, ${NAME} is replaced when the instance
  # boots: ${KILN_LISTEN}, ${PORT}, ${KILN_SERVICE}, ${KILN_INSTANCE}..., and in args
  # app.env's own. Write $${ for a literal ${ (a $ not followed by { stays as written).
  env: {}

# Baked components, each with a version constraint; kiln picks the newest match.
# components:
#   kiln-metrics: ">= 0.1, < 1.0"
#   kiln-backup: ">= 0.1, < 1.0"

fleet:
  # Instances per slot (1 to 100).
  size: 2
  # The app's port on an instance; the local target assigns its own and passes it in $PORT.
  port: 8080
  health:
    # An HTTP path that answers 2xx when the instance can take traffic.
    path: /healthz
    interval: 2s
    timeout: 1s
    healthyThreshold: 2
    unhealthyThreshold: 3

rollout:
  # blue-green: new instances boot beside the old ones; traffic moves once they are healthy.
  strategy: blue-green
  # How long any phase (booting, a step, an analysis) may take before kiln rolls back.
  progressDeadline: 10m
  # How long leaving instances keep serving open connections.
  drainTimeout: 15s
  # Traffic steps: % of traffic on the new release, strictly increasing, the last 100.
  # Each may pause (a duration, or "indefinite" until "kiln rollout promote") and run an
  # analysis template defined under analysis: below. Default: [{weight: 100}].
  # steps:
  #   - weight: 10
  #     pause: 30s
  #     analysis: errors
  #   - weight: 50
  #     pause: indefinite
  #   - weight: 100
  # Analyses run against the new slot before it gets traffic, and after it has 100%.
  # prePromotionAnalysis: errors
  # postPromotionAnalysis: errors
  # How long the old slot is kept after 100% (the instant-rollback window).
  scaleDownDelay: 30s
  # How long the new slot is kept after an abort (for inspection).
  abortScaleDownDelay: 0s

target:
  local:
    # The load balancer's address; port 0 picks a free port once.
    listen: 127.0.0.1:8080
    # Bounds of the load balancer (kiln lb); the values shown are the defaults.
    # lb:
    #   maxHeaderBytes: 65536          # larger request headers are answered 431
    #   readHeaderTimeout: 10s         # a client must send its headers within this
    #   idleTimeout: 60s               # keep-alive connections idle longer are closed
    #   requestTimeout: 60s            # deadline of one request (504); WebSockets are exempt
    #   upstreamHeaderTimeout: 30s     # wait for an instance's response headers (504)
    #   exposeTarget: false            # true adds X-Kiln-Target (the instance) to answers

images:
  # Releases kept for rollback (at least 2).
  keep: 5

# Where the stack's state lives (Pulumi state, lock, checkpoints, history). Default: the
# state directory on this machine. A team shares it in a bucket; --backend and
# $KILN_BACKEND override this line.
# backend: s3://my-kiln-state/shop?region=eu-west-1

# Analysis templates, read from the new instances' Prometheus endpoints (/metrics).
# A failed analysis rolls back; an inconclusive one (too little traffic) pauses for a human.
# analysis:
#   errors:
#     interval: 10s                # time between two measurements
#     count: 6                     # measurements to take (or consecutiveSuccessLimit)
#     failureLimit: 0              # failed measurements tolerated
#     consecutiveSuccessLimit: 0   # > 0: succeed after that many passes in a row
#     inconclusiveLimit: 1         # inconclusive measurements in a row that pause the rollout
#     metrics:
#       - name: error-ratio        # 5xx / all of http_requests_total{code}
#         errorRatio: {max: 0.01, window: 30s, minRequests: 20}
#       - name: p99                # from the http_request_duration_seconds histogram
#         latency: {quantile: 0.99, max: 250ms, window: 30s, minRequests: 20}
#       - name: queue              # any metric; aggregate: sum, max (default) or avg
#         metric: {name: queue_depth, max: 100, aggregate: max}
`

// Starter returns the commented starter manifest that `kiln init` writes, for the service
// named ServiceName(service). It decodes without error.
func Starter(service string) []byte {
	return []byte(strings.ReplaceAll(starterTemplate, "SERVICE", ServiceName(service)))
}

// ServiceName turns any text (typically a directory name) into a valid service name: lower
// case, runs of other characters replaced by '-', a leading letter ensured, cut to
// MaxServiceLength. Text without a letter or digit gives "app".
func ServiceName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	name := b.String()
	if name == "" {
		return "app"
	}
	if name[0] < 'a' || name[0] > 'z' {
		name = "app-" + name
	}
	if len(name) > MaxServiceLength {
		name = strings.TrimRight(name[:MaxServiceLength], "-")
	}
	return name
}
