// Package awsmodel is a MODEL of the pulumi-aws provider and of the AWS APIs kiln reads,
// for end-to-end tests. It is not the provider and it is not AWS: it talks to no account,
// and what it does is what kiln's tests need of AWS, written from AWS's and pulumi-aws's
// public documentation.
//
// Its "cloud" is a directory (Store, $KILN_AWSMODEL_DIR): one JSON file per resource,
// written atomically and readable by its owner only. Two things read and write it:
//
//   - the provider double (Provider; the plugin binary is cmd/pulumi-resource-aws): the
//     real Pulumi engine creates, updates, replaces and deletes resources of any aws type
//     through it. The types kiln's programs declare have AWS's identifiers, computed
//     outputs and replace-on properties (kinds.go); any other type is stored with its
//     inputs as outputs and an invented ID and ARN. Per-type latency (LatencyEnv) models
//     Image Builder bakes and instance boots; FailEnv injects failures.
//   - the API model (NewAPI): an HTTP server answering the Elastic Load Balancing v2, Auto
//     Scaling and EC2 calls kiln makes at run time (DescribeTargetHealth,
//     DescribeAutoScalingGroups, DescribeInstances) from the same directory: an auto scaling group's
//     desired capacity is that many instances in its target groups, initial and then
//     healthy some time after the group's create or update, draining while it is deleted.
package awsmodel
