package awsapi_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/targets/aws/awsapi"
	"github.com/kilnhq/kiln/targets/aws/awsapi/awsfake"
)

// attempts is the retry budget of one call in these tests.
const attempts = 4

// newClients returns clients of the model of AWS f, with a retry budget of attempts and
// no real wait between them, and no configuration from the machine's files.
func newClients(t *testing.T, f *awsfake.Server) *awsapi.Clients {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	c, err := awsapi.New(context.Background(), "eu-west-1", awsapi.Options{Endpoints: awsapi.All(f.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDMODEL", "model-secret", ""),
		MaxAttempts: attempts, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	blueTG  = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/hello-blue/0123456789abcdef"
	greenTG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/hello-green/fedcba9876543210"
)

func slots() []awsapi.SlotGroups {
	return []awsapi.SlotGroups{{Slot: fleet.Blue, TargetGroupARN: blueTG, Group: "hello-blue"},
		{Slot: fleet.Green, TargetGroupARN: greenTG, Group: "hello-green"}}
}

// oneLine is an instance's health as a line, for comparisons.
func oneLine(hs []fleet.InstanceHealth) []string {
	var out []string
	for _, h := range hs {
		out = append(out, strings.Join([]string{string(h.Slot), h.ID, h.Address, string(h.State), h.LastError}, " | "))
	}
	return out
}

func TestHealthMapsTargetStatesAndJoinsTheGroupsLifecycle(t *testing.T) {
	f := awsfake.New(t)
	f.TargetHealth(blueTG, []awsfake.Target{
		{ID: "i-b1", Port: 8080, State: "healthy"},
		{ID: "i-b2", Port: 8080, State: "unhealthy", Reason: "Target.ResponseCodeMismatch", Description: "Health checks failed with these codes: [500]"},
		{ID: "i-b3", Port: 8080, State: "draining", Reason: "Target.DeregistrationInProgress", Description: "Target deregistration is in progress"},
		{ID: "i-b4", Port: 8080, State: "unused", Reason: "Target.NotInUse", Description: "Target group is not configured to receive traffic from the load balancer"},
		{ID: "i-b5", Port: 8080, State: "unavailable", Reason: "Elb.InternalError"},
		{ID: "i-b6", Port: 8080, State: "unhealthy.draining", Reason: "Target.Timeout"},
	})
	f.Group("hello-blue", []awsfake.GroupInstance{{ID: "i-b1", Lifecycle: "InService"}, {ID: "i-b2", Lifecycle: "InService"}})
	f.TargetHealth(greenTG, []awsfake.Target{
		{ID: "i-g1", Port: 8080, State: "initial", Reason: "Elb.RegistrationInProgress", Description: "Target registration is in progress"},
		{ID: "i-g2", Port: 8080, State: "healthy"},
		{ID: "i-g3", Port: 8080, State: "healthy"},
	})
	f.Group("hello-green", []awsfake.GroupInstance{
		{ID: "i-g1", Lifecycle: "InService"},
		{ID: "i-g2", Lifecycle: "Pending:Wait"}, // healthy early, still launching
		{ID: "i-g3", Lifecycle: "Terminating"},  // healthy, being removed
		{ID: "i-g4", Lifecycle: "Pending"},      // launched, not registered
		{ID: "i-g5", Lifecycle: "InService"},    // in service, not registered yet
		{ID: "i-g6", Lifecycle: "Detaching"},    // leaving the group
	})
	for i, ip := range []string{"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "10.0.1.6"} {
		f.Address("i-b"+string(rune('1'+i)), ip)
	}
	f.Address("i-g1", "10.0.2.1")
	f.Address("i-g4", "10.0.2.4")

	hs, err := newClients(t, f).Health(context.Background(), slots())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"blue | i-b1 | 10.0.1.1:8080 | healthy | ",
		"blue | i-b2 | 10.0.1.2:8080 | unhealthy | Target.ResponseCodeMismatch: Health checks failed with these codes: [500]",
		"blue | i-b3 | 10.0.1.3:8080 | draining | Target.DeregistrationInProgress: Target deregistration is in progress",
		"blue | i-b4 | 10.0.1.4:8080 | unknown | unused: Target.NotInUse: Target group is not configured to receive traffic from the load balancer",
		"blue | i-b5 | 10.0.1.5:8080 | unknown | unavailable: Elb.InternalError",
		"blue | i-b6 | 10.0.1.6:8080 | draining | Target.Timeout",
		"green | i-g1 | 10.0.2.1:8080 | initial | Elb.RegistrationInProgress: Target registration is in progress",
		"green | i-g2 |  | initial | auto scaling: Pending:Wait",
		"green | i-g3 |  | draining | auto scaling: Terminating",
		"green | i-g4 | 10.0.2.4 | initial | auto scaling: Pending",
		"green | i-g5 |  | initial | in service, not registered with the target group yet",
		"green | i-g6 |  | draining | auto scaling: Detaching",
	}
	if got := oneLine(hs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("health:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// One read of each group and target group, one DescribeInstances for all, all signed
	// (the model refuses unsigned calls).
	for action, n := range map[string]int{"DescribeTargetHealth": 2, "DescribeAutoScalingGroups": 2, "DescribeInstances": 1} {
		if got := len(f.CallsOf(action)); got != n {
			t.Errorf("%s called %d times, want %d", action, got, n)
		}
	}
	if g := f.CallsOf("DescribeAutoScalingGroups")[1].Params.Get("AutoScalingGroupNames.member.1"); g != "hello-green" {
		t.Errorf("second group read is %q", g)
	}
}

func TestHealthOfASlotWithoutAGroupReadsOnlyItsTargetGroup(t *testing.T) {
	f := awsfake.New(t)
	f.TargetHealth(blueTG, []awsfake.Target{{ID: "i-b1", Port: 8080, State: "healthy"}})
	f.TargetHealth(greenTG, []awsfake.Target{{ID: "10.0.3.7", Port: 8080, State: "initial"}}) // a target group of type ip
	hs, err := newClients(t, f).Health(context.Background(), []awsapi.SlotGroups{
		{Slot: fleet.Blue, TargetGroupARN: blueTG}, {Slot: fleet.Green, TargetGroupARN: greenTG}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"blue | i-b1 |  | healthy | ", "green | 10.0.3.7 | 10.0.3.7:8080 | initial | "}
	if got := oneLine(hs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("health %q, want %q", got, want)
	}
	if n := len(f.CallsOf("DescribeAutoScalingGroups")); n != 0 {
		t.Fatalf("%d group reads for slots without groups", n)
	}
}

func TestHealthRetriesThrottlingWithinItsBudget(t *testing.T) {
	f := awsfake.New(t)
	f.TargetHealth(blueTG, []awsfake.Target{{ID: "i-b1", Port: 8080, State: "healthy"}})
	f.TargetHealth(greenTG, nil)
	f.Throttle("DescribeTargetHealth", attempts-1)
	f.Throttle("DescribeAutoScalingGroups", attempts-1)
	hs, err := newClients(t, f).Health(context.Background(), slots())
	if err != nil {
		t.Fatalf("throttled %d times within a budget of %d attempts: %v", attempts-1, attempts, err)
	}
	if len(hs) != 1 || hs[0].State != fleet.Healthy {
		t.Fatalf("health %v", oneLine(hs))
	}
	// Blue's read took every attempt, green's one.
	if n := len(f.CallsOf("DescribeTargetHealth")); n != attempts+1 {
		t.Fatalf("DescribeTargetHealth called %d times, want %d", n, attempts+1)
	}
}

func TestHealthFailsWhenThrottlingOutlastsTheBudget(t *testing.T) {
	f := awsfake.New(t)
	f.TargetHealth(blueTG, []awsfake.Target{{ID: "i-b1", Port: 8080, State: "healthy"}})
	f.Throttle("DescribeTargetHealth", attempts)
	_, err := newClients(t, f).Health(context.Background(), slots())
	if err == nil || !strings.Contains(err.Error(), "Throttling") || !strings.Contains(err.Error(), "slot blue") {
		t.Fatalf("err = %v, want a Throttling error naming the slot", err)
	}
	if n := len(f.CallsOf("DescribeTargetHealth")); n != attempts {
		t.Fatalf("DescribeTargetHealth called %d times, want the budget of %d", n, attempts)
	}
}

func TestHealthOfAMissingTargetGroupIsAnError(t *testing.T) {
	f := awsfake.New(t)
	_, err := newClients(t, f).Health(context.Background(), slots())
	if err == nil || !strings.Contains(err.Error(), "TargetGroupNotFound") {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.CallsOf("DescribeTargetHealth")); n != 1 {
		t.Fatalf("a missing target group was asked %d times: not an error to retry", n)
	}
}
