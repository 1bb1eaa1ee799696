package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/targets/aws/awsapi/awsfake"
)

// roleKey is the access key of the instance role in the model of IMDS.
const roleKey = "ASIAINSTANCEROLE"

// onEC2 makes the model of AWS f the instance's metadata service and SSM endpoint, as the
// SDK's variables point them.
func onEC2(t *testing.T) *awsfake.Server {
	f := awsfake.New(t)
	f.SetIMDS(awsfake.IMDS{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1", Role: "hello-instance",
		AccessKeyID: roleKey, SecretAccessKey: "role-secret", Token: "role-session"})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f.URL())
	t.Setenv("AWS_ENDPOINT_URL_SSM", f.URL())
	return f
}

// ssmInstance is an instance as the aws target's user data describes it: no instance ID,
// its secrets as SSM parameters /kiln/hello/<NAME>.
func ssmInstance(t *testing.T, secrets ...string) *instance {
	app := testUnit("app", RestartAlways, "env", "${KILN_DATA_DIR}/env.json")
	for _, s := range secrets {
		app.Env["APP_"+s] = "${secret:" + s + "}"
	}
	in := newInstance(t, 5*time.Second, app)
	spec, err := LoadSpec(in.specPath)
	if err != nil {
		t.Fatal(err)
	}
	spec.Instance = ""
	delete(spec.Env, "KILN_INSTANCE")
	spec.SSM = &SSMSecrets{Region: "eu-west-1", Parameters: map[string]string{}}
	for _, s := range secrets {
		spec.SSM.Parameters[s] = "/kiln/hello/" + s
	}
	writeJSON(t, in.specPath, spec)
	return in
}

func TestSSMSecretsAreReadWithTheInstanceRoleInBatches(t *testing.T) {
	f := onEC2(t)
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("SECRET_%02d", i))
		f.PutParameter(awsfake.Parameter{Name: "/kiln/hello/" + names[i], Value: fmt.Sprintf("canary-%02d", i)})
	}
	in := ssmInstance(t, names...)
	in.start(Options{})

	var got struct{ Env []string }
	waitFor(t, "env.json", func() bool {
		return json.Unmarshal([]byte(readFile(t, filepath.Join(in.dataDir, "env.json"))), &got) == nil
	})
	for i, n := range names {
		if want := fmt.Sprintf("APP_%s=canary-%02d", n, i); !slices.Contains(got.Env, want) {
			t.Errorf("the app's env lacks %s", want)
		}
	}
	if !slices.Contains(got.Env, "KILN_INSTANCE=i-0123456789abcdef0") {
		t.Errorf("the app does not know its instance ID: %v", got.Env)
	}
	calls := f.CallsOf("GetParameters")
	if len(calls) != 2 {
		t.Fatalf("%d GetParameters calls for 12 parameters, want 2", len(calls))
	}
	for _, c := range calls {
		req := c.Body.(awsfake.ParametersRequest)
		if len(req.Names) > 10 || !req.WithDecryption || c.AccessKey != roleKey {
			t.Errorf("GetParameters of %d names, decryption %v, signed by %q", len(req.Names), req.WithDecryption, c.AccessKey)
		}
	}
	// Every metadata read carried a session token (the model refuses any other), after
	// one was asked for.
	imds := f.Calls()
	if len(imds) == 0 || imds[0].Action != "PUT /latest/api/token" {
		t.Fatalf("first call %v, want a token", imds)
	}
	for _, c := range imds {
		if c.Service == "imds" && c.Status != http.StatusOK {
			t.Errorf("%s answered %d", c.Action, c.Status)
		}
	}
	if strings.Contains(in.logs.String(), "canary") {
		t.Error("a secret reached boot's logs")
	}
}

func TestBootRefusesToStartWithoutItsSSMSecrets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		param awsfake.Parameter
		want  string
	}{
		{"missing", awsfake.Parameter{Name: "/kiln/hello/OTHER", Value: "x"}, "SSM parameter /kiln/hello/DB_PASSWORD (secret DB_PASSWORD) does not exist in eu-west-1"},
		{"undecryptable", awsfake.Parameter{Name: "/kiln/hello/DB_PASSWORD", Value: "canary-db", Undecryptable: true}, "read SSM parameters /kiln/hello/API_TOKEN, /kiln/hello/DB_PASSWORD: "},
		{"not secure", awsfake.Parameter{Name: "/kiln/hello/DB_PASSWORD", Value: "canary-db", Type: "String"}, "/kiln/hello/DB_PASSWORD (secret DB_PASSWORD) is a String, not a SecureString"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := onEC2(t)
			f.PutParameter(awsfake.Parameter{Name: "/kiln/hello/API_TOKEN", Value: "canary-token"})
			f.PutParameter(tc.param)
			in := ssmInstance(t, "DB_PASSWORD", "API_TOKEN")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := RunWith(ctx, in.specPath, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "canary") {
				t.Fatalf("the error holds a secret: %v", err)
			}
			if _, err := in.status(); err == nil {
				t.Fatal("a unit started (status.json written)")
			}
		})
	}
}

func TestInstanceIDComesFromIMDSv2Only(t *testing.T) {
	f := onEC2(t)
	// Without a session token the model refuses, as an instance with HttpTokens=required.
	resp, err := http.Get(f.URL() + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("IMDSv1 read answered %d", resp.StatusCode)
	}
	id, err := instanceID(context.Background())
	if err != nil || id != "i-0123456789abcdef0" {
		t.Fatalf("instanceID = %q, %v", id, err)
	}
}

func TestSpecSSMValidation(t *testing.T) {
	ok := func() Spec {
		return Spec{ImageDir: "/img", DataDir: "/data", SSM: &SSMSecrets{Region: "eu-west-1", Parameters: map[string]string{"TOKEN": "/kiln/hello/TOKEN"}}}
	}
	if s := ok(); s.validate() != nil {
		t.Fatalf("a valid spec: %v", s.validate())
	}
	for _, tc := range []struct {
		change func(*Spec)
		want   string
	}{
		{func(s *Spec) { s.SecretsFD = 3 }, "ssm and secretsFD"},
		{func(s *Spec) { s.SSM.Region = "" }, "ssm.region"},
		{func(s *Spec) { s.SSM.Parameters = nil }, "ssm.parameters: must name at least one"},
		{func(s *Spec) { s.SSM.Parameters = map[string]string{"BAD-NAME": "/p"} }, `"BAD-NAME" is not a valid secret name`},
		{func(s *Spec) { s.SSM.Parameters = map[string]string{"T": "/kiln/a b"} }, "ssm.parameters.T"},
		{func(s *Spec) { s.SSM.Parameters = map[string]string{"T": "/aws/service/x"} }, "ssm.parameters.T"},
	} {
		s := ok()
		tc.change(&s)
		if err := s.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

func TestSSMThrottlingIsTriedAgainWithinItsBudget(t *testing.T) {
	f := onEC2(t)
	f.PutParameter(awsfake.Parameter{Name: "/kiln/hello/TOKEN", Value: "canary"})
	c := newSSMClient("eu-west-1")
	c.sleep = func(context.Context, time.Duration) error { return nil }
	f.Throttle("GetParameters", ssmAttempts-1)
	out, err := c.getParameters(context.Background(), []string{"/kiln/hello/TOKEN"})
	if err != nil || len(out.Parameters) != 1 || out.Parameters[0].Value != "canary" {
		t.Fatalf("throttled %d times: %+v, %v", ssmAttempts-1, out, err)
	}
	f.Throttle("GetParameters", ssmAttempts)
	if _, err := c.getParameters(context.Background(), []string{"/kiln/hello/TOKEN"}); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("throttled beyond the budget: %v", err)
	}
	if n := len(f.CallsOf("GetParameters")); n != 2*ssmAttempts {
		t.Fatalf("%d calls, want %d", n, 2*ssmAttempts)
	}
}
