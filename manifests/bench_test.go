package manifests_test

import (
	"fmt"
	"testing"

	"github.com/kilnhq/kiln/manifests"
)

// BenchmarkParse measures decoding a valid manifest (the common case for every kiln command)
// and a broken one that yields every kind of error at once (the kiln validate case).
func BenchmarkParse(b *testing.B) {
	broken := []byte(`apiVersion: kiln/v2
service: Hello
version: x
app: {main: /abs, binary: b, env: {PORT: "1", lower: x}}
components: {kiln-metricz: "~> 0.1", kiln-metrics: ">= 9"}
fleet: {size: 0, port: 0, health: {path: x, interval: fast, timeout: 0s}}
rollout: {strategy: canary}
target: {aws: {}}
images: {keep: 1}
`)
	// Near the 256 KiB size limit: about 17,000 unknown keys, each an error with a did-you-mean search.
	var large []byte
	for i := 0; len(large) < 256<<10-40; i++ {
		large = fmt.Appendf(large, "unknown%d: x\n", i)
	}
	for _, bc := range []struct {
		name string
		data []byte
	}{{"valid", []byte(base)}, {"errors", broken}, {"256KiB-unknown-keys", large}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				manifests.Parse("kiln.yaml", bc.data, testCatalog)
			}
		})
	}
}
