package program

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
)

// The resource types of the fleet stack, as pulumi-aws names them.
const (
	typeSG       = "aws:ec2/securityGroup:SecurityGroup"
	typeLT       = "aws:ec2/launchTemplate:LaunchTemplate"
	typeASG      = "aws:autoscaling/group:Group"
	typeLB       = "aws:lb/loadBalancer:LoadBalancer"
	typeListener = "aws:lb/listener:Listener"
	typeRule     = "aws:lb/listenerRule:ListenerRule"
	typeTG       = "aws:lb/targetGroup:TargetGroup"
	typeParam    = "aws:ssm/parameter:Parameter"
)

func release(version, ami string, seed byte) *fleet.Release {
	return &fleet.Release{Version: version, Image: fleet.Image{
		Digest:   "sha256:" + strings.Repeat(string("0123456789abcdef"[seed%16]), 64),
		Location: ami,
	}}
}

var (
	v1 = release("1.0.0", "ami-0000000000000v1", 1)
	v2 = release("2.0.0", "ami-0000000000000v2", 2)
)

// fleetSpec is the shop's fleet with the given slots.
func fleetSpec(blue, green fleet.SlotSpec) fleet.Spec {
	return fleet.Spec{
		Service: "shop", Port: 8080, DrainTimeout: 30 * time.Second,
		Health: fleet.HealthCheck{Path: "/healthz", Interval: 10 * time.Second, Timeout: 5 * time.Second, HealthyThreshold: 3, UnhealthyThreshold: 2},
		Env:    map[string]string{"LOG_LEVEL": "info"},
		Slots:  map[fleet.Slot]fleet.SlotSpec{fleet.Blue: blue, fleet.Green: green},
	}
}

// The phases of a rollout from v1 (blue) to v2 (green).
var phases = []struct {
	name string
	spec fleet.Spec
}{
	{"first deploy", fleetSpec(fleet.SlotSpec{Release: v1, Size: 2}, fleet.SlotSpec{})},
	{"first release", fleetSpec(fleet.SlotSpec{Release: v1, Size: 2, Weight: 100}, fleet.SlotSpec{})},
	{"deploy", fleetSpec(fleet.SlotSpec{Release: v1, Size: 2, Weight: 100}, fleet.SlotSpec{Release: v2, Size: 3})},
	{"step 10/90", fleetSpec(fleet.SlotSpec{Release: v1, Size: 2, Weight: 90}, fleet.SlotSpec{Release: v2, Size: 3, Weight: 10})},
	{"step 50/50", fleetSpec(fleet.SlotSpec{Release: v1, Size: 2, Weight: 50}, fleet.SlotSpec{Release: v2, Size: 3, Weight: 50})},
	{"retired", fleetSpec(fleet.SlotSpec{Size: 2}, fleet.SlotSpec{Release: v2, Size: 3, Weight: 100})},
}

// phaseSpec returns the spec of the named phase.
func phaseSpec(name string) fleet.Spec {
	for _, ph := range phases {
		if ph.name == name {
			return ph.spec.Clone()
		}
	}
	panic("no phase " + name)
}

func fleetInput(spec fleet.Spec) FleetInput {
	return FleetInput{Spec: spec, Settings: testSettings()}
}

// forwardWeights reads the weights of the listener's forward action, per slot (by the
// order of fleet.Slots, which is how the target group ARNs are found in preview too).
func forwardWeights(t *testing.T, m *awsModel, targets []any) map[fleet.Slot]int {
	t.Helper()
	out := map[fleet.Slot]int{}
	for i, tg := range targets {
		tg := tg.(map[string]any)
		slot := fleet.Slots[i]
		if arn := tg["arn"]; arn != nil && arn != m.get(t, typeTG, "shop-"+string(slot)).Outputs["arn"].StringValue() {
			t.Errorf("forward target %d is %v, not the %s target group", i, arn, slot)
		}
		out[slot] = int(tg["weight"].(float64))
	}
	return out
}

// listenerWeights reads the weights the listener forwards with; nil when it forwards nothing
// (it answers 503 while no slot takes traffic).
func listenerWeights(t *testing.T, m *awsModel) map[fleet.Slot]int {
	t.Helper()
	acts := m.get(t, typeListener, "shop").in("defaultActions").([]any)
	if len(acts) != 1 {
		t.Fatalf("listener actions = %v", acts)
	}
	act := acts[0].(map[string]any)
	switch act["type"] {
	case "forward":
		return forwardWeights(t, m, act["forward"].(map[string]any)["targetGroups"].([]any))
	case "fixed-response":
		if code := act["fixedResponse"].(map[string]any)["statusCode"]; code != "503" {
			t.Errorf("listener answers %v without traffic", code)
		}
		return nil
	}
	t.Fatalf("listener action %v", act)
	return nil
}

func TestFleetPhases(t *testing.T) {
	for _, ph := range phases {
		var applied []string // the update's resources, which the preview must show
		for _, dryRun := range []bool{false, true} {
			t.Run(ph.name+map[bool]string{true: " preview", false: ""}[dryRun], func(t *testing.T) {
				m, out := run(t, Fleet(fleetInput(ph.spec)), dryRun)
				if !dryRun {
					applied = m.names()
				} else if !reflect.DeepEqual(m.names(), applied) {
					t.Errorf("preview declares %v, the update %v", m.names(), applied)
				}
				// Both target groups always; a template and a group only where instances are.
				for _, slot := range fleet.Slots {
					sp := ph.spec.Slots[slot]
					m.get(t, typeTG, "shop-"+string(slot))
					_, hasLT := m.ofType(typeLT)["shop-"+string(slot)]
					asg, hasASG := m.ofType(typeASG)["shop-"+string(slot)]
					if hasLT != !sp.Empty() || hasASG != !sp.Empty() {
						t.Fatalf("slot %s (empty %v): template %v, group %v", slot, sp.Empty(), hasLT, hasASG)
					}
					if sp.Empty() {
						continue
					}
					lt := m.get(t, typeLT, "shop-"+string(slot))
					if got := lt.str("imageId"); got != sp.Release.Image.Location {
						t.Errorf("slot %s launches %s, want %s", slot, got, sp.Release.Image.Location)
					}
					if asg.str("name") != "shop-"+string(slot) {
						t.Errorf("group name %q", asg.str("name"))
					}
					for _, k := range []string{"minSize", "maxSize", "desiredCapacity", "waitForElbCapacity"} {
						if asg.in(k) != float64(sp.Size) {
							t.Errorf("slot %s %s = %v, want %d", slot, k, asg.in(k), sp.Size)
						}
					}
					if asg.str("healthCheckType") != "ELB" || asg.in("healthCheckGracePeriod") != float64(90) {
						t.Errorf("group health check %v, grace %v", asg.in("healthCheckType"), asg.in("healthCheckGracePeriod"))
					}
					if !reflect.DeepEqual(asg.in("vpcZoneIdentifiers"), []any{"subnet-0a", "subnet-0b"}) {
						t.Errorf("group subnets %v", asg.in("vpcZoneIdentifiers"))
					}
					if !dryRun {
						tgARN := m.get(t, typeTG, "shop-"+string(slot)).Outputs["arn"].StringValue()
						if !reflect.DeepEqual(asg.in("targetGroupArns"), []any{tgARN}) {
							t.Errorf("group %s attached to %v, want %s", slot, asg.in("targetGroupArns"), tgARN)
						}
						if lt := asg.in("launchTemplate").(map[string]any); lt["id"] != modelID(typeLT, "shop-"+string(slot)) || lt["version"] != "1" {
							t.Errorf("group %s launches %v, want its slot's template, latest version", slot, lt)
						}
					}
				}
				weights := listenerWeights(t, m)
				want := map[fleet.Slot]int{fleet.Blue: ph.spec.Slots[fleet.Blue].Weight, fleet.Green: ph.spec.Slots[fleet.Green].Weight}
				if want[fleet.Blue]+want[fleet.Green] == 0 {
					want = nil
				}
				if !reflect.DeepEqual(weights, want) {
					t.Errorf("listener weights = %v, want %v", weights, want)
				}
				var applied fleet.Spec
				if err := json.Unmarshal([]byte(out[stacks.OutputSpec].(string)), &applied); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(applied, ph.spec) {
					t.Errorf("spec output = %+v, want %+v", applied, ph.spec)
				}
				if dryRun {
					return
				}
				groups := map[string]any{}
				for _, slot := range fleet.Slots {
					if !ph.spec.Slots[slot].Empty() {
						groups[string(slot)] = "shop-" + string(slot)
					}
				}
				if !reflect.DeepEqual(out[OutputGroups], groups) {
					t.Errorf("groups output = %v, want %v", out[OutputGroups], groups)
				}
				tgs, dims := map[string]any{}, map[string]any{}
				for _, slot := range fleet.Slots {
					tg := m.get(t, typeTG, "shop-"+string(slot))
					tgs[string(slot)], dims[string(slot)] = tg.Outputs["arn"].StringValue(), tg.Outputs["arnSuffix"].StringValue()
				}
				if !reflect.DeepEqual(out[OutputTargetGroups], tgs) || !reflect.DeepEqual(out[OutputTargetGroupDims], dims) {
					t.Errorf("target group outputs = %v %v, want %v %v", out[OutputTargetGroups], out[OutputTargetGroupDims], tgs, dims)
				}
				alb := m.get(t, typeLB, "shop")
				if want := "http://" + alb.Outputs["dnsName"].StringValue(); out[OutputEndpoint] != want {
					t.Errorf("endpoint = %v, want %s", out[OutputEndpoint], want)
				}
				if out[OutputLoadBalancer] != alb.Outputs["arnSuffix"].StringValue() {
					t.Errorf("balancer dimension = %v", out[OutputLoadBalancer])
				}
			})
		}
	}
}

// changes lists the resources added, removed or with other inputs between two runs.
func changes(a, b *awsModel) (added, removed, changed []string) {
	for k, r := range b.res {
		old, ok := a.res[k]
		switch {
		case !ok:
			added = append(added, k)
		case !reflect.DeepEqual(old.Inputs, r.Inputs):
			changed = append(changed, k)
		}
	}
	for k := range a.res {
		if _, ok := b.res[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}

func TestFleetPhaseChangesTouchOnlyWhatThePhaseChanges(t *testing.T) {
	runs := map[string]*awsModel{}
	for _, ph := range phases {
		runs[ph.name], _ = run(t, Fleet(fleetInput(ph.spec)), false)
	}
	listener := []string{typeListener + "::shop"}
	green := []string{typeASG + "::shop-green", typeLT + "::shop-green"}
	blue := []string{typeASG + "::shop-blue", typeLT + "::shop-blue"}
	for _, c := range []struct {
		from, to                string
		added, removed, changed []string
	}{
		{"first deploy", "first release", nil, nil, listener},
		{"first release", "deploy", green, nil, nil},
		{"deploy", "step 10/90", nil, nil, listener},
		{"step 10/90", "step 50/50", nil, nil, listener},
		{"step 50/50", "retired", nil, blue, listener},
	} {
		added, removed, changed := changes(runs[c.from], runs[c.to])
		if !reflect.DeepEqual(added, c.added) || !reflect.DeepEqual(removed, c.removed) || !reflect.DeepEqual(changed, c.changed) {
			t.Errorf("%s -> %s: added %v removed %v changed %v; want %v %v %v", c.from, c.to, added, removed, changed, c.added, c.removed, c.changed)
		}
	}
}

func TestFleetInstancesAreLockedDown(t *testing.T) {
	m, _ := run(t, Fleet(fleetInput(phaseSpec("step 10/90"))), false)
	balancerSG := m.get(t, typeSG, "shop-balancer")
	instSG := m.get(t, typeSG, "shop-instances")
	ingress := instSG.in("ingress").([]any)
	if len(ingress) != 1 {
		t.Fatalf("instance ingress = %v", ingress)
	}
	rule := ingress[0].(map[string]any)
	if rule["cidrBlocks"] != nil || rule["ipv6CidrBlocks"] != nil {
		t.Errorf("instances open to addresses: %v", rule)
	}
	if !reflect.DeepEqual(rule["securityGroups"], []any{modelID(typeSG, "shop-balancer")}) {
		t.Errorf("instances admit %v, want only the balancer's group", rule["securityGroups"])
	}
	if rule["fromPort"] != float64(8080) || rule["toPort"] != float64(8080) || rule["protocol"] != "tcp" {
		t.Errorf("instance ingress = %v, want tcp 8080", rule)
	}
	lbIngress := balancerSG.in("ingress").([]any)[0].(map[string]any)
	if !reflect.DeepEqual(lbIngress["cidrBlocks"], []any{"0.0.0.0/0"}) || lbIngress["fromPort"] != float64(80) {
		t.Errorf("internet-facing balancer ingress = %v", lbIngress)
	}
	alb := m.get(t, typeLB, "shop")
	if alb.in("internal") != false || !reflect.DeepEqual(alb.in("subnets"), []any{"subnet-0a", "subnet-0b"}) {
		t.Errorf("balancer internal %v subnets %v", alb.in("internal"), alb.in("subnets"))
	}
	for _, slot := range fleet.Slots {
		lt := m.get(t, typeLT, "shop-"+string(slot))
		md := lt.in("metadataOptions").(map[string]any)
		if md["httpTokens"] != "required" || md["httpPutResponseHopLimit"] != float64(1) {
			t.Errorf("slot %s metadata options %v, want IMDSv2 required, hop limit 1", slot, md)
		}
		if lt.in("keyName") != nil {
			t.Errorf("slot %s has SSH key %v", slot, lt.in("keyName"))
		}
		if got := lt.in("vpcSecurityGroupIds"); !reflect.DeepEqual(got, []any{modelID(typeSG, "shop-instances")}) {
			t.Errorf("slot %s groups %v", slot, got)
		}
		profile := m.get(t, typeProfile, "shop-instance").Outputs["arn"].StringValue()
		if got := lt.in("iamInstanceProfile").(map[string]any)["arn"]; got != profile {
			t.Errorf("slot %s profile %v, want %s", slot, got, profile)
		}
	}

	// Internal, with a key and extra groups as asked.
	in := fleetInput(phaseSpec("step 10/90"))
	in.Settings.LoadBalancer.Scheme = SchemeInternal
	in.Settings.KeyName = "ops"
	in.Settings.SecurityGroups = []string{"sg-0extra"}
	m, _ = run(t, Fleet(in), false)
	lbIngress = m.get(t, typeSG, "shop-balancer").in("ingress").([]any)[0].(map[string]any)
	if !reflect.DeepEqual(lbIngress["cidrBlocks"], []any{modelVPCCIDR}) {
		t.Errorf("internal balancer ingress = %v, want the VPC's %s", lbIngress["cidrBlocks"], modelVPCCIDR)
	}
	if m.get(t, typeLB, "shop").in("internal") != true {
		t.Error("balancer not internal")
	}
	lt := m.get(t, typeLT, "shop-blue")
	if lt.in("keyName") != "ops" || !reflect.DeepEqual(lt.in("vpcSecurityGroupIds"), []any{modelID(typeSG, "shop-instances"), "sg-0extra"}) {
		t.Errorf("key %v groups %v", lt.in("keyName"), lt.in("vpcSecurityGroupIds"))
	}
}

func TestFleetTargetGroupsCheckAsTheManifestSays(t *testing.T) {
	m, _ := run(t, Fleet(fleetInput(phaseSpec("first release"))), false)
	for _, slot := range fleet.Slots {
		tg := m.get(t, typeTG, "shop-"+string(slot))
		if tg.in("port") != float64(8080) || tg.str("protocol") != "HTTP" || tg.str("vpcId") != modelVPC || tg.in("deregistrationDelay") != float64(30) {
			t.Errorf("target group %s: port %v protocol %v vpc %v drain %v", slot, tg.in("port"), tg.in("protocol"), tg.in("vpcId"), tg.in("deregistrationDelay"))
		}
		hc := tg.in("healthCheck").(map[string]any)
		want := map[string]any{"enabled": true, "protocol": "HTTP", "port": "traffic-port", "path": "/healthz", "interval": float64(10), "timeout": float64(5),
			"healthyThreshold": float64(3), "unhealthyThreshold": float64(2), "matcher": "200-399"}
		if !reflect.DeepEqual(hc, want) {
			t.Errorf("health check %v, want %v", hc, want)
		}
	}
}

func TestFleetTagsEverything(t *testing.T) {
	m, _ := run(t, Fleet(fleetInput(phaseSpec("step 10/90"))), false)
	for k, r := range m.res {
		if r.Type == typeASG {
			continue // below
		}
		if _, takes := r.Inputs["tags"]; !takes {
			if r.Type != typeRolePolicy {
				t.Errorf("%s has no tags", k)
			}
			continue
		}
		tags := r.in("tags").(map[string]any)
		if tags[TagService] != "shop" || tags["team"] != "shop" {
			t.Errorf("%s tags %v", k, tags)
		}
		if r.Type == typeLT {
			slot := strings.TrimPrefix(r.Name, "shop-")
			rel := phaseSpec("step 10/90").Slots[fleet.Slot(slot)].Release
			if tags[TagSlot] != slot || tags[TagVersion] != rel.Version || tags[TagDigest] != rel.Image.Digest {
				t.Errorf("%s tags %v", k, tags)
			}
		} else if tags[TagVersion] != nil {
			// Shared resources carry no release: a release would change them.
			t.Errorf("shared %s tagged with a version: %v", k, tags)
		}
	}
	for _, slot := range fleet.Slots {
		asg := m.get(t, typeASG, "shop-"+string(slot))
		got := map[string]any{}
		for _, tag := range asg.in("tags").([]any) {
			tag := tag.(map[string]any)
			if tag["propagateAtLaunch"] != true {
				t.Errorf("group %s tag %v not propagated", slot, tag)
			}
			got[tag["key"].(string)] = tag["value"]
		}
		rel := phaseSpec("step 10/90").Slots[slot].Release
		want := map[string]any{"team": "shop", TagService: "shop", TagSlot: string(slot), TagVersion: rel.Version, TagDigest: rel.Image.Digest, "Name": "shop-" + string(slot)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("group %s tags %v, want %v", slot, got, want)
		}
	}
}

func TestFleetOnAnExistingListener(t *testing.T) {
	in := fleetInput(phaseSpec("step 10/90"))
	in.Settings.LoadBalancer = LoadBalancer{ListenerARN: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba", RulePriority: 40}
	m, out := run(t, Fleet(in), false)
	if n := len(m.ofType(typeLB)) + len(m.ofType(typeListener)); n != 0 {
		t.Errorf("%d balancer resources declared beside an existing listener", n)
	}
	if _, ok := m.ofType(typeSG)["shop-balancer"]; ok {
		t.Error("a balancer group declared beside an existing listener")
	}
	rule := m.get(t, typeRule, "shop")
	if rule.str("listenerArn") != in.Settings.LoadBalancer.ListenerARN || rule.in("priority") != float64(40) {
		t.Errorf("rule on %v priority %v", rule.in("listenerArn"), rule.in("priority"))
	}
	cond := rule.in("conditions").([]any)
	if !reflect.DeepEqual(cond, []any{map[string]any{"pathPattern": map[string]any{"values": []any{"/*"}}}}) {
		t.Errorf("rule conditions %v", cond)
	}
	act := rule.in("actions").([]any)[0].(map[string]any)
	weights := forwardWeights(t, m, act["forward"].(map[string]any)["targetGroups"].([]any))
	if want := map[fleet.Slot]int{fleet.Blue: 90, fleet.Green: 10}; act["type"] != "forward" || !reflect.DeepEqual(weights, want) {
		t.Errorf("rule action %v weights %v", act["type"], weights)
	}
	ingress := m.get(t, typeSG, "shop-instances").in("ingress").([]any)[0].(map[string]any)
	if !reflect.DeepEqual(ingress["securityGroups"], []any{"sg-0sharedlb"}) {
		t.Errorf("instances admit %v, want the shared balancer's group", ingress["securityGroups"])
	}
	if out[OutputEndpoint] != "https://shared-1234.eu-west-1.elb.amazonaws.com" || out[OutputLoadBalancer] != "app/shared/0123456789abcdef" {
		t.Errorf("endpoint %v dimension %v", out[OutputEndpoint], out[OutputLoadBalancer])
	}

	// A traffic step changes only the rule.
	step, _ := run(t, Fleet(FleetInput{Spec: phaseSpec("step 50/50"), Settings: in.Settings}), false)
	if _, _, changed := changes(m, step); !reflect.DeepEqual(changed, []string{typeRule + "::shop"}) {
		t.Errorf("a step changed %v", changed)
	}

	// Before any slot takes traffic, the rule answers 503.
	idle, _ := run(t, Fleet(FleetInput{Spec: phaseSpec("first deploy"), Settings: in.Settings}), false)
	if act := idle.get(t, typeRule, "shop").in("actions").([]any)[0].(map[string]any); act["type"] != "fixed-response" || act["fixedResponse"].(map[string]any)["statusCode"] != "503" {
		t.Errorf("rule without traffic: %v", act)
	}
}

func TestFleetHTTPSListener(t *testing.T) {
	in := fleetInput(phaseSpec("first deploy"))
	in.Settings.LoadBalancer = LoadBalancer{Scheme: SchemeInternetFacing, Port: 8443, CertificateARN: "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}
	m, out := run(t, Fleet(in), false)
	l := m.get(t, typeListener, "shop")
	if l.str("protocol") != "HTTPS" || l.str("certificateArn") != in.Settings.LoadBalancer.CertificateARN || l.in("port") != float64(8443) {
		t.Errorf("listener %v %v %v", l.in("protocol"), l.in("certificateArn"), l.in("port"))
	}
	if want := "https://" + m.get(t, typeLB, "shop").Outputs["dnsName"].StringValue() + ":8443"; out[OutputEndpoint] != want {
		t.Errorf("endpoint %v, want %s", out[OutputEndpoint], want)
	}
}

func TestFleetRefusesBadInput(t *testing.T) {
	for name, mutate := range map[string]func(*FleetInput){
		"weights": func(in *FleetInput) {
			in.Spec = fleetSpec(fleet.SlotSpec{Release: v1, Size: 1, Weight: 60}, fleet.SlotSpec{})
		},
		"no AMI": func(in *FleetInput) {
			in.Spec = fleetSpec(fleet.SlotSpec{Release: release("1", "", 1), Size: 1, Weight: 100}, fleet.SlotSpec{})
		},
		"no subnets": func(in *FleetInput) { in.Settings.Subnets = nil },
		"port":       func(in *FleetInput) { in.NamedPorts = map[string]int{"metrics": 8080} },
	} {
		t.Run(name, func(t *testing.T) {
			in := fleetInput(phaseSpec("first deploy"))
			mutate(&in)
			if _, _, err := runErr(Fleet(in), false); err == nil {
				t.Error("no error")
			}
		})
	}
}
