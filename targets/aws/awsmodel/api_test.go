package awsmodel

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// testClock is a clock a test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sdkClients are the real AWS SDK clients kiln uses, pointed at url.
func sdkClients(url string) (*elbv2.Client, *autoscaling.Client) {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDMODEL", "model-secret", "")}
	return elbv2.NewFromConfig(cfg, func(o *elbv2.Options) { o.BaseEndpoint = aws.String(url) }),
		autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(url) })
}

func targetStates(t *testing.T, c *elbv2.Client, arn string) map[string]string {
	t.Helper()
	out, err := c.DescribeTargetHealth(context.Background(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, d := range out.TargetHealthDescriptions {
		if aws.ToInt32(d.Target.Port) != 8080 {
			t.Errorf("target %s on port %d, want the target group's 8080", aws.ToString(d.Target.Id), aws.ToInt32(d.Target.Port))
		}
		states[aws.ToString(d.Target.Id)] = string(d.TargetHealth.State)
	}
	return states
}

func allIn(states map[string]string, want string) bool {
	for _, s := range states {
		if s != want {
			return false
		}
	}
	return true
}

func TestTheAPIModelAnswersTheSDKFromTheProvidersCloud(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	p, store := newTestProvider(t, Behaviour{})
	store.Now = clock.Now
	tgARN, _ := create(t, p, TypeTargetGroup, "shop-blue", map[string]any{"port": 8080.0, "protocol": "HTTP"})
	ltID, _ := create(t, p, TypeLaunchTemplate, "shop-blue", map[string]any{"imageId": "ami-1"})
	groupIn := map[string]any{"name": "shop-blue", "desiredCapacity": 2.0, "minSize": 2.0, "maxSize": 2.0,
		"targetGroupArns": []any{tgARN}, "healthCheckType": "ELB", "vpcZoneIdentifiers": []any{"subnet-a", "subnet-b"},
		"launchTemplate": map[string]any{"id": ltID, "version": "1"}}
	groupID, groupOuts := create(t, p, TypeGroup, "shop-blue", groupIn)

	url := StartAPI(t, store.Dir, APIOptions{HealthyAfter: 30 * time.Second, Now: clock.Now})
	elb, asg := sdkClients(url)
	ctx := context.Background()

	states := targetStates(t, elb, tgARN)
	if len(states) != 2 || !allIn(states, "initial") {
		t.Fatalf("just after the group's create: %v, want 2 initial targets", states)
	}
	clock.Add(31 * time.Second)
	if states = targetStates(t, elb, tgARN); len(states) != 2 || !allIn(states, "healthy") {
		t.Fatalf("after HealthyAfter: %v, want 2 healthy", states)
	}

	groups, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"shop-blue"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.AutoScalingGroups) != 1 {
		t.Fatalf("%d groups, want 1", len(groups.AutoScalingGroups))
	}
	g := groups.AutoScalingGroups[0]
	if aws.ToString(g.AutoScalingGroupName) != "shop-blue" || aws.ToInt32(g.DesiredCapacity) != 2 || len(g.Instances) != 2 ||
		aws.ToString(g.LaunchTemplate.LaunchTemplateId) != ltID || g.TargetGroupARNs[0] != tgARN || aws.ToString(g.HealthCheckType) != "ELB" {
		t.Fatalf("group %+v", g)
	}
	for _, in := range g.Instances {
		if states[aws.ToString(in.InstanceId)] != "healthy" || in.LifecycleState != "InService" {
			t.Fatalf("instance %s is %s, its target %q", aws.ToString(in.InstanceId), in.LifecycleState, states[aws.ToString(in.InstanceId)])
		}
	}
	// The instances' private addresses, as the aws target reads them (by filter).
	ec2c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDMODEL", "model-secret", "")},
		func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
	ids := []string{aws.ToString(g.Instances[0].InstanceId), aws.ToString(g.Instances[1].InstanceId), "i-0000000000000000f"}
	out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: ids}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if ip := aws.ToString(in.PrivateIpAddress); !strings.HasPrefix(ip, "10.") {
				t.Errorf("instance %s has address %q", aws.ToString(in.InstanceId), ip)
			}
			got = append(got, aws.ToString(in.InstanceId))
		}
	}
	if len(got) != 2 || !slices.Contains(got, ids[0]) || !slices.Contains(got, ids[1]) {
		t.Fatalf("DescribeInstances of %v answered %v, want the group's two", ids, got)
	}
	if none, _ := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"nope"}}); len(none.AutoScalingGroups) != 0 {
		t.Fatalf("an unknown name answered %+v", none.AutoScalingGroups)
	}

	// A bigger group: three new instances, initial again.
	grown := map[string]any{}
	for k, v := range groupIn {
		grown[k] = v
	}
	grown["desiredCapacity"], grown["maxSize"] = 3.0, 3.0
	rec, _, _ := store.Get(TypeGroup, groupID)
	if _, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: rec.URN, Id: groupID, Olds: mustStruct(t, groupOuts),
		OldInputs: mustStruct(t, rec.Inputs), News: mustStruct(t, grown)}); err != nil {
		t.Fatal(err)
	}
	if states = targetStates(t, elb, tgARN); len(states) != 3 || !allIn(states, "initial") {
		t.Fatalf("after an update of the group's size: %v, want 3 initial", states)
	}

	// While the group is deleted its instances drain; then they are gone.
	p.behaviour.Latency = map[string]time.Duration{TypeGroup: 300 * time.Millisecond}
	deleted := make(chan error)
	go func() {
		_, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: rec.URN, Id: groupID})
		deleted <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for states = targetStates(t, elb, tgARN); !allIn(states, "draining") && time.Now().Before(deadline); states = targetStates(t, elb, tgARN) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(states) != 3 || !allIn(states, "draining") {
		t.Fatalf("while the group is deleted: %v, want 3 draining", states)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if states = targetStates(t, elb, tgARN); len(states) != 0 {
		t.Fatalf("after the group's delete: %v, want no targets", states)
	}

	_, err = elb.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgARN + "x")})
	var notFound *elbtypes.TargetGroupNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("an unknown target group: %v, want TargetGroupNotFound", err)
	}
}

func TestTheAPIModelRefusesUnsignedAndUnknownCalls(t *testing.T) {
	url := StartAPI(t, t.TempDir(), APIOptions{})
	resp, err := http.Post(url, "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeAutoScalingGroups&Version=2011-01-01"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned call: %d, want 403", resp.StatusCode)
	}
	_, asg := sdkClients(url)
	_, err = asg.DescribeScalingActivities(context.Background(), &autoscaling.DescribeScalingActivitiesInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidAction" {
		t.Fatalf("an action the model does not answer: %v", err)
	}
}
