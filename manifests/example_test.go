package manifests_test

import (
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/manifests"
)

func ExampleParse() {
	data := []byte(`apiVersion: kiln/v1
service: hello
version: 1.4.0
app:
  main: ./cmd/hello
fleet:
  size: 2
  port: 8080
  health:
    path: /healthz
    interval: fast
    helthyThreshold: 2
target:
  local: {}
`)
	_, err := manifests.Parse("kiln.yaml", data, nil)
	var errs manifests.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Println(e)
		}
	}
	// Output:
	// kiln.yaml:11:15: fleet.health.interval: invalid duration "fast" (write a Go duration such as 2s, 500ms or 1m30s)
	// kiln.yaml:12:5: fleet.health.helthyThreshold: unknown field "helthyThreshold" (did you mean "healthyThreshold"?); known fields: path, interval, timeout, healthyThreshold, unhealthyThreshold
}

func ExampleStarter() {
	m, err := manifests.Parse("kiln.yaml", manifests.Starter("My Service"), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Service, m.Version, m.App.Main, m.Fleet.Size, m.Target.Local.Listen)
	// Output: my-service 0.1.0 . 2 127.0.0.1:8080
}
