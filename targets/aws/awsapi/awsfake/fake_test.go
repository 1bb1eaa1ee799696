package awsfake

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// recorder is a test that keeps the model's complaints instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The model refuses what AWS would: unsigned calls, and metadata reads without a session
// token (HttpTokens=required).
func TestTheModelRefusesUnsignedCallsAndIMDSv1(t *testing.T) {
	r := &recorder{TB: t}
	f := New(r)
	resp, err := http.Post(f.URL()+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeTargetHealth&Version=2015-12-01"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(r.errs) != 1 || !strings.Contains(r.errs[0], "unsigned call") {
		t.Fatalf("unsigned call: %d, complaints %q", resp.StatusCode, r.errs)
	}
	f.SetIMDS(IMDS{InstanceID: "i-1"})
	for _, path := range []string{"/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/"} {
		resp, err := http.Get(f.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d", path, resp.StatusCode)
		}
	}
}

func TestSequencesRepeatTheirLastStep(t *testing.T) {
	s := &sequence[int]{steps: []int{1, 2}}
	var got []int
	for range 4 {
		got = append(got, s.take())
	}
	if fmt.Sprint(got) != "[1 2 2 2]" {
		t.Fatalf("took %v", got)
	}
	if v := (&sequence[[]Target]{}).take(); v != nil {
		t.Fatalf("an empty sequence answered %v", v)
	}
}
