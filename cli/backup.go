package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnhq/kiln/backup/agentstatus"
	"github.com/kilnhq/kiln/fleet"
)

// backupPort is the named port kiln-backup's component serves its metrics and status on.
const backupPort = "backup"

// backupAgent is what the kiln-backup agent of one instance says of its table's lease.
type backupAgent struct {
	Instance string     `json:"instance"`
	Slot     fleet.Slot `json:"slot"`
	agentstatus.Lease
	Error string `json:"error,omitempty"`
}

var backupClient = &http.Client{Timeout: 2 * time.Second}

// readBackupAgents asks every instance's baked kiln-backup agent, at once, who holds its
// table's lease, and marks each instance's Backup state in hs.
func readBackupAgents(ctx context.Context, hs []fleet.InstanceHealth) []backupAgent {
	var out []backupAgent
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range hs {
		port, ok := hs[i].Ports[backupPort]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := backupAgent{Instance: hs[i].ID, Slot: hs[i].Slot}
			l, err := agentstatus.Fetch(ctx, backupClient, "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				a.Error = err.Error()
			} else {
				a.Lease, hs[i].Backup = l, l.State
			}
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

// printBackupAgents writes one line per table: who holds its lease, who stands by.
func printBackupAgents(w io.Writer, agents []backupAgent, now time.Time) {
	byTable := map[string][]backupAgent{}
	var tables []string
	for _, a := range agents {
		if _, ok := byTable[a.Table]; !ok {
			tables = append(tables, a.Table)
		}
		byTable[a.Table] = append(byTable[a.Table], a)
	}
	sort.Strings(tables)
	for _, table := range tables {
		var holder, standby, failed []string
		for _, a := range byTable[table] {
			switch {
			case a.Error != "":
				failed = append(failed, a.Instance+" ("+a.Error+")")
			case a.State == agentstatus.Active:
				holder = append(holder, fmt.Sprintf("%s (release %s, lease renewed %s ago)", a.Instance, a.Holder.Release, now.Sub(a.Renewed).Truncate(time.Second)))
			default:
				standby = append(standby, a.Instance)
			}
		}
		name := table
		if name == "" {
			name = "(unknown table)"
		}
		line := "backup    " + name + ": "
		if len(holder) > 0 {
			line += "lease held by " + strings.Join(holder, ", ")
		} else if st := byTable[table][0]; st.Error == "" && st.Holder.Instance != "" {
			line += "no instance here holds the lease (last holder " + st.Holder.Instance + ")"
		} else {
			line += "no agent holds the lease"
		}
		if len(standby) > 0 {
			line += "; standby: " + strings.Join(standby, ", ")
		}
		if len(failed) > 0 {
			line += "; unreachable: " + strings.Join(failed, ", ")
		}
		fmt.Fprintln(w, line)
	}
}
