package awsmodel

import (
	"encoding/xml"
	"net/http"
	"time"
)

// The XML of AWS's query protocol, as the AWS SDK for Go v2 parses it: every response is
// <ActionResponse xmlns=...><ActionResult>...</ActionResult><ResponseMetadata/>, lists
// are <member> elements, errors are <ErrorResponse><Error>. Only the fields kiln reads,
// and those a reader would miss, are modelled.

// Namespaces of the services' query APIs.
const (
	elbv2NS       = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
	autoscalingNS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type describeTargetHealthResponse struct {
	XMLName  xml.Name          `xml:"DescribeTargetHealthResponse"`
	NS       string            `xml:"xmlns,attr"`
	Targets  []targetHealthXML `xml:"DescribeTargetHealthResult>TargetHealthDescriptions>member"`
	Metadata responseMetadata  `xml:"ResponseMetadata"`
}

type targetHealthXML struct {
	ID              string `xml:"Target>Id"`
	Port            int    `xml:"Target>Port"`
	HealthCheckPort string `xml:"HealthCheckPort"`
	State           string `xml:"TargetHealth>State"`
	Reason          string `xml:"TargetHealth>Reason,omitempty"`
	Description     string `xml:"TargetHealth>Description,omitempty"`
}

type describeAutoScalingGroupsResponse struct {
	XMLName  xml.Name         `xml:"DescribeAutoScalingGroupsResponse"`
	NS       string           `xml:"xmlns,attr"`
	Groups   []groupXML       `xml:"DescribeAutoScalingGroupsResult>AutoScalingGroups>member"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type launchTemplateXML struct {
	ID      string `xml:"LaunchTemplateId,omitempty"`
	Name    string `xml:"LaunchTemplateName,omitempty"`
	Version string `xml:"Version,omitempty"`
}

type groupXML struct {
	Name                   string             `xml:"AutoScalingGroupName"`
	ARN                    string             `xml:"AutoScalingGroupARN"`
	LaunchTemplate         *launchTemplateXML `xml:"LaunchTemplate,omitempty"`
	MinSize                int                `xml:"MinSize"`
	MaxSize                int                `xml:"MaxSize"`
	DesiredCapacity        int                `xml:"DesiredCapacity"`
	DefaultCooldown        int                `xml:"DefaultCooldown"`
	AvailabilityZones      []string           `xml:"AvailabilityZones>member"`
	TargetGroupARNs        []string           `xml:"TargetGroupARNs>member"`
	HealthCheckType        string             `xml:"HealthCheckType"`
	HealthCheckGracePeriod int                `xml:"HealthCheckGracePeriod"`
	Instances              []instanceXML      `xml:"Instances>member"`
	CreatedTime            time.Time          `xml:"CreatedTime"`
	Status                 string             `xml:"Status,omitempty"`
	VPCZoneIdentifier      string             `xml:"VPCZoneIdentifier,omitempty"`
}

type instanceXML struct {
	ID                   string             `xml:"InstanceId"`
	InstanceType         string             `xml:"InstanceType,omitempty"`
	AvailabilityZone     string             `xml:"AvailabilityZone"`
	LifecycleState       string             `xml:"LifecycleState"`
	HealthStatus         string             `xml:"HealthStatus"`
	LaunchTemplate       *launchTemplateXML `xml:"LaunchTemplate,omitempty"`
	ProtectedFromScaleIn bool               `xml:"ProtectedFromScaleIn"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// writeXML answers a query API call.
func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// writeError answers a query API error as AWS does: the SDK turns Code into the error's
// code (e.g. TargetGroupNotFound) and retries those it knows to be transient.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, status, errorResponse{Type: typ, Code: code, Message: msg, RequestID: randomHex(8)})
}
