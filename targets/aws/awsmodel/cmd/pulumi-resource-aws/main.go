// Command pulumi-resource-aws is a test double of the pulumi-aws resource provider
// plugin: a model of the provider and of AWS, for kiln's end-to-end tests. It is NOT the
// pulumi-aws provider and talks to no AWS account; its "cloud" is a directory of JSON
// files ($KILN_AWSMODEL_DIR). It lives under targets/aws/awsmodel so that kiln's builds
// never install it where a user's kiln would find it.
package main

import (
	"os"

	"github.com/kilnhq/kiln/targets/aws/awsmodel"
)

func main() { os.Exit(awsmodel.Main()) }
