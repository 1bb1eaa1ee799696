package awsmodel

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Property values travel between engine and provider in Pulumi's JSON form: a secret is
// an object {SigKey: SecretSig, "value": v}, a value only known after another resource
// is created is plugin.UnknownStringValue. The model keeps values in that form, so a
// secret input comes back as a secret output, as the engine expects.

// Plain returns v with every secret marking removed.
func Plain(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v[resource.SigKey] == resource.SecretSig {
			return Plain(v["value"])
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = Plain(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Plain(e)
		}
		return out
	}
	return v
}

// IsSecret says v is a secret value.
func IsSecret(v any) bool {
	m, ok := v.(map[string]any)
	return ok && m[resource.SigKey] == resource.SecretSig
}

func str(v any) string {
	s, _ := Plain(v).(string)
	return s
}

// num returns a number input (JSON numbers are float64), or def when absent.
func num(v any, def int) int {
	switch n := Plain(v).(type) {
	case float64:
		return int(n)
	case string:
		var i int
		if _, err := fmt.Sscan(n, &i); err == nil {
			return i
		}
	}
	return def
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// randomHex returns n random hex digits: the model's invented identifiers.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// autoname is the name pulumi-aws gives a resource whose name is not set: its URN's
// name, a dash and seven random hex digits, cut to the type's limit.
func autoname(urnName string, max int, lower bool) string {
	if lower {
		urnName = strings.ToLower(urnName)
	}
	suffix := "-" + randomHex(7)
	if max > 0 && len(urnName)+len(suffix) > max {
		urnName = urnName[:max-len(suffix)]
	}
	return urnName + suffix
}
