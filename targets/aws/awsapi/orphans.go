package awsapi

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// orphanPoll is how often RemoveOrphanGroup looks whether the group is gone.
var orphanPoll = 2 * time.Second

// RemoveOrphanGroup deletes the auto scaling group called name, with its instances, and
// waits until AWS no longer lists it; it reports whether there was one. It is for a group
// a killed Pulumi engine created but never recorded: no stack owns it, and AWS refuses
// to create a second group of its name. Never call it for a group a stack holds.
func (c *Clients) RemoveOrphanGroup(ctx context.Context, name string) (bool, error) {
	exists := func() (bool, error) {
		out, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return false, fmt.Errorf("auto scaling group %s: %w", name, err)
		}
		return len(out.AutoScalingGroups) > 0, nil
	}
	found, err := exists()
	if err != nil || !found {
		return false, err
	}
	_, err = c.AutoScaling.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
	if err != nil {
		return true, fmt.Errorf("delete the orphaned auto scaling group %s: %w", name, err)
	}
	for {
		if still, err := exists(); err != nil || !still {
			return true, err
		}
		select {
		case <-ctx.Done():
			return true, fmt.Errorf("the orphaned auto scaling group %s is still being deleted: %w", name, ctx.Err())
		case <-time.After(orphanPoll):
		}
	}
}
