package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backup/agentstatus"
	"github.com/kilnhq/kiln/fleet"
)

// agentServer serves a backup agent's lease status on 127.0.0.1 and returns its port.
func agentServer(t *testing.T, l agentstatus.Lease) int {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agentstatus.Path {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(l)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func TestBackupAgentsInStatus(t *testing.T) {
	holder := agentstatus.Holder{Instance: "shop-green-1", Host: "h", Release: "2.0.0"}
	renewed := time.Now().Add(-4 * time.Second)
	active := agentServer(t, agentstatus.Lease{Table: "orders", State: agentstatus.Active, Holder: holder, Renewed: renewed})
	standby := agentServer(t, agentstatus.Lease{Table: "orders", State: agentstatus.Standby, Holder: holder, Renewed: renewed})
	dead := agentServer(t, agentstatus.Lease{})
	hs := []fleet.InstanceHealth{
		{ID: "shop-green-0", Slot: fleet.Green, Ports: map[string]int{"backup": standby}},
		{ID: "shop-green-1", Slot: fleet.Green, Ports: map[string]int{"backup": active, "metrics": 1}},
		{ID: "shop-blue-0", Slot: fleet.Blue, Ports: map[string]int{"metrics": dead}}, // no agent baked
	}
	agents := readBackupAgents(context.Background(), hs)
	if len(agents) != 2 || hs[1].Backup != agentstatus.Active || hs[0].Backup != agentstatus.Standby || hs[2].Backup != "" {
		t.Fatalf("agents %+v, instance marks %q %q %q", agents, hs[0].Backup, hs[1].Backup, hs[2].Backup)
	}
	var out strings.Builder
	printBackupAgents(&out, agents, renewed.Add(4*time.Second+300*time.Millisecond))
	want := "backup    orders: lease held by shop-green-1 (release 2.0.0, lease renewed 4s ago); standby: shop-green-0\n"
	if out.String() != want {
		t.Fatalf("status line:\n%q\nwant\n%q", out.String(), want)
	}

	// An agent that does not answer is named, not hidden.
	hs = []fleet.InstanceHealth{{ID: "shop-green-0", Ports: map[string]int{"backup": closedPort(t)}}}
	out.Reset()
	printBackupAgents(&out, readBackupAgents(context.Background(), hs), time.Now())
	if !strings.Contains(out.String(), "no agent holds the lease; unreachable: shop-green-0") {
		t.Fatalf("unreachable agent: %q", out.String())
	}
}

func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))
	l.Close()
	return port
}
