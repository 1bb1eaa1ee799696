// Package agentstatus is what a kiln-backup agent says about its table's
// lease on its status endpoint (GET Path on its --metrics-listen address),
// and how kiln status and kiln watch read it. It is kept apart from package
// backup so that kiln reads it without linking the AWS SDK clients.
package agentstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Path is the status endpoint's path.
const Path = "/v1/lease"

// Lease states.
const (
	Active  = "active"  // this agent holds the lease and works
	Standby = "standby" // another agent holds it; this one takes over when it lapses
)

// Holder says who holds, or wants, a lease.
type Holder struct {
	Instance string `json:"instance"`
	Host     string `json:"host"`
	Release  string `json:"release"`
	PID      int    `json:"pid"`
}

// Lease is one agent's view of its table's lease.
type Lease struct {
	Table string `json:"table"`
	// State is Active or Standby.
	State string `json:"state"`
	// Holder is the newest holder this agent knows of (itself when active).
	Holder     Holder    `json:"holder"`
	Generation int64     `json:"generation"`
	Renewed    time.Time `json:"renewed,omitzero"`
	Expires    time.Time `json:"expires,omitzero"`
	Released   bool      `json:"released,omitempty"`
}

// Fetch reads the lease status of the agent listening on addr (host:port).
func Fetch(ctx context.Context, client *http.Client, addr string) (Lease, error) {
	var l Lease
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+Path, nil)
	if err != nil {
		return l, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return l, fmt.Errorf("backup agent status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("backup agent status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return l, fmt.Errorf("backup agent status: %w", err)
	}
	return l, nil
}
