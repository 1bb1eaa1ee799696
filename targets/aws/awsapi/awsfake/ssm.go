package awsfake

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Parameter is an SSM parameter of the model.
type Parameter struct {
	Name  string
	Value string
	Type  string // String, StringList or SecureString ("" is SecureString)
	// Undecryptable models a SecureString whose KMS key the caller may not use: reading
	// it with decryption fails the whole call with AccessDeniedException, as on AWS.
	Undecryptable bool
}

// ParametersRequest is one decoded GetParameters call (Call.Body).
type ParametersRequest struct {
	Names          []string
	WithDecryption bool
}

// maxParameters is how many names one GetParameters call may ask for.
const maxParameters = 10

// PutParameter creates or replaces a parameter in the model of SSM.
func (f *Server) PutParameter(p Parameter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.Type == "" {
		p.Type = "SecureString"
	}
	f.params[p.Name] = p
}

func (f *Server) serveSSM(w http.ResponseWriter, r *http.Request, body []byte) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	var req ParametersRequest
	err := json.Unmarshal(body, &req)
	if op != "GetParameters" || err != nil || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		f.t.Errorf("awsfake: SSM %s is not modelled (%v, %s)", op, err, r.Header.Get("Content-Type"))
		http.Error(w, "not modelled", http.StatusBadRequest)
		return
	}
	i, throttled := f.record(Call{Service: "ssm", Action: op, Body: req, AccessKey: accessKey(r)})
	status, answer := f.getParameters(req, throttled)
	f.answered(i, status)
	out, _ := json.Marshal(answer)
	write(w, "application/x-amz-json-1.1", status, out)
}

type ssmError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

type ssmParameter struct {
	Name    string
	Type    string
	Value   string
	Version int
}

func (f *Server) getParameters(req ParametersRequest, throttled bool) (int, any) {
	if throttled {
		return http.StatusBadRequest, ssmError{"ThrottlingException", "Rate exceeded"}
	}
	if len(req.Names) == 0 || len(req.Names) > maxParameters {
		return http.StatusBadRequest, ssmError{"ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := struct {
		Parameters        []ssmParameter
		InvalidParameters []string
	}{Parameters: []ssmParameter{}, InvalidParameters: []string{}}
	for _, name := range req.Names {
		p, ok := f.params[name]
		switch {
		case !ok:
			out.InvalidParameters = append(out.InvalidParameters, name)
		case p.Type == "SecureString" && p.Undecryptable && req.WithDecryption:
			return http.StatusBadRequest, ssmError{"AccessDeniedException", "User is not authorized to perform kms:Decrypt on the key of a requested parameter"}
		case p.Type == "SecureString" && !req.WithDecryption:
			out.Parameters = append(out.Parameters, ssmParameter{name, p.Type, "AQICAHh-ciphertext-of-the-model", 1})
		default:
			out.Parameters = append(out.Parameters, ssmParameter{name, p.Type, p.Value, 1})
		}
	}
	return http.StatusOK, out
}
