package boot

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/targets/local/lb"
)

// TestInstanceBehindLoadBalancer runs the two local daemons together the
// way the provider does: boot starts the app on ${KILN_LISTEN}, the lb sends
// traffic to it once it passes health checks, and stops when it is gone.
func TestInstanceBehindLoadBalancer(t *testing.T) {
	port := freePort(t)
	app := testUnit("app", RestartAlways, "http", "${KILN_LISTEN}")
	in := newInstance(t, time.Second, app)
	spec := Spec{Instance: "hello-green-0", ImageDir: in.imageDir, DataDir: in.dataDir,
		Env: map[string]string{"PORT": strconv.Itoa(port), "KILN_INSTANCE": "hello-green-0"}, DrainTimeout: Duration(time.Second)}
	writeJSON(t, in.specPath, spec)
	in.start(Options{})

	dir := t.TempDir()
	cfg := lb.Config{Generation: 1, DrainTimeout: lb.Duration(time.Second),
		Health: lb.HealthCheck{Path: "/healthz", Interval: lb.Duration(20 * time.Millisecond), Timeout: lb.Duration(time.Second),
			HealthyThreshold: 2, UnhealthyThreshold: 2},
		Proxy:  lb.Proxy{ExposeTarget: true},
		Groups: []lb.Group{{Name: "green", Weight: 100, Targets: []lb.Target{{ID: "hello-green-0", Address: "127.0.0.1:" + strconv.Itoa(port)}}}}}
	writeJSON(t, filepath.Join(dir, "lb.json"), cfg)
	srv, err := lb.New(filepath.Join(dir, "lb.json"), lb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lbDone := make(chan error, 1)
	go func() { lbDone <- srv.Run(ctx, filepath.Join(dir, "ready.json")) }()
	t.Cleanup(func() {
		cancel()
		if err := <-lbDone; err != nil {
			t.Errorf("lb: %v", err)
		}
	})
	var ready lb.Ready
	waitFor(t, "lb ready", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "ready.json"))
		return err == nil && json.Unmarshal(b, &ready) == nil
	})
	health := func() lb.Health {
		for _, g := range srv.Status().Groups {
			for _, ts := range g.Targets {
				return ts.Health
			}
		}
		return ""
	}
	waitFor(t, "instance healthy in the lb", func() bool { return health() == lb.HealthHealthy })

	resp, err := http.Get("http://" + ready.Listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello-green-0" || resp.Header.Get(lb.HeaderTarget) != "hello-green-0" {
		t.Fatalf("through the lb: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	in.stop()
	waitFor(t, "instance unhealthy after boot stopped", func() bool { return health() == lb.HealthUnhealthy })
}

// freePort returns a port that is free now, like the provider allocates
// PORT. It is taken below the kernel's ephemeral range, so that no other
// test's ":0" listener or outgoing connection can grab it before the app
// binds it.
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}
