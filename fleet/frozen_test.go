package fleet

import (
	"slices"
	"testing"
)

func TestOnlyASlotWhoseReleaseRunsAlreadyIsFrozen(t *testing.T) {
	v1 := &Release{Version: "1.0.0", Image: Image{Digest: "sha256:aa", Location: "ami-1"}}
	v2 := &Release{Version: "2.0.0", Image: Image{Digest: "sha256:bb", Location: "ami-2"}}
	v1secrets := &Release{Version: "1.0.0", Image: v1.Image, Secrets: "s2"}
	spec := func(blue, green *Release) Spec {
		return Spec{Slots: map[Slot]SlotSpec{Blue: {Release: blue, Size: 2}, Green: {Release: green, Size: 2}}}
	}
	for _, tc := range []struct {
		name     string
		cur, new Spec
		want     []Slot
	}{
		{"first release", Spec{}, spec(v1, nil), nil},
		{"deploy beside the stable slot", spec(v1, nil), spec(v1, v2), []Slot{Blue}},
		{"a traffic step", spec(v1, v2), spec(v1, v2), []Slot{Blue, Green}},
		{"retire", spec(v1, v2), spec(nil, v2), []Slot{Green}},
		{"the same image with new secrets", spec(v1, nil), spec(v1, v1secrets), []Slot{Blue}},
		{"a slot given another release", spec(v1, nil), spec(v2, nil), nil},
	} {
		got := Frozen(tc.cur, tc.new)
		var slots []Slot
		for _, sl := range Slots {
			if got[sl] {
				slots = append(slots, sl)
			}
		}
		if !slices.Equal(slots, tc.want) {
			t.Errorf("%s: frozen %v, want %v", tc.name, slots, tc.want)
		}
	}
}
