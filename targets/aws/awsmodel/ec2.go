package awsmodel

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// describeInstances answers EC2's DescribeInstances filtered by instance-id, as the aws
// target asks it for its instances' private addresses: every instance a group of the
// model runs has one, derived from its ID (10.x.y.z, stable for the instance's life).
func (a *API) describeInstances(w http.ResponseWriter, form url.Values) error {
	var wanted []string
	for n := 1; form.Has(fmt.Sprintf("Filter.%d.Name", n)); n++ {
		if form.Get(fmt.Sprintf("Filter.%d.Name", n)) == "instance-id" {
			wanted = memberValues(form, fmt.Sprintf("Filter.%d.Value.", n), "")
		}
	}
	groups, err := a.store.List(TypeGroup)
	if err != nil {
		return err
	}
	resp := describeInstancesResponse{NS: ec2NS, RequestID: randomHex(8)}
	for _, g := range groups {
		for _, in := range a.instancesOf(g) {
			if slices.Contains(wanted, in.id) {
				resp.Instances = append(resp.Instances, ec2Instance{ID: in.id, PrivateIP: privateIP(in.id)})
			}
		}
	}
	writeXML(w, http.StatusOK, resp)
	return nil
}

// privateIP is the model's private address of an instance.
func privateIP(id string) string {
	sum := sha256.Sum256([]byte(id))
	return fmt.Sprintf("10.%d.%d.%d", sum[0], sum[1], 1+sum[2]%254)
}

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

type describeInstancesResponse struct {
	XMLName   xml.Name      `xml:"DescribeInstancesResponse"`
	NS        string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Instances []ec2Instance `xml:"reservationSet>item>instancesSet>item"`
}

type ec2Instance struct {
	ID        string `xml:"instanceId"`
	PrivateIP string `xml:"privateIpAddress"`
}

// deleteAutoScalingGroup answers Auto Scaling's DeleteAutoScalingGroup, which kiln calls
// only for a group no stack holds (a killed engine created it): the group and its
// instances are gone from the model's cloud at once.
func (a *API) deleteAutoScalingGroup(w http.ResponseWriter, form url.Values) error {
	name := form.Get("AutoScalingGroupName")
	if _, ok, err := a.store.Get(TypeGroup, name); err != nil {
		return err
	} else if !ok {
		writeError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("AutoScalingGroup name not found - %s", name))
		return nil
	}
	if err := a.store.Delete(TypeGroup, name); err != nil {
		return err
	}
	writeXML(w, http.StatusOK, deleteGroupResponse{NS: autoscalingNS, Metadata: responseMetadata{RequestID: randomHex(8)}})
	return nil
}

type deleteGroupResponse struct {
	XMLName  xml.Name         `xml:"DeleteAutoScalingGroupResponse"`
	NS       string           `xml:"xmlns,attr"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}
