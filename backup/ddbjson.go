package backup

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is one DynamoDB item.
type Item = map[string]types.AttributeValue

// appendItemJSON appends item in DynamoDB JSON ({"name":{"S":"v"},...}) with
// attribute names sorted, so equal items encode to equal bytes.
func appendItemJSON(b []byte, item Item) ([]byte, error) {
	names := make([]string, 0, len(item))
	for k := range item {
		names = append(names, k)
	}
	sort.Strings(names)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendAV(b, item[k]); err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

func appendQuoted(b []byte, s string) []byte {
	// encoding/json escaping keeps the output valid JSON for every string
	// (strconv.Quote would write \x escapes JSON does not know).
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func appendAV(b []byte, av types.AttributeValue) ([]byte, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		b = append(b, `{"S":`...)
		b = appendQuoted(b, v.Value)
	case *types.AttributeValueMemberN:
		b = append(b, `{"N":`...)
		b = appendQuoted(b, v.Value)
	case *types.AttributeValueMemberB:
		b = append(b, `{"B":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.Value)
		b = append(b, '"')
	case *types.AttributeValueMemberBOOL:
		b = append(b, `{"BOOL":`...)
		b = strconv.AppendBool(b, v.Value)
	case *types.AttributeValueMemberNULL:
		b = append(b, `{"NULL":true`...)
	case *types.AttributeValueMemberSS:
		b = append(b, `{"SS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, s)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberNS:
		b = append(b, `{"NS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, s)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberBS:
		b = append(b, `{"BS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, s)
			b = append(b, '"')
		}
		b = append(b, ']')
	case *types.AttributeValueMemberL:
		b = append(b, `{"L":[`...)
		for i, e := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendAV(b, e); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		b = append(b, ']')
	case *types.AttributeValueMemberM:
		b = append(b, `{"M":`...)
		var err error
		if b, err = appendItemJSON(b, v.Value); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported attribute value type %T", av)
	}
	return append(b, '}'), nil
}

// decodeItemJSON parses DynamoDB JSON into an item.
func decodeItemJSON(data []byte) (Item, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	item := make(Item, len(raw))
	for k, v := range raw {
		av, err := decodeAV(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		item[k] = av
	}
	return item, nil
}

func decodeAV(data []byte) (types.AttributeValue, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	if len(raw) != 1 {
		return nil, fmt.Errorf("attribute value must have exactly one type key, has %d", len(raw))
	}
	for t, v := range raw {
		switch t {
		case "S", "N":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			if t == "S" {
				return &types.AttributeValueMemberS{Value: s}, nil
			}
			return &types.AttributeValueMemberN{Value: s}, nil
		case "B":
			var bs []byte // encoding/json decodes base64 into []byte
			if err := json.Unmarshal(v, &bs); err != nil {
				return nil, fmt.Errorf("B: %w", err)
			}
			if bs == nil {
				bs = []byte{}
			}
			return &types.AttributeValueMemberB{Value: bs}, nil
		case "BOOL":
			var x bool
			if err := json.Unmarshal(v, &x); err != nil {
				return nil, fmt.Errorf("BOOL: %w", err)
			}
			return &types.AttributeValueMemberBOOL{Value: x}, nil
		case "NULL":
			return &types.AttributeValueMemberNULL{Value: true}, nil
		case "SS", "NS":
			var ss []string
			if err := json.Unmarshal(v, &ss); err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			if t == "SS" {
				return &types.AttributeValueMemberSS{Value: ss}, nil
			}
			return &types.AttributeValueMemberNS{Value: ss}, nil
		case "BS":
			var bs [][]byte
			if err := json.Unmarshal(v, &bs); err != nil {
				return nil, fmt.Errorf("BS: %w", err)
			}
			return &types.AttributeValueMemberBS{Value: bs}, nil
		case "L":
			var elems []json.RawMessage
			if err := json.Unmarshal(v, &elems); err != nil {
				return nil, fmt.Errorf("L: %w", err)
			}
			l := make([]types.AttributeValue, len(elems))
			for i, e := range elems {
				av, err := decodeAV(e)
				if err != nil {
					return nil, fmt.Errorf("L[%d]: %w", i, err)
				}
				l[i] = av
			}
			return &types.AttributeValueMemberL{Value: l}, nil
		case "M":
			m, err := decodeItemJSON(v)
			if err != nil {
				return nil, fmt.Errorf("M: %w", err)
			}
			return &types.AttributeValueMemberM{Value: m}, nil
		default:
			return nil, fmt.Errorf("unknown attribute value type %q", t)
		}
	}
	panic("unreachable")
}

// keyOf returns the key attributes of item named by keyNames.
func keyOf(item Item, keyNames []string) (Item, error) {
	k := make(Item, len(keyNames))
	for _, n := range keyNames {
		v, ok := item[n]
		if !ok {
			return nil, fmt.Errorf("item lacks key attribute %q", n)
		}
		k[n] = v
	}
	return k, nil
}
