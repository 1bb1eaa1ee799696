package backup

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/testpeers"
)

// throttleProxy stands between the SDK and dynalite (which never throttles)
// and plays DynamoDB under pressure: every throttleEvery-th Scan or
// BatchWriteItem is refused with ProvisionedThroughputExceededException,
// and BatchWriteItem requests are only partly processed, the rest handed
// back as UnprocessedItems (all of them when unprocessAll is set). It logs
// the consumed capacity of every answered request with its arrival time.
type throttleProxy struct {
	URL           string
	target        string
	throttleEvery int
	unprocessAll  bool
	wholeBatches  bool // forward BatchWriteItem untouched

	mu        sync.Mutex
	calls     int
	throttled int
	testpeers.CapacityLog
}

func newThrottleProxy(t *testing.T, target string, throttleEvery int) *throttleProxy {
	p := &throttleProxy{target: target, throttleEvery: throttleEvery}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *throttleProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	if op == "Scan" || op == "BatchWriteItem" {
		p.mu.Lock()
		p.calls++
		throttle := p.throttleEvery > 0 && p.calls%p.throttleEvery == 0
		if throttle {
			p.throttled++
		}
		p.mu.Unlock()
		if throttle {
			msg := `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}`
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(msg))), 10))
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, msg)
			return
		}
	}
	var held map[string][]json.RawMessage
	if op == "BatchWriteItem" && !p.wholeBatches {
		var in map[string]json.RawMessage
		json.Unmarshal(body, &in)
		var reqs map[string][]json.RawMessage
		json.Unmarshal(in["RequestItems"], &reqs)
		held = map[string][]json.RawMessage{}
		for table, rs := range reqs {
			keep := (len(rs) + 1) / 2
			if p.unprocessAll {
				keep = 0
			}
			held[table] = rs[keep:]
			reqs[table] = rs[:keep]
			if keep == 0 {
				delete(reqs, table)
			}
		}
		if len(reqs) == 0 {
			out, _ := json.Marshal(map[string]any{"UnprocessedItems": held, "ConsumedCapacity": []any{}})
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(out)), 10))
			w.Write(out)
			return
		}
		in["RequestItems"], _ = json.Marshal(reqs)
		body, _ = json.Marshal(in)
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.Path, bytes.NewReader(body))
	for k, v := range r.Header {
		req.Header[k] = v
	}
	// The SDK signed the original body; dynalite does not check signatures.
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var parsed map[string]json.RawMessage
	if json.Unmarshal(out, &parsed) == nil {
		p.Record(time.Now(), testpeers.ConsumedUnits(out))
		if held != nil && resp.StatusCode == 200 {
			var un map[string][]json.RawMessage
			json.Unmarshal(parsed["UnprocessedItems"], &un)
			for t, rs := range held {
				un[t] = append(un[t], rs...)
			}
			if un == nil {
				un = held
			}
			parsed["UnprocessedItems"], _ = json.Marshal(un)
			out, _ = json.Marshal(parsed)
		}
	}
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	// The SDK checks DynamoDB's CRC32 of the body, also of rewritten ones.
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(out)), 10))
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}
