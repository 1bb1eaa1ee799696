// Package backend says where a stack's state lives: Pulumi's state, kiln's lock, rollout
// checkpoints and release history. The default is a file backend in kiln's state
// directory, on one disk; an s3:// URL names a shared one (AWS S3 or any S3-compatible
// store) that a team's laptops and CI runners all reach.
package backend

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultLease is how long a lock held in a shared backend stays fresh without renewal;
// the holder renews it every third of that while it runs.
const DefaultLease = time.Minute

// Backend is a parsed backend URL.
type Backend struct {
	// Dir is the file backend's directory (absolute); empty for S3.
	Dir string
	// Bucket and Prefix locate an S3 backend.
	Bucket, Prefix string
	// Region, Endpoint and PathStyle reach it (Endpoint and path-style addressing for an
	// S3-compatible store).
	Region, Endpoint string
	PathStyle        bool
	// Lease is how long the stack's lock stays fresh without renewal (S3 only).
	Lease time.Duration
}

// Error is a backend URL kiln cannot use; it says what to write instead.
type Error struct{ URL, Msg string }

func (e *Error) Error() string { return fmt.Sprintf("backend %q: %s", e.URL, e.Msg) }

const usage = "write file:///absolute/dir or s3://bucket/prefix?region=eu-west-1 (add &endpoint=http://host:port for an S3-compatible store; &lease=1m sets the lock's lease)"

// File is the file backend in dir.
func File(dir string) Backend { return Backend{Dir: dir} }

// Parse reads a backend URL: file:///dir or s3://bucket/prefix?region=…&endpoint=…&lease=….
func Parse(raw string) (Backend, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Backend{}, &Error{URL: raw, Msg: "not a URL: " + usage}
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return Backend{}, &Error{URL: raw, Msg: "a file backend is file:// and an absolute directory, with nothing else: " + usage}
		}
		return File(filepath.Clean(u.Path)), nil
	case "s3":
	case "":
		return Backend{}, &Error{URL: raw, Msg: "no scheme: " + usage}
	default:
		return Backend{}, &Error{URL: raw, Msg: fmt.Sprintf("kiln keeps state in file or s3 backends, not %s: %s", u.Scheme, usage)}
	}
	b := Backend{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Lease: DefaultLease}
	if b.Bucket == "" {
		return Backend{}, &Error{URL: raw, Msg: "no bucket: " + usage}
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "region":
			b.Region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Backend{}, &Error{URL: raw, Msg: fmt.Sprintf("endpoint %q is not an http(s) URL such as http://127.0.0.1:9000", v)}
			}
			b.Endpoint, b.PathStyle = v, true
		case "lease":
			d, err := time.ParseDuration(v)
			if err != nil || d < 3*time.Second {
				return Backend{}, &Error{URL: raw, Msg: fmt.Sprintf("lease %q: write a Go duration of 3s or more, such as 1m", v)}
			}
			b.Lease = d
		case "pathStyle":
			ps, err := strconv.ParseBool(v)
			if err != nil {
				return Backend{}, &Error{URL: raw, Msg: fmt.Sprintf("pathStyle %q: write true or false", v)}
			}
			b.PathStyle = ps
		default:
			return Backend{}, &Error{URL: raw, Msg: fmt.Sprintf("unknown parameter %q: %s", k, usage)}
		}
	}
	return b, nil
}

// Shared reports whether the backend is reachable from other machines (not a directory
// of this one).
func (b Backend) Shared() bool { return b.Bucket != "" }

// String is the backend's URL.
func (b Backend) String() string {
	if !b.Shared() {
		return "file://" + b.Dir
	}
	return "s3://" + path.Join(b.Bucket, b.Prefix) + b.query(false)
}

func (b Backend) query(pulumi bool) string {
	q := url.Values{}
	if b.Region != "" {
		q.Set("region", b.Region)
	}
	if b.Endpoint != "" {
		q.Set("endpoint", b.Endpoint)
	}
	if pulumi {
		if b.PathStyle {
			q.Set("s3ForcePathStyle", "true")
		}
		if b.Region == "" {
			q.Set("region", "us-east-1")
		}
	} else if b.Lease != DefaultLease && b.Lease != 0 {
		q.Set("lease", b.Lease.String())
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// PulumiURL is the URL of Pulumi's own backend at the same place ("" for the zero
// Backend: the driver's default).
func (b Backend) PulumiURL() string {
	if !b.Shared() {
		if b.Dir == "" {
			return ""
		}
		return "file://" + b.Dir
	}
	return "s3://" + path.Join(b.Bucket, b.Prefix) + b.query(true)
}

// EngineEnv is what the Pulumi engine needs in its environment to use the backend.
func (b Backend) EngineEnv() map[string]string {
	if b.Endpoint == "" {
		return nil
	}
	// S3-compatible stores often send no response checksums, and the SDK would warn
	// about each response on stderr.
	return map[string]string{"AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
}
