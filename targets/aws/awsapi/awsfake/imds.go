package awsfake

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"time"
)

// IMDS is what the model of the instance metadata service answers.
type IMDS struct {
	InstanceID string
	Region     string
	// Role is the instance profile's role; its credentials are AccessKeyID,
	// SecretAccessKey and Token.
	Role                                string
	AccessKeyID, SecretAccessKey, Token string
}

// SetIMDS sets what the instance metadata service answers.
func (f *Server) SetIMDS(m IMDS) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imds = m
}

// serveIMDS models IMDSv2 with HttpTokens=required: PUT /latest/api/token hands out a
// session token, and every GET must carry one.
func (f *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	i, _ := f.record(Call{Service: "imds", Action: r.Method + " " + r.URL.Path})
	status, body := f.answerIMDS(r)
	if r.URL.Path == "/latest/api/token" && status == http.StatusOK {
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
	}
	f.answered(i, status)
	write(w, "text/plain", status, []byte(body))
}

func (f *Server) answerIMDS(r *http.Request) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			return http.StatusBadRequest, ""
		}
		tok := rand.Text()
		f.tokens[tok] = true
		return http.StatusOK, tok
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, ""
	}
	if !f.tokens[r.Header.Get("X-Aws-Ec2-Metadata-Token")] {
		return http.StatusUnauthorized, ""
	}
	m := f.imds
	const creds = "/latest/meta-data/iam/security-credentials/"
	switch p := r.URL.Path; {
	case p == "/latest/meta-data/instance-id" && m.InstanceID != "":
		return http.StatusOK, m.InstanceID
	case p == "/latest/meta-data/placement/region" && m.Region != "":
		return http.StatusOK, m.Region
	case p == creds && m.Role != "":
		return http.StatusOK, m.Role
	case p == creds+m.Role && m.Role != "":
		out, _ := json.Marshal(map[string]string{"Code": "Success", "Type": "AWS-HMAC",
			"LastUpdated": time.Now().UTC().Format(time.RFC3339), "Expiration": time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
			"AccessKeyId": m.AccessKeyID, "SecretAccessKey": m.SecretAccessKey, "Token": m.Token})
		return http.StatusOK, string(out)
	}
	return http.StatusNotFound, ""
}
