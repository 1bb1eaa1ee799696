// Package lb is the local target's load balancer: a weighted reverse proxy
// over groups of targets (blue, green, ...) with active health checks, hot
// reload of its JSON config and draining of targets that leave.
//
// kiln's Pulumi provider writes the config file atomically, starts the lb
// (`kiln lb`), reads the ready file for the bound addresses, and moves
// traffic by rewriting the config and POSTing /reload on the admin listener.
package lb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "500ms" or "10s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string such as "1s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &valueError{raw: string(b), err: fmt.Errorf("duration must be a string such as \"10s\", got %s", b)}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &valueError{raw: string(b), err: fmt.Errorf("duration %q: %w", s, err)}
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Config is the lb's configuration file, written by kiln's provider.
type Config struct {
	// Generation is a number the provider increases on every change; the lb
	// reports it back in the ready file, /status and /reload answers.
	Generation int64 `json:"generation"`
	// Listen is the proxy's address; port 0 picks a free port. It cannot
	// change on reload. Empty means 127.0.0.1:0; an empty host means 127.0.0.1.
	Listen string `json:"listen"`
	// Admin is the admin API's address, with the same rules as Listen.
	Admin string `json:"admin"`
	// DrainTimeout bounds how long a reload or a shutdown waits for
	// in-flight requests.
	DrainTimeout Duration `json:"drainTimeout"`
	// Health configures the active health checks of every target.
	Health HealthCheck `json:"health"`
	// Proxy bounds the proxy listener and says what answers reveal; zero
	// fields take DefaultProxy's values.
	Proxy Proxy `json:"proxy"`
	// Groups are the traffic groups (e.g. blue and green).
	Groups []Group `json:"groups"`
}

// HealthCheck configures active health checks.
type HealthCheck struct {
	// Path is requested with GET on every target; 2xx and 3xx pass.
	Path string `json:"path"`
	// Interval is the time between two checks of a target.
	Interval Duration `json:"interval"`
	// Timeout bounds one check.
	Timeout Duration `json:"timeout"`
	// HealthyThreshold is the number of consecutive passes that make a new
	// or unhealthy target healthy.
	HealthyThreshold int `json:"healthyThreshold"`
	// UnhealthyThreshold is the number of consecutive failures that make a
	// target unhealthy.
	UnhealthyThreshold int `json:"unhealthyThreshold"`
}

// Proxy bounds what one client or one stuck target can hold of the lb, and
// says whether answers name the target that served them. MaxHeaderBytes,
// ReadHeaderTimeout and IdleTimeout belong to the listener and take effect
// when the lb starts (see RestartField); the others change on reload.
type Proxy struct {
	// MaxHeaderBytes bounds a request's header block; a larger one is
	// answered 431 and never reaches a target.
	MaxHeaderBytes int `json:"maxHeaderBytes"`
	// ReadHeaderTimeout bounds the time a client takes to send a request's
	// headers (a slowloris client is cut off after it).
	ReadHeaderTimeout Duration `json:"readHeaderTimeout"`
	// IdleTimeout closes a client's keep-alive connection after this long
	// without a request.
	IdleTimeout Duration `json:"idleTimeout"`
	// RequestTimeout is the deadline of one proxied request, from its
	// headers to the end of the answer; a target that has not answered by
	// then gets 504. Upgraded connections (WebSocket) are exempt.
	RequestTimeout Duration `json:"requestTimeout"`
	// UpstreamHeaderTimeout bounds the wait for a target's response headers
	// once the request is sent; then the client gets 504.
	UpstreamHeaderTimeout Duration `json:"upstreamHeaderTimeout"`
	// ExposeTarget adds the X-Kiln-Target header, naming the instance that
	// served a request, to every answer. Off by default: it shows clients
	// the fleet's topology.
	ExposeTarget bool `json:"exposeTarget"`
}

// DefaultProxy holds the value of every Proxy field a config leaves at zero.
var DefaultProxy = Proxy{
	MaxHeaderBytes:        64 << 10,
	ReadHeaderTimeout:     Duration(10 * time.Second),
	IdleTimeout:           Duration(60 * time.Second),
	RequestTimeout:        Duration(60 * time.Second),
	UpstreamHeaderTimeout: Duration(30 * time.Second),
}

// MaxHeaderBytesLimit is the largest Proxy.MaxHeaderBytes accepted.
const MaxHeaderBytesLimit = 1 << 20

// withDefaults returns p with every zero field set from DefaultProxy.
func (p Proxy) withDefaults() Proxy {
	def := func(v *Duration, d Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if p.MaxHeaderBytes == 0 {
		p.MaxHeaderBytes = DefaultProxy.MaxHeaderBytes
	}
	def(&p.ReadHeaderTimeout, DefaultProxy.ReadHeaderTimeout)
	def(&p.IdleTimeout, DefaultProxy.IdleTimeout)
	def(&p.RequestTimeout, DefaultProxy.RequestTimeout)
	def(&p.UpstreamHeaderTimeout, DefaultProxy.UpstreamHeaderTimeout)
	return p
}

// validate checks the Proxy fields of a config (zero still meaning default).
func (p Proxy) validate() error {
	if p.MaxHeaderBytes < 0 || p.MaxHeaderBytes > MaxHeaderBytesLimit {
		return fmt.Errorf("proxy.maxHeaderBytes: must be 0 (default) or 1..%d, got %d", MaxHeaderBytesLimit, p.MaxHeaderBytes)
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{{"readHeaderTimeout", p.ReadHeaderTimeout}, {"idleTimeout", p.IdleTimeout}, {"requestTimeout", p.RequestTimeout}, {"upstreamHeaderTimeout", p.UpstreamHeaderTimeout}} {
		if f.v < 0 {
			return fmt.Errorf("proxy.%s: must be >= 0 (0 is the default), got %s", f.name, f.v.Std())
		}
	}
	return nil
}

// RestartField names the first setting that differs between a running
// config and next and that only a restart of the lb applies ("" if none):
// the listener addresses and the listener's bounds.
func (c *Config) RestartField(next *Config) string {
	a, b := c.Proxy.withDefaults(), next.Proxy.withDefaults()
	switch {
	case c.Listen != next.Listen:
		return "listen"
	case c.Admin != next.Admin:
		return "admin"
	case a.MaxHeaderBytes != b.MaxHeaderBytes:
		return "proxy.maxHeaderBytes"
	case a.ReadHeaderTimeout != b.ReadHeaderTimeout:
		return "proxy.readHeaderTimeout"
	case a.IdleTimeout != b.IdleTimeout:
		return "proxy.idleTimeout"
	}
	return ""
}

// Group is a set of targets that receives a share of the traffic.
type Group struct {
	// Name names the group; it is sent back in the X-Kiln-Group header.
	Name string `json:"name"`
	// Weight (0..100) is the group's relative share of requests; 0 means no
	// new requests.
	Weight int `json:"weight"`
	// Targets are the group's backends.
	Targets []Target `json:"targets"`
}

// Target is one backend (an instance).
type Target struct {
	// ID is unique across all groups; it is sent back in X-Kiln-Target.
	ID string `json:"id"`
	// Address is host:port of the target's HTTP server.
	Address string `json:"address"`
}

// DefaultAddress is used for an empty Listen or Admin address.
const DefaultAddress = "127.0.0.1:0"

// LoadConfig reads, strictly decodes and validates the config file at path.
// Errors name the file, the line where the JSON decoder stopped, and the
// field path of invalid values.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lb config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes and validates a config; name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(name, data, dec, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s:%d: unexpected data after the config object", name, lineAt(data, dec.InputOffset()))
	}
	if err := c.normalize(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func decodeError(name string, data []byte, dec *json.Decoder, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%s:%d: invalid JSON: %w", name, lineAt(data, syn.Offset), err)
	case errors.As(err, &typ):
		return fmt.Errorf("%s:%d: field %s: expected %s, got JSON %s", name, lineAt(data, typ.Offset), typ.Field, typ.Type, typ.Value)
	}
	// Unknown fields and duration errors carry no offset (the decoder has
	// read the whole document by then): find the offending text instead.
	var ve *valueError
	if errors.As(err, &ve) {
		return fmt.Errorf("%s:%d: %w", name, lineOf(data, ve.raw, len(data)), ve.err)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s:%d: unknown field %s (check its spelling against the documented fields)", name, lineOf(data, f, len(data)), f)
	}
	return fmt.Errorf("%s:%d: %w", name, lineAt(data, dec.InputOffset()), err)
}

// valueError is a value's decoding error that remembers the raw JSON text,
// so that the error can name the line.
type valueError struct {
	raw string
	err error
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// lineOf returns the line of the first occurrence of needle, or the line of
// offset fallback if it does not occur.
func lineOf(data []byte, needle string, fallback int) int {
	if i := bytes.Index(data, []byte(needle)); i >= 0 {
		return lineAt(data, int64(i))
	}
	return lineAt(data, int64(fallback))
}

func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

func (c *Config) normalize() error {
	var err error
	if c.Listen, err = normalizeListen(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if c.Admin, err = normalizeListen(c.Admin); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	c.Proxy = c.Proxy.withDefaults()
	return nil
}

func normalizeListen(addr string) (string, error) {
	if addr == "" {
		return DefaultAddress, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("%q: port must be a number 0..65535", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// Validate checks the values of a decoded config and returns the first
// problem found, with its field path.
func (c *Config) Validate() error {
	if c.Generation < 0 {
		return fmt.Errorf("generation: must be >= 0, got %d", c.Generation)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("drainTimeout: must be >= 0, got %s", c.DrainTimeout.Std())
	}
	if err := c.Proxy.validate(); err != nil {
		return err
	}
	h := c.Health
	switch {
	case !strings.HasPrefix(h.Path, "/"):
		return fmt.Errorf("health.path: must start with /, got %q", h.Path)
	case h.Interval <= 0:
		return fmt.Errorf("health.interval: must be > 0, got %s", h.Interval.Std())
	case h.Timeout <= 0:
		return fmt.Errorf("health.timeout: must be > 0, got %s", h.Timeout.Std())
	case h.HealthyThreshold < 1:
		return fmt.Errorf("health.healthyThreshold: must be >= 1, got %d", h.HealthyThreshold)
	case h.UnhealthyThreshold < 1:
		return fmt.Errorf("health.unhealthyThreshold: must be >= 1, got %d", h.UnhealthyThreshold)
	}
	groups := map[string]int{}
	ids := map[string]string{}
	for i, g := range c.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			return fmt.Errorf("%s.name: must not be empty", field)
		}
		if j, dup := groups[g.Name]; dup {
			return fmt.Errorf("%s.name: duplicate group name %q (also groups[%d])", field, g.Name, j)
		}
		groups[g.Name] = i
		if g.Weight < 0 || g.Weight > 100 {
			return fmt.Errorf("%s.weight: must be 0..100, got %d", field, g.Weight)
		}
		for k, t := range g.Targets {
			tf := fmt.Sprintf("%s.targets[%d]", field, k)
			if t.ID == "" {
				return fmt.Errorf("%s.id: must not be empty", tf)
			}
			if other, dup := ids[t.ID]; dup {
				return fmt.Errorf("%s.id: duplicate target id %q (also %s)", tf, t.ID, other)
			}
			ids[t.ID] = tf
			if err := checkTargetAddress(t.Address); err != nil {
				return fmt.Errorf("%s.address: %w", tf, err)
			}
		}
	}
	return nil
}

func checkTargetAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q: host must not be empty", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be a number 1..65535", addr)
	}
	return nil
}
