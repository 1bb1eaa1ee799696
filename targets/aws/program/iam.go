package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ec2AssumeRole lets EC2 instances take a role (the trust policy of instance roles).
const ec2AssumeRole = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// policyVersion is the IAM policy language version every document kiln writes uses.
const policyVersion = "2012-10-17"

// statement is an IAM policy statement kiln writes itself.
type statement struct {
	Sid      string   `json:"Sid,omitempty"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// policyDocument is an IAM policy. Statements are kept as raw JSON, so the statements of a
// component's policy reach the role exactly as the component wrote them.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []json.RawMessage `json:"Statement"`
}

// allow returns an Allow statement as raw JSON.
func allow(sid string, actions, resources []string) json.RawMessage {
	b, err := json.Marshal(statement{Sid: sid, Effect: "Allow", Action: actions, Resource: resources})
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	return b
}

// instanceProfile declares a role EC2 instances take, its inline policy when policy is not
// nil, and the instance profile that carries it.
func instanceProfile(ctx *pulumi.Context, name string, tagsIn pulumi.StringMap, policy pulumi.StringInput, managed ...string) (*iam.InstanceProfile, []pulumi.Resource, error) {
	role, err := iam.NewRole(ctx, name, &iam.RoleArgs{AssumeRolePolicy: pulumi.String(ec2AssumeRole), Tags: tagsIn})
	if err != nil {
		return nil, nil, err
	}
	grants := []pulumi.Resource{role}
	for i, arn := range managed {
		att, err := iam.NewRolePolicyAttachment(ctx, fmt.Sprintf("%s-managed-%d", name, i), &iam.RolePolicyAttachmentArgs{Role: role.Name, PolicyArn: pulumi.String(arn)})
		if err != nil {
			return nil, nil, err
		}
		grants = append(grants, att)
	}
	if policy != nil {
		rp, err := iam.NewRolePolicy(ctx, name, &iam.RolePolicyArgs{Role: role.Name, Policy: policy})
		if err != nil {
			return nil, nil, err
		}
		grants = append(grants, rp)
	}
	profile, err := iam.NewInstanceProfile(ctx, name, &iam.InstanceProfileArgs{Role: role.Name, Tags: tagsIn})
	if err != nil {
		return nil, nil, err
	}
	return profile, grants, nil
}

// marshalPolicy writes a policy document holding stmts.
func marshalPolicy(stmts []json.RawMessage) (string, error) {
	b, err := json.Marshal(policyDocument{Version: policyVersion, Statement: stmts})
	return string(b), err
}

// instancePolicy is the instance role's inline policy: exactly the statements of the baked
// components' policies, plus reading the service's secret parameters. nil when there is
// nothing to allow.
func instancePolicy(policies [][]byte, paramARNs []pulumi.StringOutput) (pulumi.StringInput, error) {
	var stmts []json.RawMessage
	sids := map[string]int{}
	for i, p := range policies {
		ss, err := policyStatements(p)
		if err != nil {
			return nil, fmt.Errorf("policy %d: %w", i, err)
		}
		for _, st := range ss {
			var id struct{ Sid string }
			if err := json.Unmarshal(st, &id); err != nil {
				return nil, fmt.Errorf("policy %d: statement: %w", i, err)
			}
			if j, dup := sids[id.Sid]; dup && id.Sid != "" {
				return nil, fmt.Errorf("policies %d and %d both have a statement %q: one role policy needs unique Sids", j, i, id.Sid)
			}
			sids[id.Sid] = i
		}
		stmts = append(stmts, ss...)
	}
	if len(stmts) == 0 && len(paramARNs) == 0 {
		return nil, nil
	}
	arns := make([]any, len(paramARNs))
	for i, a := range paramARNs {
		arns[i] = a
	}
	return pulumi.All(arns...).ApplyT(func(arns []any) (string, error) {
		all := slices.Clone(stmts)
		if len(arns) > 0 {
			all = append(all, allow("ReadKilnSecrets", []string{"ssm:GetParameters"}, toStrings(arns)))
		}
		return marshalPolicy(all)
	}).(pulumi.StringOutput), nil
}

// policyStatements returns the statements of an IAM policy document (Statement may be one
// statement or a list).
func policyStatements(doc []byte) ([]json.RawMessage, error) {
	var d struct {
		Statement json.RawMessage
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(d.Statement, &list); err == nil {
		return list, nil
	}
	var one map[string]any
	if err := json.Unmarshal(d.Statement, &one); err != nil {
		return nil, errors.New("Statement is neither a statement nor a list of them")
	}
	return []json.RawMessage{d.Statement}, nil
}
