//go:build e2e

package awsmodel

import (
	"testing"
	"time"
)

// BenchmarkTrafficStep measures one traffic step on the aws path, end to end: the real
// engine, the fleet-shaped program, the double with no latency (so what is measured is
// kiln's and the engine's own cost), one listener update per op.
//
//	go test -tags e2e -run '^$' -bench TrafficStep -benchtime 10x ./targets/aws/awsmodel/
func BenchmarkTrafficStep(b *testing.B) {
	w := newWorld(b)
	s := w.open(b, "shop", Behaviour{})
	ami := "ami-0123456789abcdef0"
	up(b, s, fleetProgram(map[string]fleetSlot{"blue": {ami, 2, 100}, "green": {ami, 2, 0}}))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		_, ops := up(b, s, fleetProgram(map[string]fleetSlot{"blue": {ami, 2, 50 + (i%2)*50}, "green": {ami, 2, 50 - (i%2)*50}}))
		if len(ops) != 1 {
			b.Fatalf("a traffic step did %v, want one listener update", ops)
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/step")
}
