package awsmodel

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// APIOptions shape the API model.
type APIOptions struct {
	// HealthyAfter is how long an instance stays "initial" in its target groups after
	// its group launched it (the group's create, or an update of its template or size).
	HealthyAfter time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// API is the model of the AWS APIs kiln reads at run time, answering from the model's
// cloud. It is an http.Handler: serve it on 127.0.0.1 and give its URL to the SDK
// clients as their BaseEndpoint.
type API struct {
	store *Store
	opts  APIOptions
}

// NewAPI returns the API model over the cloud in dir.
func NewAPI(dir string, opts APIOptions) *API {
	s := &Store{Dir: dir, Now: opts.Now}
	return &API{store: s, opts: opts}
}

// StartAPI serves the API model over dir on 127.0.0.1 until the test ends and returns
// its URL: the BaseEndpoint of both the elasticloadbalancingv2 and the autoscaling
// client (or AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2 and AWS_ENDPOINT_URL_AUTO_SCALING
// for a kiln process).
func StartAPI(t testing.TB, dir string, opts APIOptions) string {
	srv := httptest.NewServer(NewAPI(dir, opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

// ServeHTTP answers a query-protocol call: a signed POST form with an Action.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusForbidden, "MissingAuthenticationToken", "the request is not signed (SigV4)")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	var err error
	switch action := r.PostForm.Get("Action"); action {
	case "DescribeTargetHealth":
		err = a.describeTargetHealth(w, r.PostForm)
	case "DescribeAutoScalingGroups":
		err = a.describeAutoScalingGroups(w, r.PostForm)
	case "DescribeInstances":
		err = a.describeInstances(w, r.PostForm)
	case "DeleteAutoScalingGroup":
		err = a.deleteAutoScalingGroup(w, r.PostForm)
	default:
		writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the AWS model does not answer %q", action))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
	}
}

func (a *API) now() time.Time { return a.store.now() }

// instance is one instance the model says a group runs.
type instance struct {
	id, zone  string
	lifecycle string // Pending, InService, Terminating
	health    string // the target health: initial, healthy, draining
	reason    string
}

// instancesOf are a group's instances: its desired capacity (else its minimum size),
// identified by the group and when it launched them, spread over its subnets' zones.
func (a *API) instancesOf(g Record) []instance {
	n := num(g.Input("desiredCapacity"), num(g.Input("minSize"), 0))
	now := a.now()
	out := make([]instance, n)
	for i := range out {
		in := instance{
			id:   derivedID("i-", fmt.Sprintf("%s/%s/%d", g.ID, g.Launched.Format(time.RFC3339Nano), i)),
			zone: regionOf(g) + string(rune('a'+i%ModelSubnets)),
		}
		switch {
		case g.State == StateDeleting:
			in.lifecycle, in.health, in.reason = "Terminating", "draining", "Target.DeregistrationInProgress"
		case now.Before(g.Launched.Add(a.opts.HealthyAfter)):
			in.lifecycle, in.health, in.reason = "Pending", "initial", "Elb.InitialHealthChecking"
			if !now.Before(g.Ready) {
				in.lifecycle = "InService"
			}
		default:
			in.lifecycle, in.health = "InService", "healthy"
		}
		out[i] = in
	}
	return out
}

// regionOf is the region a record's ARN names.
func regionOf(r Record) string {
	if parts := strings.SplitN(str(r.Output("arn")), ":", 5); len(parts) == 5 && parts[3] != "" {
		return parts[3]
	}
	return "us-east-1"
}

// describeTargetHealth answers a target group's targets: the instances of every group
// attached to it, on the group's port.
func (a *API) describeTargetHealth(w http.ResponseWriter, form url.Values) error {
	arn := form.Get("TargetGroupArn")
	tgs, err := a.store.List(TypeTargetGroup)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(tgs, func(r Record) bool { return r.ID == arn })
	if i < 0 {
		writeError(w, http.StatusBadRequest, "TargetGroupNotFound", fmt.Sprintf("target groups '%s' not found", arn))
		return nil
	}
	port := num(tgs[i].Input("port"), 80)
	wanted := memberValues(form, "Targets.member.", ".Id")
	groups, err := a.store.List(TypeGroup)
	if err != nil {
		return err
	}
	resp := describeTargetHealthResponse{NS: elbv2NS, Metadata: responseMetadata{RequestID: randomHex(8)}}
	for _, g := range groups {
		if !slices.Contains(stringsOf(g.Input("targetGroupArns")), arn) {
			continue
		}
		for _, in := range a.instancesOf(g) {
			if len(wanted) > 0 && !slices.Contains(wanted, in.id) {
				continue
			}
			resp.Targets = append(resp.Targets, targetHealthXML{ID: in.id, Port: port, HealthCheckPort: strconv.Itoa(port),
				State: in.health, Reason: in.reason})
		}
	}
	writeXML(w, http.StatusOK, resp)
	return nil
}

// describeAutoScalingGroups answers the named groups (all when none is named).
func (a *API) describeAutoScalingGroups(w http.ResponseWriter, form url.Values) error {
	names := memberValues(form, "AutoScalingGroupNames.member.", "")
	groups, err := a.store.List(TypeGroup)
	if err != nil {
		return err
	}
	resp := describeAutoScalingGroupsResponse{NS: autoscalingNS, Metadata: responseMetadata{RequestID: randomHex(8)}}
	for _, g := range groups {
		name := str(g.Input("name"))
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		x := groupXML{Name: name, ARN: str(g.Output("arn")),
			MinSize: num(g.Input("minSize"), 0), MaxSize: num(g.Input("maxSize"), 0),
			DesiredCapacity: num(g.Input("desiredCapacity"), num(g.Input("minSize"), 0)), DefaultCooldown: 300,
			TargetGroupARNs: stringsOf(g.Input("targetGroupArns")), HealthCheckType: str(g.Input("healthCheckType")),
			HealthCheckGracePeriod: num(g.Input("healthCheckGracePeriod"), 300), CreatedTime: g.Created.UTC(),
			VPCZoneIdentifier: strings.Join(stringsOf(g.Input("vpcZoneIdentifiers")), ",")}
		if x.HealthCheckType == "" {
			x.HealthCheckType = "EC2"
		}
		if g.State == StateDeleting {
			x.Status = "Delete in progress"
		}
		if lt, ok := g.Input("launchTemplate").(map[string]any); ok {
			x.LaunchTemplate = &launchTemplateXML{ID: str(lt["id"]), Name: str(lt["name"]), Version: str(lt["version"])}
		}
		zones := map[string]bool{}
		for _, in := range a.instancesOf(g) {
			zones[in.zone] = true
			x.Instances = append(x.Instances, instanceXML{ID: in.id, AvailabilityZone: in.zone, LifecycleState: in.lifecycle,
				HealthStatus: "Healthy", LaunchTemplate: x.LaunchTemplate})
		}
		x.AvailabilityZones = slices.Sorted(maps.Keys(zones))
		resp.Groups = append(resp.Groups, x)
	}
	writeXML(w, http.StatusOK, resp)
	return nil
}

// memberValues are the values of a query-protocol list: prefix1suffix, prefix2suffix...
func memberValues(form url.Values, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+strconv.Itoa(i)+suffix]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

// stringsOf is a list input's strings.
func stringsOf(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, str(x))
	}
	return out
}
