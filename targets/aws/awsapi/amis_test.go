package awsapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/targets/aws/awsapi/awsfake"
)

func TestDeregisterAMIsRemovesImagesAndSnapshotsOnceAndAgainIsNoError(t *testing.T) {
	f := awsfake.New(t)
	f.AddImage(awsfake.Image{ID: "ami-0aaaaaaaaaaaaaaa1", Snapshots: []string{"snap-1", "snap-2"}})
	f.AddImage(awsfake.Image{ID: "ami-0bbbbbbbbbbbbbbb2", Snapshots: []string{"snap-3"}})
	f.AddImage(awsfake.Image{ID: "ami-0ccccccccccccccc3", Snapshots: []string{"snap-4"}}) // in use: not asked
	c := newClients(t, f)
	ask := []string{"ami-0aaaaaaaaaaaaaaa1", "ami-0bbbbbbbbbbbbbbb2", "ami-0ddddddddddddddd4"} // the last never existed
	done, err := c.DeregisterAMIs(context.Background(), ask)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, []string{"ami-0aaaaaaaaaaaaaaa1", "ami-0bbbbbbbbbbbbbbb2"}) {
		t.Fatalf("deregistered %v", done)
	}
	if got := f.Images(); !slices.Equal(got, []string{"ami-0ccccccccccccccc3"}) {
		t.Fatalf("AMIs left %v", got)
	}
	if got := f.Snapshots(); !slices.Equal(got, []string{"snap-4"}) {
		t.Fatalf("snapshots left %v", got)
	}
	// Each snapshot is deleted after its AMI is deregistered (the model refuses to delete
	// a snapshot an AMI uses).
	if n := len(f.CallsOf("DeleteSnapshot")); n != 3 {
		t.Fatalf("%d DeleteSnapshot calls", n)
	}

	// Again: nothing left to do, and no error.
	before := len(f.Calls())
	done, err = c.DeregisterAMIs(context.Background(), ask)
	if err != nil || len(done) != 0 {
		t.Fatalf("second run: %v, %v", done, err)
	}
	var actions []string
	for _, c := range f.Calls()[before:] {
		actions = append(actions, c.Action)
	}
	if !slices.Equal(actions, []string{"DescribeImages", "DescribeSnapshots"}) {
		t.Fatalf("second run made %v", actions)
	}
}

func TestDeregisterAMIsRefusesWhatIsNotAnAMIID(t *testing.T) {
	f := awsfake.New(t)
	c := newClients(t, f)
	for _, bad := range []string{"snap-0123456789abcdef0", "ami-", "ami-XYZ12345", "", "ami-0123456789abcdef0 ami-1"} {
		_, err := c.DeregisterAMIs(context.Background(), []string{"ami-0123456789abcdef0", bad})
		if err == nil || !strings.Contains(err.Error(), "not an AMI ID") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if n := len(f.Calls()); n != 0 {
		t.Fatalf("%d calls made for refused IDs", n)
	}
}

func TestDeregisterAMIsFinishesAfterAnInterruptedRun(t *testing.T) {
	f := awsfake.New(t)
	f.AddImage(awsfake.Image{ID: "ami-0aaaaaaaaaaaaaaa1", Snapshots: []string{"snap-1"}})
	c := newClients(t, f)
	// The first run's deletion of the snapshot is throttled beyond the budget.
	f.Throttle("DeleteSnapshot", attempts)
	if _, err := c.DeregisterAMIs(context.Background(), []string{"ami-0aaaaaaaaaaaaaaa1"}); err == nil || !strings.Contains(err.Error(), "snap-1") {
		t.Fatalf("err = %v, want the snapshot named", err)
	}
	if got := f.Snapshots(); !slices.Equal(got, []string{"snap-1"}) {
		t.Fatalf("snapshots %v", got)
	}
	if got := f.Images(); len(got) != 0 {
		t.Fatalf("AMIs %v", got)
	}
	// The next run finds the AMI gone and deletes the snapshot it left.
	if done, err := c.DeregisterAMIs(context.Background(), []string{"ami-0aaaaaaaaaaaaaaa1"}); err != nil || len(done) != 0 {
		t.Fatalf("second run: %v, %v", done, err)
	}
	if got := f.Snapshots(); len(got) != 0 {
		t.Fatalf("snapshots left %v", got)
	}
}
