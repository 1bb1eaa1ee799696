package awsapi

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	asgtypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/kilnhq/kiln/fleet"
)

// SlotGroups names what AWS holds of one slot: its target group, and its auto scaling
// group when the slot has instances.
type SlotGroups struct {
	Slot           fleet.Slot
	TargetGroupARN string
	Group          string // "" when the slot has no auto scaling group
}

// Health returns every instance of the slots as the load balancer sees it: the target
// health of each slot's target group, joined with its auto scaling group, so that an
// instance the group launched but has not registered yet, or is still launching or already
// terminating, shows too (initial or draining, its lifecycle state in LastError). An
// instance's Address is its private IP and the target's port.
func (c *Clients) Health(ctx context.Context, slots []SlotGroups) ([]fleet.InstanceHealth, error) {
	var out []fleet.InstanceHealth
	ports := map[string]int{} // instance ID -> target port, for the addresses
	for _, s := range slots {
		hs, err := c.slotHealth(ctx, s, ports)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	if err := c.addresses(ctx, out, ports); err != nil {
		return nil, err
	}
	fleet.SortHealth(out)
	return out, nil
}

func (c *Clients) slotHealth(ctx context.Context, s SlotGroups, ports map[string]int) ([]fleet.InstanceHealth, error) {
	var out []fleet.InstanceHealth
	byID := map[string]int{}
	if s.TargetGroupARN != "" {
		th, err := c.ELBv2.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(s.TargetGroupARN)})
		if err != nil {
			return nil, fmt.Errorf("target health of slot %s (%s): %w", s.Slot, s.TargetGroupARN, err)
		}
		for _, d := range th.TargetHealthDescriptions {
			h := targetHealth(s.Slot, d)
			byID[h.ID] = len(out)
			out = append(out, h)
			if d.Target != nil && d.Target.Port != nil {
				ports[h.ID] = int(*d.Target.Port)
			}
		}
	}
	if s.Group == "" {
		return out, nil
	}
	g, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{s.Group}})
	if err != nil {
		return nil, fmt.Errorf("auto scaling group %s of slot %s: %w", s.Group, s.Slot, err)
	}
	for _, grp := range g.AutoScalingGroups {
		for _, in := range grp.Instances {
			id := aws.ToString(in.InstanceId)
			i, registered := byID[id]
			if !registered {
				i = len(out)
				out = append(out, fleet.InstanceHealth{ID: id, Slot: s.Slot, State: fleet.Initial})
			}
			if !lifecycle(&out[i], in) && !registered {
				out[i].LastError = notRegistered
			}
		}
	}
	return out, nil
}

// targetHealth maps an ELB target's health onto fleet's states: ELB's words are the
// same but for unused and unavailable (no verdict: unknown) and unhealthy.draining.
func targetHealth(slot fleet.Slot, d elbtypes.TargetHealthDescription) fleet.InstanceHealth {
	h := fleet.InstanceHealth{Slot: slot, State: fleet.Unknown}
	if d.Target != nil {
		h.ID = aws.ToString(d.Target.Id)
	}
	th := d.TargetHealth
	if th == nil {
		return h
	}
	switch th.State {
	case elbtypes.TargetHealthStateEnumInitial:
		h.State = fleet.Initial
	case elbtypes.TargetHealthStateEnumHealthy:
		h.State = fleet.Healthy
	case elbtypes.TargetHealthStateEnumUnhealthy:
		h.State = fleet.Unhealthy
	case elbtypes.TargetHealthStateEnumDraining, elbtypes.TargetHealthStateEnumUnhealthyDraining:
		h.State = fleet.Draining
	}
	var why []string
	if th.State == elbtypes.TargetHealthStateEnumUnused || th.State == elbtypes.TargetHealthStateEnumUnavailable {
		why = append(why, string(th.State))
	}
	if th.Reason != "" {
		why = append(why, string(th.Reason))
	}
	if d := aws.ToString(th.Description); d != "" {
		why = append(why, d)
	}
	h.LastError = strings.Join(why, ": ")
	return h
}

// notRegistered is the LastError of an instance in service in its auto scaling group that
// its target group does not list (yet).
const notRegistered = "in service, not registered with the target group yet"

// lifecycle overrides the target's health with the auto scaling lifecycle of an instance
// that is not in service, and reports whether it did: a launching instance is initial
// whatever its early health checks say, a terminating or detaching one is draining.
func lifecycle(h *fleet.InstanceHealth, in asgtypes.Instance) bool {
	state := string(in.LifecycleState)
	switch {
	case strings.HasPrefix(state, "Pending"), state == string(asgtypes.LifecycleStateWarmedPending):
		h.State = fleet.Initial
	case strings.HasPrefix(state, "Terminating"), strings.HasPrefix(state, "Detach"), strings.HasPrefix(state, "EnteringStandby"),
		state == string(asgtypes.LifecycleStateStandby):
		h.State = fleet.Draining
	default:
		return false // in service: the target group's word stands
	}
	why := "auto scaling: " + state
	if h.LastError != "" {
		why += "; " + h.LastError
	}
	h.LastError = why
	return true
}

// addresses fills in each instance's private IP and target port; a target registered by
// IP is its own address.
func (c *Clients) addresses(ctx context.Context, hs []fleet.InstanceHealth, ports map[string]int) error {
	var ids []string
	for _, h := range hs {
		if strings.HasPrefix(h.ID, "i-") {
			ids = append(ids, h.ID)
		}
	}
	ips, err := c.privateIPs(ctx, ids)
	if err != nil {
		return err
	}
	for i, h := range hs {
		ip, port := ips[h.ID], ports[h.ID]
		if net.ParseIP(h.ID) != nil {
			ip = h.ID // a target group of type ip
		}
		switch {
		case ip != "" && port != 0:
			hs[i].Address = net.JoinHostPort(ip, strconv.Itoa(port))
		case ip != "":
			hs[i].Address = ip
		}
	}
	return nil
}

// privateIPs returns the private IP of each instance of ids, with one DescribeInstances
// (by filter, so that an instance already gone is no error).
func (c *Clients) privateIPs(ctx context.Context, ids []string) (map[string]string, error) {
	ips := map[string]string{}
	if len(ids) == 0 {
		return ips, nil
	}
	p := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: ids}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("addresses of the instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				ips[aws.ToString(in.InstanceId)] = aws.ToString(in.PrivateIpAddress)
			}
		}
	}
	return ips, nil
}
