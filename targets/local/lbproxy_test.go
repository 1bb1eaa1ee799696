package local

import (
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/targets/local/lb"
)

// TestStarterLBExampleIsKilnLBsDefaults uncomments the target.local.lb example of the
// manifest kiln init writes: it must decode, and the values it shows as the defaults must be
// kiln-lb's.
func TestStarterLBExampleIsKilnLBsDefaults(t *testing.T) {
	text := string(manifests.Starter("hello"))
	if !strings.Contains(text, "\n    # lb:\n") {
		t.Fatal("the starter has no target.local.lb example")
	}
	text = strings.ReplaceAll(text, "\n    # lb:", "\n    lb:")
	text = strings.ReplaceAll(text, "\n    #   ", "\n      ")
	m, err := manifests.Parse("kiln.yaml", []byte(text), nil)
	if err != nil {
		t.Fatalf("uncommented starter does not validate: %v\n%s", err, text)
	}
	if got := lbProxy(m.Target.Local.LB); got != lb.DefaultProxy {
		t.Errorf("the starter's lb example gives %+v, kiln-lb's defaults are %+v", got, lb.DefaultProxy)
	}
	if manifests.MaxLBHeaderBytes != lb.MaxHeaderBytesLimit {
		t.Errorf("the manifest accepts maxHeaderBytes up to %d, kiln-lb up to %d", manifests.MaxLBHeaderBytes, lb.MaxHeaderBytesLimit)
	}
}

func TestLBProxyCarriesEveryField(t *testing.T) {
	m := manifests.LocalLB{MaxHeaderBytes: 2048, ReadHeaderTimeout: time.Second, IdleTimeout: 2 * time.Second,
		RequestTimeout: 3 * time.Second, UpstreamHeaderTimeout: 4 * time.Second, ExposeTarget: true}
	want := lb.Proxy{MaxHeaderBytes: 2048, ReadHeaderTimeout: lb.Duration(time.Second), IdleTimeout: lb.Duration(2 * time.Second),
		RequestTimeout: lb.Duration(3 * time.Second), UpstreamHeaderTimeout: lb.Duration(4 * time.Second), ExposeTarget: true}
	if got := lbProxy(m); got != want {
		t.Errorf("lbProxy = %+v, want %+v", got, want)
	}
	if got := lbProxy(manifests.LocalLB{}); got != (lb.Proxy{}) {
		t.Errorf("fields the manifest leaves out must stay zero (kiln-lb's defaults), got %+v", got)
	}
}
