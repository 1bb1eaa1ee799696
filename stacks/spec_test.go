package stacks

import (
	"testing"

	"github.com/kilnhq/kiln/fleet"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
)

func TestAppliedSpecIsTheExportedSpecOrNothingYet(t *testing.T) {
	if _, ok, err := AppliedSpec("web", auto.OutputMap{}); ok || err != nil {
		t.Fatalf("no outputs: %v, %v", ok, err)
	}
	spec, ok, err := AppliedSpec("web", auto.OutputMap{OutputSpec: {Value: `{"service":"web","port":8080,"slots":{"blue":{"size":2,"weight":100}}}`}})
	if err != nil || !ok || spec.Service != "web" || spec.Slots[fleet.Blue].Size != 2 {
		t.Fatalf("spec %+v, %v, %v", spec, ok, err)
	}
	if _, _, err := AppliedSpec("web", auto.OutputMap{OutputSpec: {Value: "{"}}); err == nil {
		t.Fatal("a spec output that is not JSON was accepted")
	}
}
