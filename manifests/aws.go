package manifests

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/internal/strictyaml"
)

// What AWS itself accepts, checked here so that a manifest that validates does not fail
// minutes later in the middle of a Pulumi update.
const (
	maxAWSTags        = 40  // of AWS's 50 a resource, the rest are kiln's own
	maxAWSTagKey      = 128 // characters
	maxAWSTagValue    = 256
	maxAWSKeyName     = 255
	maxAWSRulePrio    = 50000
	maxAWSSSMParam    = 2048
	maxAWSHealthPath  = 1024
	maxAWSDeregDelay  = time.Hour // a target group's deregistration delay (rollout.drainTimeout)
	awsTagKiln        = "kiln:"   // kiln's own tags (service, slot, version...)
	awsTagReserved    = "aws:"
	awsSSMParentImage = "ssm:"
)

// An ALB target group's health check, in whole seconds.
var (
	awsHealthInterval  = [2]time.Duration{5 * time.Second, 300 * time.Second}
	awsHealthTimeout   = [2]time.Duration{2 * time.Second, 120 * time.Second}
	awsHealthThreshold = [2]int{2, 10}
)

var (
	awsRegionRE       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+){1,3}-[1-9][0-9]?$`)
	awsInstanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+(-[a-z0-9]+)*$`)
	awsPartitionRE    = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	awsAccountRE      = regexp.MustCompile(`^[0-9]{12}$`)
	awsCertificateRE  = regexp.MustCompile(`^certificate/[A-Za-z0-9-]+$`)
	awsListenerRE     = regexp.MustCompile(`^listener/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}/[0-9a-f]{16}$`)
	awsImageRE        = regexp.MustCompile(`^image/[a-z0-9_-]+/([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x)(/[0-9]+)?$`)
	awsSSMParamRE     = regexp.MustCompile(`^/[A-Za-z0-9_./-]+$`)
	awsBucketRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// awsID reports whether s is an EC2 resource ID with the given prefix (subnet, vpc, sg,
// ami): the prefix, '-' and 8 or 17 hexadecimal digits.
func awsID(prefix, s string) bool {
	hex, ok := strings.CutPrefix(s, prefix+"-")
	return ok && (len(hex) == 8 || len(hex) == 17) && strings.Trim(hex, "0123456789abcdef") == ""
}

// arn is an Amazon Resource Name split into its parts (after arn:PARTITION:).
type arn struct{ service, region, account, resource string }

func parseARN(s string) (arn, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !awsPartitionRE.MatchString(parts[1]) {
		return arn{}, false
	}
	return arn{parts[2], parts[3], parts[4], parts[5]}, true
}

// awsTarget decodes target.aws; key is its key, where AWSTarget.At points.
func (p *parser) awsTarget(key, n *yaml.Node) *AWSTarget {
	const path = "target.aws"
	at := &AWSTarget{
		InstanceType:           DefaultAWSInstanceType,
		ParentImage:            DefaultAWSParentImage,
		HealthCheckGracePeriod: DefaultAWSGracePeriod,
		At:                     Position{Line: key.Line, Column: key.Column},
	}
	m := p.d.Map(n, path)
	// region is the region ARNs must name; "" until it is known to be valid.
	region := ""
	if v := m.Required("region"); v != nil {
		at.Region = p.awsString(v, path+".region", func(s string) string {
			if awsRegionRE.MatchString(s) {
				region = s
				return ""
			}
			return fmt.Sprintf("invalid region %q (write an AWS region name such as eu-west-1 or us-gov-west-1)", strictyaml.Short(s))
		})
	}
	subnets, vpc := m.Field("subnets"), m.Field("vpc")
	switch {
	case !m.OK():
	case subnets != nil && vpc != nil:
		p.d.Errorf(m.Key("vpc"), path, "set only one of subnets (the subnets to use) or vpc (a VPC whose subnets kiln looks up)")
	case subnets == nil && vpc == nil:
		p.d.Errorf(n, path, "one of subnets (a list of subnet IDs) or vpc (a VPC ID whose subnets kiln looks up) is required")
	}
	if subnets != nil {
		at.Subnets = p.awsIDs(subnets, path+".subnets", "subnet", true)
	}
	if vpc != nil {
		at.VPC = p.awsString(vpc, path+".vpc", func(s string) string { return idProblem("vpc", "VPC", s) })
	}
	if v := m.Field("instanceType"); v != nil {
		at.InstanceType = p.awsString(v, path+".instanceType", func(s string) string {
			if awsInstanceTypeRE.MatchString(s) {
				return ""
			}
			return fmt.Sprintf("invalid instance type %q (write family.size, such as t3.micro or m7g.large)", strictyaml.Short(s))
		})
	}
	if v := m.Field("parentImage"); v != nil {
		at.ParentImage = p.awsString(v, path+".parentImage", func(s string) string { return parentImageProblem(s, region) })
	}
	existing := p.awsLoadBalancer(m.Field("loadBalancer"), &at.LoadBalancer, region)
	if v := m.Field("securityGroups"); v != nil {
		at.SecurityGroups = p.awsIDs(v, path+".securityGroups", "sg", false)
	}
	if v := m.Field("tags"); v != nil {
		at.Tags = p.awsTags(v, path+".tags")
	}
	if v := m.Field("artifactsBucket"); v != nil {
		at.ArtifactsBucket = p.awsString(v, path+".artifactsBucket", bucketProblem)
	}
	if v := m.Field("keyName"); v != nil {
		at.KeyName = p.awsString(v, path+".keyName", func(s string) string {
			if s != "" && len(s) <= maxAWSKeyName && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' }) {
				return ""
			}
			return fmt.Sprintf("invalid key pair name %q (an EC2 key pair name: 1 to %d printable ASCII characters)", strictyaml.Short(s), maxAWSKeyName)
		})
	}
	if v := m.Field("healthCheckGracePeriod"); v != nil {
		if d, ok := p.d.Duration(v, path+".healthCheckGracePeriod"); ok {
			if msg := wholeSeconds(d, 0, -1); msg != "" {
				p.d.Errorf(v, path+".healthCheckGracePeriod", "%s (an auto scaling group's grace period)", msg)
			}
			at.HealthCheckGracePeriod = d
		}
	}
	// An Application Load Balancer needs subnets in two availability zones; one subnet
	// is enough when kiln only adds a rule to an existing listener.
	if subnets != nil && subnets.Kind == yaml.SequenceNode && len(subnets.Content) == 1 && !existing {
		p.d.Errorf(subnets, path+".subnets", "the load balancer kiln creates needs subnets in at least two availability zones: list two or more, or give loadBalancer.listenerARN to use an existing one")
	}
	m.Finish()
	return at
}

// awsString decodes a string and reports problem(s) at n when that is not "".
func (p *parser) awsString(n *yaml.Node, path string, problem func(string) string) string {
	s, ok := p.d.String(n, path)
	if !ok {
		return ""
	}
	if msg := problem(s); msg != "" {
		p.d.Errorf(n, path, "%s", msg)
	}
	return s
}

// idProblem returns "" when s is an EC2 ID with the prefix, else what is wrong; what
// names the resource.
func idProblem(prefix, what, s string) string {
	if awsID(prefix, s) {
		return ""
	}
	return fmt.Sprintf("invalid %s ID %q (write %s-, then 8 or 17 hexadecimal digits, such as %s-0123456789abcdef0)", what, strictyaml.Short(s), prefix, prefix)
}

// awsIDs decodes a list of EC2 IDs with the given prefix, without duplicates; nonEmpty
// refuses an empty list.
func (p *parser) awsIDs(n *yaml.Node, path, prefix string, nonEmpty bool) []string {
	what := map[string]string{"subnet": "subnet", "sg": "security group"}[prefix]
	items, paths := p.d.Seq(n, path)
	if len(items) == 0 && nonEmpty && !isBroken(n) {
		p.d.Errorf(n, path, "at least one %s is required", what)
	}
	out := []string{}
	seen := map[string]int{}
	for i, it := range items {
		s, ok := p.d.String(it, paths[i])
		if !ok {
			continue
		}
		if first, dup := seen[s]; dup {
			p.d.Errorf(it, paths[i], "%s is listed twice (first at %s[%d])", strictyaml.Short(s), path, first)
			continue
		}
		seen[s] = i
		if msg := idProblem(prefix, what, s); msg != "" {
			p.d.Errorf(it, paths[i], "%s", msg)
		}
		out = append(out, s)
	}
	return out
}

// parentImageProblem checks target.aws.parentImage: an AMI ID, an Image Builder image ARN
// of the target's region, or ssm: and a parameter name.
func parentImageProblem(s, region string) string {
	const how = "write an AMI ID (ami-...), an Image Builder image ARN (arn:aws:imagebuilder:REGION:ACCOUNT:image/NAME/x.x.x) or ssm: and a parameter name (ssm:/aws/service/...)"
	switch {
	case strings.HasPrefix(s, "ami-"):
		if !awsID("ami", s) {
			return fmt.Sprintf("invalid AMI ID %q (ami-, then 8 or 17 hexadecimal digits)", strictyaml.Short(s))
		}
		return ""
	case strings.HasPrefix(s, awsSSMParentImage):
		name := strings.TrimPrefix(s, awsSSMParentImage)
		if !awsSSMParamRE.MatchString(name) || len(name) > maxAWSSSMParam || strings.Contains(name, "//") {
			return fmt.Sprintf("invalid parameter %q after ssm: (a parameter name starting with '/', such as %s)", strictyaml.Short(name), strings.TrimPrefix(DefaultAWSParentImage, awsSSMParentImage))
		}
		return ""
	case strings.HasPrefix(s, "arn:"):
		a, ok := parseARN(s)
		if !ok || a.service != "imagebuilder" || !awsImageRE.MatchString(a.resource) || !(awsAccountRE.MatchString(a.account) || a.account == "aws") {
			return fmt.Sprintf("invalid Image Builder image ARN %q (%s)", strictyaml.Short(s), "arn:aws:imagebuilder:REGION:ACCOUNT:image/NAME/x.x.x")
		}
		return regionProblem(a, region, "image")
	}
	return fmt.Sprintf("invalid parent image %q (%s)", strictyaml.Short(s), how)
}

// regionProblem reports an ARN of another region than the target's: AWS refuses it.
func regionProblem(a arn, region, what string) string {
	if region == "" || a.region == region {
		return ""
	}
	return fmt.Sprintf("the %s is in region %s, not in target.aws.region %s (AWS uses it only in its own region)", what, a.region, region)
}

// awsLoadBalancer decodes target.aws.loadBalancer, applying its defaults. It reports
// whether the manifest names an existing listener.
func (p *parser) awsLoadBalancer(n *yaml.Node, lb *AWSLoadBalancer, region string) bool {
	const path = "target.aws.loadBalancer"
	*lb = AWSLoadBalancer{Scheme: AWSSchemeInternetFacing, Port: 80}
	if n == nil {
		return false
	}
	m := p.d.Map(n, path)
	scheme, port, cert := m.Field("scheme"), m.Field("port"), m.Field("certificateARN")
	listener, prio := m.Field("listenerARN"), m.Field("rulePriority")
	if listener != nil {
		lb.ListenerARN = p.awsString(listener, path+".listenerARN", func(s string) string {
			a, ok := parseARN(s)
			switch {
			case ok && a.service == "elasticloadbalancing" && strings.HasPrefix(a.resource, "listener/net/"):
				return "a Network Load Balancer listener cannot weigh target groups by rule; give an Application Load Balancer's (listener/app/...)"
			case !ok || a.service != "elasticloadbalancing" || !awsAccountRE.MatchString(a.account) || !awsListenerRE.MatchString(a.resource):
				return fmt.Sprintf("invalid listener ARN %q (write an Application Load Balancer listener's ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID)", strictyaml.Short(s))
			}
			return regionProblem(a, region, "listener")
		})
		for _, name := range []string{"scheme", "port", "certificateARN"} {
			if k := m.Key(name); k != nil {
				p.d.Errorf(k, path+"."+name, "set only for a load balancer kiln creates: an existing listener (listenerARN) already has them")
			}
		}
		lb.Scheme, lb.Port = "", 0
		lb.RulePriority = DefaultAWSRulePriority
		if prio != nil {
			lb.RulePriority, _ = p.d.Int(prio, path+".rulePriority", 1, maxAWSRulePrio)
		}
		m.Finish()
		return true
	}
	if prio != nil {
		p.d.Errorf(m.Key("rulePriority"), path+".rulePriority", "set only with listenerARN: the listener of a load balancer kiln creates has no other rules")
	}
	if scheme != nil {
		if s, ok := p.d.String(scheme, path+".scheme"); ok {
			if s != AWSSchemeInternetFacing && s != AWSSchemeInternal {
				p.d.Errorf(scheme, path+".scheme", "invalid scheme %q (write %s or %s)", strictyaml.Short(s), AWSSchemeInternetFacing, AWSSchemeInternal)
			}
			lb.Scheme = s
		}
	}
	if cert != nil {
		lb.CertificateARN = p.awsString(cert, path+".certificateARN", func(s string) string {
			a, ok := parseARN(s)
			if !ok || a.service != "acm" || !awsAccountRE.MatchString(a.account) || !awsCertificateRE.MatchString(a.resource) {
				return fmt.Sprintf("invalid certificate ARN %q (write an ACM certificate's ARN: arn:aws:acm:REGION:ACCOUNT:certificate/ID)", strictyaml.Short(s))
			}
			return regionProblem(a, region, "certificate")
		})
		lb.Port = 443
	}
	if port != nil {
		lb.Port, _ = p.d.Int(port, path+".port", 1, 65535)
	}
	m.Finish()
	return false
}

// awsTags decodes target.aws.tags.
func (p *parser) awsTags(n *yaml.Node, path string) map[string]string {
	m := p.d.Map(n, path)
	out := map[string]string{}
	entries := m.Entries()
	if len(entries) > maxAWSTags {
		p.d.Errorf(entries[maxAWSTags].Key, path, "%d tags; at most %d (AWS allows 50 a resource, and kiln adds its own)", len(entries), maxAWSTags)
	}
	for _, e := range entries {
		lower := strings.ToLower(e.Name)
		switch {
		case e.Name == "" || len([]rune(e.Name)) > maxAWSTagKey || !tagText(e.Name):
			p.d.Errorf(e.Key, e.Path, "invalid tag key %q (1 to %d letters, digits, spaces and _ . : / = + - @)", strictyaml.Short(e.Name), maxAWSTagKey)
		case strings.HasPrefix(lower, awsTagReserved):
			p.d.Errorf(e.Key, e.Path, "tag keys starting with %s are reserved by AWS", awsTagReserved)
		case strings.HasPrefix(lower, awsTagKiln):
			p.d.Errorf(e.Key, e.Path, "tag keys starting with %s are kiln's own (it tags service, slot and version itself)", awsTagKiln)
		}
		if s, ok := p.d.Literal(e.Value, e.Path); ok {
			if len([]rune(s)) > maxAWSTagValue || !tagText(s) {
				p.d.Errorf(e.Value, e.Path, "invalid tag value %q (at most %d letters, digits, spaces and _ . : / = + - @)", strictyaml.Short(s), maxAWSTagValue)
			}
			out[e.Name] = s
		}
	}
	m.Finish()
	return out
}

// tagText reports whether s holds only what AWS accepts in tags across services.
func tagText(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Zs, r) && !strings.ContainsRune("_.:/=+-@", r)
	})
}

// bucketProblem checks S3's bucket naming rules (general purpose buckets).
func bucketProblem(s string) string {
	bad := func(why string) string {
		return fmt.Sprintf("invalid bucket name %q: %s (S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)", strictyaml.Short(s), why)
	}
	switch {
	case !awsBucketRE.MatchString(s):
		return bad("not a valid name")
	case strings.Contains(s, ".."):
		return bad("two adjacent periods")
	case net.ParseIP(s) != nil:
		return bad("formatted as an IP address")
	}
	for _, prefix := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(s, prefix) {
			return bad("the prefix " + prefix + " is reserved")
		}
	}
	for _, suffix := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(s, suffix) {
			return bad("the suffix " + suffix + " is reserved")
		}
	}
	return ""
}

// wholeSeconds returns "" when d is a whole number of seconds within [lo, hi] (hi < 0: no
// upper bound), else what is wrong.
func wholeSeconds(d, lo, hi time.Duration) string {
	switch {
	case d%time.Second != 0:
		return fmt.Sprintf("must be a whole number of seconds, got %s", d)
	case d < lo || hi >= 0 && d > hi:
		if hi < 0 {
			return fmt.Sprintf("must be at least %s, got %s", lo, d)
		}
		return fmt.Sprintf("must be between %s and %s, got %s", lo, hi, d)
	}
	return ""
}

// awsHealth holds fleet.health and rollout.drainTimeout to what an ALB target group
// accepts. Values the manifest leaves out got the aws defaults when they were decoded.
func (p *parser) awsHealth(h *Health, drain time.Duration) {
	check := func(path string, msg string) bool {
		if msg != "" && p.at[path] != nil {
			p.d.Errorf(p.at[path], path, "%s (the aws target's ALB health check)", msg)
		}
		return msg == ""
	}
	intervalOK := check("fleet.health.interval", wholeSeconds(h.Interval, awsHealthInterval[0], awsHealthInterval[1]))
	timeoutOK := check("fleet.health.timeout", wholeSeconds(h.Timeout, awsHealthTimeout[0], awsHealthTimeout[1]))
	if intervalOK && timeoutOK && h.Timeout >= h.Interval {
		switch {
		case p.at["fleet.health.interval"] == nil:
			check("fleet.health.timeout", fmt.Sprintf("timeout %s must be shorter than the interval, %s by default on aws; set fleet.health.interval", h.Timeout, h.Interval))
		default:
			check("fleet.health.timeout", fmt.Sprintf("timeout %s must be shorter than interval %s", h.Timeout, h.Interval))
		}
	}
	for _, t := range []struct {
		path string
		v    int
	}{{"fleet.health.healthyThreshold", h.HealthyThreshold}, {"fleet.health.unhealthyThreshold", h.UnhealthyThreshold}} {
		if t.v != 0 && (t.v < awsHealthThreshold[0] || t.v > awsHealthThreshold[1]) {
			check(t.path, fmt.Sprintf("must be between %d and %d, got %d", awsHealthThreshold[0], awsHealthThreshold[1], t.v))
		}
	}
	if len(h.Path) > maxAWSHealthPath {
		check("fleet.health.path", fmt.Sprintf("is %d bytes; at most %d", len(h.Path), maxAWSHealthPath))
	}
	if msg := wholeSeconds(drain, 0, maxAWSDeregDelay); msg != "" && p.at["rollout.drainTimeout"] != nil {
		p.d.Errorf(p.at["rollout.drainTimeout"], "rollout.drainTimeout", "%s (on aws, a target group's deregistration delay)", msg)
	}
}
