// Package awsfake holds scripted fakes of the AWS APIs kiln reads at run time, for tests.
// They are models of AWS APIs written from their public documentation, not AWS: an
// httptest server on 127.0.0.1 that answers the wire protocols the real AWS SDK for Go v2
// speaks, with what the test scripts, and records every call for assertions.
//
// One Server models them all behind one URL (give it to every client as its BaseEndpoint,
// and to IMDS as its endpoint):
//   - Elastic Load Balancing v2 DescribeTargetHealth, Auto Scaling DescribeAutoScalingGroups
//     (AWS query protocol: a form with Action and Version, XML answers);
//   - EC2 DescribeInstances, DescribeImages, DeregisterImage, DeleteSnapshot (EC2 query);
//   - CloudWatch GetMetricData (Smithy RPC v2 CBOR, which cloudwatch v1.59.0 speaks);
//   - SSM GetParameters (AWS JSON 1.1);
//   - the instance metadata service, IMDSv2 only (a GET without a session token is
//     refused with 401, as on an instance launched with HttpTokens=required).
//
// Every API call must be signed (SigV4 Authorization and X-Amz-Date headers), as the SDK's
// clients do; an unsigned call fails the test. Throttle makes the next calls of an action
// answer Throttling, as AWS does when an account's request rate is exceeded.
package awsfake

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Server is the fake of every API above. It is safe for concurrent use.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	calls    []Call
	throttle map[string]int // action -> calls still to throttle

	targets   map[string]*sequence[[]Target]        // target group ARN -> health
	groups    map[string]*sequence[[]GroupInstance] // auto scaling group -> instances
	addresses map[string]string                     // instance ID -> private IP
	images    map[string]Image                      // AMI ID -> image
	snapshots map[string]string                     // snapshot ID -> description
	series    []Series                              // CloudWatch datapoints
	params    map[string]Parameter                  // SSM parameters by name
	imds      IMDS
	tokens    map[string]bool // IMDSv2 session tokens handed out
}

// Call is one API call as the fake received it.
type Call struct {
	Service string     // elbv2, autoscaling, ec2, cloudwatch, ssm, imds
	Action  string     // e.g. DescribeTargetHealth; for imds the method and path
	Params  url.Values // the query form (query protocols), else nil
	Body    any        // the decoded body of JSON and CBOR calls
	Status  int        // the HTTP status answered
	// AccessKey is the access key ID the call was signed with (SigV4 Credential).
	AccessKey string
}

// New starts a fake on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Server {
	f := &Server{t: t, throttle: map[string]int{},
		targets: map[string]*sequence[[]Target]{}, groups: map[string]*sequence[[]GroupInstance]{},
		addresses: map[string]string{}, images: map[string]Image{}, snapshots: map[string]string{},
		params: map[string]Parameter{}, tokens: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the endpoint to give every client (and IMDS).
func (f *Server) URL() string { return f.srv.URL }

// Calls returns every call so far, in order.
func (f *Server) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// CallsOf returns the calls of one action, in order.
func (f *Server) CallsOf(action string) []Call {
	var out []Call
	for _, c := range f.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Throttle makes the next n calls of action (e.g. DescribeTargetHealth) answer a
// Throttling error, which the SDK retries.
func (f *Server) Throttle(action string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[action] += n
}

// sequence is a scripted series of answers: each read takes the next, and the last one
// repeats (no steps answer the zero value).
type sequence[T any] struct {
	steps []T
	next  int
}

func (s *sequence[T]) take() T {
	var v T
	if len(s.steps) > 0 {
		v = s.steps[min(s.next, len(s.steps)-1)]
	}
	s.next++
	return v
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/latest/") {
		f.serveIMDS(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("awsfake: read body: %v", err)
		return
	}
	if !signed(r) {
		f.t.Errorf("awsfake: unsigned call %s %s (headers %v)", r.Method, r.URL.Path, r.Header)
		http.Error(w, "missing SigV4 authorization", http.StatusForbidden)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/"):
		f.serveCloudWatch(w, r, body)
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM."):
		f.serveSSM(w, r, body)
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			f.t.Errorf("awsfake: form: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.serveQuery(w, r, form)
	}
}

// signed reports whether r carries a SigV4 signature (the fake checks its presence and
// form, not the signature itself: it has no secret to check it against).
func signed(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=") && strings.Contains(a, "SignedHeaders=") &&
		strings.Contains(a, "Signature=") && r.Header.Get("X-Amz-Date") != ""
}

// accessKey returns the access key ID of a signed request.
func accessKey(r *http.Request) string {
	cred := strings.TrimPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=")
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// record appends a call and returns its index, and whether it is to be throttled.
func (f *Server) record(c Call) (i int, throttled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttle[c.Action] > 0 {
		f.throttle[c.Action]--
		throttled = true
	}
	f.calls = append(f.calls, c)
	return len(f.calls) - 1, throttled
}

// answered notes the status the i-th call was answered with.
func (f *Server) answered(i, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[i].Status = status
}

func write(w http.ResponseWriter, contentType string, status int, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	io.Copy(w, bytes.NewReader(body))
}
