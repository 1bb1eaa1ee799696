package awsfake

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Target is one registered target of a target group, as the model of DescribeTargetHealth
// answers it.
type Target struct {
	ID          string // instance ID
	Port        int
	State       string // initial, healthy, unhealthy, unused, draining, unavailable
	Reason      string // e.g. Target.ResponseCodeMismatch
	Description string // e.g. Health checks failed with these codes: [500]
}

// GroupInstance is one instance of an auto scaling group, as the model of
// DescribeAutoScalingGroups answers it.
type GroupInstance struct {
	ID        string
	Lifecycle string // Pending, Pending:Wait, InService, Terminating, ...
	Health    string // Healthy or Unhealthy ("" is Healthy)
}

// Image is an AMI of the model of EC2, with the snapshots of its block devices.
type Image struct {
	ID        string
	Snapshots []string
}

// TargetHealth scripts DescribeTargetHealth of the target group arn: each call answers
// the next step, and the last step repeats. A target group never scripted answers
// TargetGroupNotFound.
func (f *Server) TargetHealth(arn string, steps ...[]Target) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[arn] = &sequence[[]Target]{steps: steps}
}

// Group scripts DescribeAutoScalingGroups of the group name, as TargetHealth. A group
// never scripted does not exist (AWS leaves it out of the answer).
func (f *Server) Group(name string, steps ...[]GroupInstance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[name] = &sequence[[]GroupInstance]{steps: steps}
}

// Address sets the private IP address DescribeInstances answers for an instance.
func (f *Server) Address(instance, ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addresses[instance] = ip
}

// AddImage registers an AMI and creates its snapshots, described as CreateImage (which
// Image Builder uses) describes them.
func (f *Server) AddImage(img Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[img.ID] = img
	for _, s := range img.Snapshots {
		f.snapshots[s] = "Created by CreateImage(i-0123456789abcdef0) for " + img.ID
	}
}

// Images returns the IDs of the AMIs that exist, sorted.
func (f *Server) Images() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.images))
}

// Snapshots returns the IDs of the snapshots that exist, sorted.
func (f *Server) Snapshots() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.snapshots))
}

// API versions of the query protocol services, which tell them apart on one URL.
const (
	versionELBv2       = "2015-12-01"
	versionAutoScaling = "2011-01-01"
	versionEC2         = "2016-11-15"
)

// queryError is an error of the AWS query protocol (ELBv2, Auto Scaling).
type queryError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Type    string   `xml:"Error>Type"`
	Code    string   `xml:"Error>Code"`
	Message string   `xml:"Error>Message"`
	ID      string   `xml:"RequestId"`
}

// ec2Error is an error of the EC2 query protocol.
type ec2Error struct {
	XMLName xml.Name `xml:"Response"`
	Code    string   `xml:"Errors>Error>Code"`
	Message string   `xml:"Errors>Error>Message"`
	ID      string   `xml:"RequestID"`
}

func (f *Server) serveQuery(w http.ResponseWriter, r *http.Request, form url.Values) {
	action, version := form.Get("Action"), form.Get("Version")
	service := map[string]string{versionELBv2: "elbv2", versionAutoScaling: "autoscaling", versionEC2: "ec2"}[version]
	i, throttled := f.record(Call{Service: service, Action: action, Params: form, AccessKey: accessKey(r)})
	status, answer := http.StatusOK, any(nil)
	switch {
	case service == "":
		f.t.Errorf("awsfake: query call %s of unknown API version %q", action, version)
		status, answer = http.StatusBadRequest, queryError{Type: "Sender", Code: "InvalidAction", Message: "unknown version"}
	case throttled && service == "ec2":
		status, answer = http.StatusServiceUnavailable, ec2Error{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	case throttled:
		status, answer = http.StatusBadRequest, queryError{Type: "Sender", Code: "Throttling", Message: "Rate exceeded"}
	default:
		status, answer = f.answerQuery(action, form)
	}
	f.answered(i, status)
	out, err := xml.Marshal(answer)
	if err != nil {
		f.t.Errorf("awsfake: encode %s: %v", action, err)
		return
	}
	write(w, "text/xml", status, append([]byte(xml.Header), out...))
}

func (f *Server) answerQuery(action string, form url.Values) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch action {
	case "DescribeTargetHealth":
		return f.describeTargetHealth(form)
	case "DescribeAutoScalingGroups":
		return f.describeGroups(form)
	case "DescribeInstances":
		return f.describeInstances(form)
	case "DescribeImages":
		return f.describeImages(form)
	case "DeregisterImage":
		return f.deregisterImage(form)
	case "DeleteSnapshot":
		return f.deleteSnapshot(form)
	case "DescribeSnapshots":
		return f.describeSnapshots(form)
	}
	f.t.Errorf("awsfake: action %s is not modelled", action)
	return http.StatusBadRequest, queryError{Type: "Sender", Code: "InvalidAction", Message: action + " is not modelled"}
}

// members returns the values of a list parameter: prefix.1, prefix.2, ...
func members(form url.Values, prefix string) []string {
	var out []string
	for n := 1; form.Has(prefix + "." + strconv.Itoa(n)); n++ {
		out = append(out, form.Get(prefix+"."+strconv.Itoa(n)))
	}
	return out
}

// filterValues returns the values of the EC2 filter called name.
func filterValues(form url.Values, name string) []string {
	for n := 1; form.Has(fmt.Sprintf("Filter.%d.Name", n)); n++ {
		if form.Get(fmt.Sprintf("Filter.%d.Name", n)) == name {
			return members(form, fmt.Sprintf("Filter.%d.Value", n))
		}
	}
	return nil
}

type targetHealthResponse struct {
	XMLName      xml.Name           `xml:"DescribeTargetHealthResponse"`
	Descriptions []targetHealthDesc `xml:"DescribeTargetHealthResult>TargetHealthDescriptions>member"`
}

type targetHealthDesc struct {
	ID          string `xml:"Target>Id"`
	Port        int    `xml:"Target>Port"`
	State       string `xml:"TargetHealth>State"`
	Reason      string `xml:"TargetHealth>Reason,omitempty"`
	Description string `xml:"TargetHealth>Description,omitempty"`
}

func (f *Server) describeTargetHealth(form url.Values) (int, any) {
	arn := form.Get("TargetGroupArn")
	seq, ok := f.targets[arn]
	if !ok {
		return http.StatusBadRequest, queryError{Type: "Sender", Code: "TargetGroupNotFound", Message: "Target groups '" + arn + "' not found"}
	}
	var resp targetHealthResponse
	for _, t := range seq.take() {
		resp.Descriptions = append(resp.Descriptions, targetHealthDesc(t))
	}
	return http.StatusOK, resp
}

type groupsResponse struct {
	XMLName xml.Name   `xml:"DescribeAutoScalingGroupsResponse"`
	Groups  []xmlGroup `xml:"DescribeAutoScalingGroupsResult>AutoScalingGroups>member"`
}

type xmlGroup struct {
	Name      string        `xml:"AutoScalingGroupName"`
	Instances []xmlInstance `xml:"Instances>member"`
}

type xmlInstance struct {
	ID        string `xml:"InstanceId"`
	Lifecycle string `xml:"LifecycleState"`
	Health    string `xml:"HealthStatus"`
}

func (f *Server) describeGroups(form url.Values) (int, any) {
	var resp groupsResponse
	for _, name := range members(form, "AutoScalingGroupNames.member") {
		seq, ok := f.groups[name]
		if !ok {
			continue
		}
		g := xmlGroup{Name: name}
		for _, in := range seq.take() {
			h := in.Health
			if h == "" {
				h = "Healthy"
			}
			g.Instances = append(g.Instances, xmlInstance{ID: in.ID, Lifecycle: in.Lifecycle, Health: h})
		}
		resp.Groups = append(resp.Groups, g)
	}
	return http.StatusOK, resp
}

type instancesResponse struct {
	XMLName   xml.Name         `xml:"DescribeInstancesResponse"`
	Instances []ec2InstanceXML `xml:"reservationSet>item>instancesSet>item"`
}

type ec2InstanceXML struct {
	ID string `xml:"instanceId"`
	IP string `xml:"privateIpAddress"`
}

func (f *Server) describeInstances(form url.Values) (int, any) {
	var resp instancesResponse
	for _, id := range filterValues(form, "instance-id") {
		if ip, ok := f.addresses[id]; ok {
			resp.Instances = append(resp.Instances, ec2InstanceXML{ID: id, IP: ip})
		}
	}
	return http.StatusOK, resp
}

type imagesResponse struct {
	XMLName xml.Name      `xml:"DescribeImagesResponse"`
	Images  []ec2ImageXML `xml:"imagesSet>item"`
}

type ec2ImageXML struct {
	ID      string         `xml:"imageId"`
	Devices []ec2DeviceXML `xml:"blockDeviceMapping>item"`
}

type ec2DeviceXML struct {
	Name     string `xml:"deviceName"`
	Snapshot string `xml:"ebs>snapshotId"`
}

func (f *Server) describeImages(form url.Values) (int, any) {
	if ids := members(form, "ImageId"); len(ids) > 0 {
		f.t.Errorf("awsfake: DescribeImages by ImageId fails on any missing AMI; filter by image-id")
	}
	var resp imagesResponse
	for _, id := range filterValues(form, "image-id") {
		img, ok := f.images[id]
		if !ok {
			continue
		}
		x := ec2ImageXML{ID: id}
		for i, s := range img.Snapshots {
			x.Devices = append(x.Devices, ec2DeviceXML{Name: fmt.Sprintf("/dev/xvd%c", 'a'+i), Snapshot: s})
		}
		resp.Images = append(resp.Images, x)
	}
	return http.StatusOK, resp
}

type ec2Return struct {
	XMLName xml.Name
	Return  bool `xml:"return"`
}

func (f *Server) deregisterImage(form url.Values) (int, any) {
	id := form.Get("ImageId")
	if _, ok := f.images[id]; !ok {
		return http.StatusBadRequest, ec2Error{Code: "InvalidAMIID.NotFound", Message: "The image id '[" + id + "]' does not exist"}
	}
	delete(f.images, id)
	return http.StatusOK, ec2Return{XMLName: xml.Name{Local: "DeregisterImageResponse"}, Return: true}
}

func (f *Server) deleteSnapshot(form url.Values) (int, any) {
	id := form.Get("SnapshotId")
	if _, ok := f.snapshots[id]; !ok {
		return http.StatusBadRequest, ec2Error{Code: "InvalidSnapshot.NotFound", Message: "The snapshot '" + id + "' does not exist."}
	}
	for _, img := range f.images {
		if slices.Contains(img.Snapshots, id) {
			return http.StatusBadRequest, ec2Error{Code: "InvalidSnapshot.InUse", Message: "The snapshot " + id + " is currently in use by " + img.ID}
		}
	}
	delete(f.snapshots, id)
	return http.StatusOK, ec2Return{XMLName: xml.Name{Local: "DeleteSnapshotResponse"}, Return: true}
}

type snapshotsResponse struct {
	XMLName   xml.Name      `xml:"DescribeSnapshotsResponse"`
	Snapshots []snapshotXML `xml:"snapshotSet>item"`
}

type snapshotXML struct {
	ID          string `xml:"snapshotId"`
	Description string `xml:"description"`
}

// describeSnapshots models the description filter (values are alternatives, * matches
// any run of characters) of the caller's own snapshots.
func (f *Server) describeSnapshots(form url.Values) (int, any) {
	if members(form, "Owner") == nil || members(form, "Owner")[0] != "self" {
		f.t.Errorf("awsfake: DescribeSnapshots without Owner self lists every public snapshot")
	}
	var res []*regexp.Regexp
	for _, v := range filterValues(form, "description") {
		res = append(res, regexp.MustCompile("^"+strings.ReplaceAll(regexp.QuoteMeta(v), `\*`, ".*")+"$"))
	}
	var resp snapshotsResponse
	for _, id := range slices.Sorted(maps.Keys(f.snapshots)) {
		d := f.snapshots[id]
		if slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(d) }) {
			resp.Snapshots = append(resp.Snapshots, snapshotXML{id, d})
		}
	}
	return http.StatusOK, resp
}
