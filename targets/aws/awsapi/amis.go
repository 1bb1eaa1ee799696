package awsapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// amiID is the form of an AMI ID: anything else is refused before a call is made.
var amiID = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)

// DeregisterAMIs deregisters the AMIs ids and deletes their EBS snapshots, and returns
// the IDs it deregistered. Image Builder makes the AMIs, not the images stack, so once the
// stack no longer declares an image kiln removes its AMI. An AMI already gone is no error,
// and its snapshots are still looked for, so a run interrupted after deregistering is
// finished by the next; an ID not of the form ami-… refuses the whole call.
func (c *Clients) DeregisterAMIs(ctx context.Context, ids []string) ([]string, error) {
	for _, id := range ids {
		if !amiID.MatchString(id) {
			return nil, fmt.Errorf("deregister AMIs: %q is not an AMI ID (ami-…)", id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// By filter, not ImageIds: DescribeImages fails on any ID it does not know.
	out, err := c.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Filters: []ec2types.Filter{{Name: aws.String("image-id"), Values: ids}}})
	if err != nil {
		return nil, fmt.Errorf("describe AMIs %v: %w", ids, err)
	}
	var done []string
	found := map[string]bool{}
	for _, img := range out.Images {
		found[aws.ToString(img.ImageId)] = true
		id := aws.ToString(img.ImageId)
		if _, err := c.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId}); err != nil && !notFound(err) {
			return done, fmt.Errorf("deregister AMI %s: %w", id, err)
		}
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs == nil || bd.Ebs.SnapshotId == nil {
				continue
			}
			if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: bd.Ebs.SnapshotId}); err != nil && !notFound(err) {
				return done, fmt.Errorf("delete snapshot %s of AMI %s: %w", aws.ToString(bd.Ebs.SnapshotId), id, err)
			}
		}
		done = append(done, id)
	}
	var gone []string
	for _, id := range ids {
		if !found[id] {
			gone = append(gone, id)
		}
	}
	return done, c.deleteLeftSnapshots(ctx, gone)
}

// deleteLeftSnapshots deletes the snapshots of AMIs already deregistered, which a run
// interrupted between deregistering an AMI and deleting its snapshots leaves behind. EC2
// describes a snapshot CreateImage made (as Image Builder does) "Created by
// CreateImage(i-…) for ami-… from vol-…".
func (c *Clients) deleteLeftSnapshots(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var descs []string
	for _, id := range ids {
		descs = append(descs, "Created by CreateImage(*) for "+id, "Created by CreateImage(*) for "+id+" *")
	}
	p := ec2.NewDescribeSnapshotsPaginator(c.EC2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("description"), Values: descs}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("snapshots left by AMIs %v: %w", ids, err)
		}
		for _, s := range page.Snapshots {
			if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: s.SnapshotId}); err != nil && !notFound(err) {
				return fmt.Errorf("delete snapshot %s (%s): %w", aws.ToString(s.SnapshotId), aws.ToString(s.Description), err)
			}
		}
	}
	return nil
}

// notFound reports whether err is EC2 saying the AMI or snapshot does not exist.
func notFound(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound":
		return true
	}
	return false
}
