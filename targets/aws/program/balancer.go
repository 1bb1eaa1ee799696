package program

import (
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Schemes of a created balancer.
const (
	SchemeInternetFacing = "internet-facing"
	SchemeInternal       = "internal"
)

// weighted is a slot's target group and its share of the traffic.
type weighted struct {
	arn    pulumi.StringOutput
	weight int
}

// front is the balancer in front of the fleet, created or existing.
type front struct {
	securityGroups pulumi.StringArrayInput // the balancer's groups, the only ones instances admit
	endpoint       pulumi.StringOutput     // the URL users reach the service at
	dimension      pulumi.StringOutput     // app/name/id, the balancer's CloudWatch dimension
	// route declares what forwards the traffic to the slots.
	route func(ctx *pulumi.Context, slots []weighted) error
}

// balancer declares the fleet's balancer and its security group, or reads the balancer of
// the existing listener the manifest names.
func balancer(ctx *pulumi.Context, in FleetInput, net network, tagsIn pulumi.StringMap) (front, error) {
	cfg := in.Settings.LoadBalancer
	if cfg.ListenerARN != "" {
		return sharedBalancer(ctx, in, cfg)
	}
	service := in.Spec.Service
	source, reach := "0.0.0.0/0", "the internet"
	if cfg.Scheme == SchemeInternal {
		source, reach = net.cidr, "the VPC"
	}
	sg, err := ec2.NewSecurityGroup(ctx, service+"-balancer", &ec2.SecurityGroupArgs{
		Description: pulumi.String("kiln: the balancer of " + service),
		VpcId:       pulumi.String(net.vpc),
		Ingress: ec2.SecurityGroupIngressArray{&ec2.SecurityGroupIngressArgs{
			Description: pulumi.String("the listener, from " + reach),
			Protocol:    pulumi.String("tcp"),
			FromPort:    pulumi.Int(cfg.Port),
			ToPort:      pulumi.Int(cfg.Port),
			CidrBlocks:  pulumi.StringArray{pulumi.String(source)},
		}},
		Egress: egressAll,
		Tags:   tagsIn,
	})
	if err != nil {
		return front{}, err
	}
	alb, err := lb.NewLoadBalancer(ctx, service, &lb.LoadBalancerArgs{
		LoadBalancerType:        pulumi.String("application"),
		Internal:                pulumi.Bool(cfg.Scheme == SchemeInternal),
		Subnets:                 pulumi.ToStringArray(in.Settings.Subnets),
		SecurityGroups:          pulumi.StringArray{sg.ID()},
		DropInvalidHeaderFields: pulumi.Bool(true),
		Tags:                    tagsIn,
	})
	if err != nil {
		return front{}, err
	}
	protocol := "HTTP"
	var cert pulumi.StringPtrInput
	if cfg.CertificateARN != "" {
		protocol, cert = "HTTPS", pulumi.String(cfg.CertificateARN)
	}
	return front{
		securityGroups: pulumi.StringArray{sg.ID()},
		endpoint:       alb.DnsName.ApplyT(func(dns string) string { return endpoint(protocol, dns, cfg.Port) }).(pulumi.StringOutput),
		dimension:      alb.ArnSuffix,
		route: func(ctx *pulumi.Context, slots []weighted) error {
			_, err := lb.NewListener(ctx, service, &lb.ListenerArgs{
				LoadBalancerArn: alb.Arn,
				Port:            pulumi.Int(cfg.Port),
				Protocol:        pulumi.String(protocol),
				CertificateArn:  cert,
				DefaultActions:  lb.ListenerDefaultActionArray{listenerAction(slots)},
				Tags:            tagsIn,
			})
			return err
		},
	}, nil
}

// sharedBalancer reads the balancer of an existing listener: the fleet adds a rule to the
// listener, forwarding every path to its slots.
func sharedBalancer(ctx *pulumi.Context, in FleetInput, cfg LoadBalancer) (front, error) {
	l, err := lb.LookupListener(ctx, &lb.LookupListenerArgs{Arn: &cfg.ListenerARN})
	if err != nil {
		return front{}, fmt.Errorf("listener %s: %w", cfg.ListenerARN, err)
	}
	b, err := lb.LookupLoadBalancer(ctx, &lb.LookupLoadBalancerArgs{Arn: &l.LoadBalancerArn})
	if err != nil {
		return front{}, fmt.Errorf("balancer of listener %s: %w", cfg.ListenerARN, err)
	}
	return front{
		securityGroups: pulumi.ToStringArray(b.SecurityGroups),
		endpoint:       pulumi.String(endpoint(l.Protocol, b.DnsName, l.Port)).ToStringOutput(),
		dimension:      pulumi.String(b.ArnSuffix).ToStringOutput(),
		route: func(ctx *pulumi.Context, slots []weighted) error {
			_, err := lb.NewListenerRule(ctx, in.Spec.Service, &lb.ListenerRuleArgs{
				ListenerArn: pulumi.String(cfg.ListenerARN),
				Priority:    pulumi.Int(cfg.RulePriority),
				Conditions: lb.ListenerRuleConditionArray{&lb.ListenerRuleConditionArgs{
					PathPattern: &lb.ListenerRuleConditionPathPatternArgs{Values: pulumi.StringArray{pulumi.String("/*")}},
				}},
				Actions: lb.ListenerRuleActionArray{ruleAction(slots)},
				Tags:    tagMap(in.Settings, TagService, in.Spec.Service),
			})
			return err
		},
	}, nil
}

// noTraffic is the balancer's answer while no slot takes traffic (a forward action needs
// a target group with a weight).
const (
	noTraffic     = "503"
	noTrafficBody = "no release takes traffic"
)

func carriesTraffic(slots []weighted) bool {
	return slices.ContainsFunc(slots, func(w weighted) bool { return w.weight > 0 })
}

// listenerAction forwards to the slots by their weights.
func listenerAction(slots []weighted) *lb.ListenerDefaultActionArgs {
	if !carriesTraffic(slots) {
		return &lb.ListenerDefaultActionArgs{Type: pulumi.String("fixed-response"), FixedResponse: &lb.ListenerDefaultActionFixedResponseArgs{
			StatusCode: pulumi.String(noTraffic), ContentType: pulumi.String("text/plain"), MessageBody: pulumi.String(noTrafficBody),
		}}
	}
	var targets lb.ListenerDefaultActionForwardTargetGroupArray
	for _, w := range slots {
		targets = append(targets, &lb.ListenerDefaultActionForwardTargetGroupArgs{Arn: w.arn, Weight: pulumi.Int(w.weight)})
	}
	return &lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"), Forward: &lb.ListenerDefaultActionForwardArgs{TargetGroups: targets}}
}

// ruleAction is listenerAction for a rule of an existing listener.
func ruleAction(slots []weighted) *lb.ListenerRuleActionArgs {
	if !carriesTraffic(slots) {
		return &lb.ListenerRuleActionArgs{Type: pulumi.String("fixed-response"), FixedResponse: &lb.ListenerRuleActionFixedResponseArgs{
			StatusCode: pulumi.String(noTraffic), ContentType: pulumi.String("text/plain"), MessageBody: pulumi.String(noTrafficBody),
		}}
	}
	var targets lb.ListenerRuleActionForwardTargetGroupArray
	for _, w := range slots {
		targets = append(targets, &lb.ListenerRuleActionForwardTargetGroupArgs{Arn: w.arn, Weight: pulumi.Int(w.weight)})
	}
	return &lb.ListenerRuleActionArgs{Type: pulumi.String("forward"), Forward: &lb.ListenerRuleActionForwardArgs{TargetGroups: targets}}
}

// endpoint is the URL of a listener: the port is left out when it is the protocol's own.
func endpoint(protocol, dns string, port int) string {
	scheme, std := "http", 80
	if protocol == "HTTPS" {
		scheme, std = "https", 443
	}
	if port == std {
		return scheme + "://" + dns
	}
	return fmt.Sprintf("%s://%s:%d", scheme, dns, port)
}
