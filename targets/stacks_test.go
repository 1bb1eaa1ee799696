package targets

import (
	"slices"
	"testing"
)

func TestATargetKeepsTheStackNamedAfterTheServiceUnlessItNamesItsStacks(t *testing.T) {
	if got := Stacks("plain-test-target", "shop"); !slices.Equal(got, []string{"shop"}) {
		t.Errorf("stacks of a target that names none: %v, want [shop]", got)
	}
	RegisterStacks("two-stack-test-target", func(service string) []string { return []string{service, service + "-extra"} })
	if got := Stacks("two-stack-test-target", "shop"); !slices.Equal(got, []string{"shop", "shop-extra"}) {
		t.Errorf("stacks of a target that names two: %v", got)
	}
}
