//go:build e2e

package awsmodel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/targets/aws/program"
)

// kiln's own aws programs (package program), through the real engine and the double:
// each phase of a blue-green rollout touches only what it should.
func TestKilnsAWSProgramsRollOutThroughTheDouble(t *testing.T) {
	w := newWorld(t)
	settings := program.Settings{Region: "eu-west-1", Subnets: []string{"subnet-0a", "subnet-0b"}, InstanceType: "t3.small",
		ParentImage:     "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
		GracePeriodSecs: 60, LoadBalancer: program.LoadBalancer{Scheme: "internet-facing", Port: 80}}
	dir := t.TempDir()
	img := program.BakeImage{Digest: "sha256:" + strings.Repeat("a", 64), Version: "1.0.0", RecipeKey: "rk",
		Payload: filepath.Join(dir, "payload.tar"), PayloadSHA256: strings.Repeat("b", 64), SBOM: filepath.Join(dir, "sbom.json")}
	for _, p := range []string{img.Payload, img.SBOM} {
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outs, _ := up(t, w.open(t, "shop-images", Behaviour{}), program.Bake(program.BakeInput{Service: "shop", Settings: settings, Images: []program.BakeImage{img}}))
	rel := &fleet.Release{Version: img.Version, Image: fleet.Image{Digest: img.Digest, Location: amiOf(t, outs, img.Digest)}}
	spec := func(blue, green fleet.SlotSpec) program.FleetInput {
		return program.FleetInput{Settings: settings, Spec: fleet.Spec{Service: "shop", Port: 8080, DrainTimeout: 30 * time.Second,
			Health: fleet.HealthCheck{Path: "/healthz", Interval: 10 * time.Second, Timeout: 5 * time.Second, HealthyThreshold: 3, UnhealthyThreshold: 2},
			Slots:  map[fleet.Slot]fleet.SlotSpec{fleet.Blue: blue, fleet.Green: green}}}
	}
	s := w.open(t, "shop", Behaviour{})
	up(t, s, program.Fleet(spec(fleet.SlotSpec{Release: rel, Size: 2, Weight: 100}, fleet.SlotSpec{})))
	for _, ph := range []struct {
		name string
		in   program.FleetInput
		want []string
	}{
		{"deploy", spec(fleet.SlotSpec{Release: rel, Size: 2, Weight: 100}, fleet.SlotSpec{Release: rel, Size: 3}),
			[]string{"create " + TypeLaunchTemplate + " shop-green", "create " + TypeGroup + " shop-green"}},
		{"step", spec(fleet.SlotSpec{Release: rel, Size: 2, Weight: 50}, fleet.SlotSpec{Release: rel, Size: 3, Weight: 50}),
			[]string{"update " + TypeListener + " shop"}},
		{"promote", spec(fleet.SlotSpec{Release: rel, Size: 2}, fleet.SlotSpec{Release: rel, Size: 3, Weight: 100}),
			[]string{"update " + TypeListener + " shop"}},
		{"retire", spec(fleet.SlotSpec{Size: 2}, fleet.SlotSpec{Release: rel, Size: 3, Weight: 100}),
			[]string{"delete " + TypeLaunchTemplate + " shop-blue", "delete " + TypeGroup + " shop-blue"}},
	} {
		t.Run(ph.name, func(t *testing.T) {
			_, ops := up(t, s, program.Fleet(ph.in))
			wantOps(t, ops, ph.want...)
		})
	}
	w.converged(t, "shop-images", "shop")
	for _, name := range []string{"shop", "shop-images"} {
		if err := w.open(t, name, Behaviour{}).Destroy(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if recs, _ := w.store.List(); len(recs) != 0 {
		t.Fatalf("left after destroy: %v", recs)
	}
}
