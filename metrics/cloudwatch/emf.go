package cloudwatch

import (
	"encoding/json"
	"io"
)

// writeEMF appends one CloudWatch embedded metric format line per datum to w. The
// CloudWatch agent (or any log shipper into CloudWatch Logs) turns such lines into metrics
// without PutMetricData.
func writeEMF(w io.Writer, namespace string, ds []Datum) error {
	var buf []byte
	for _, d := range ds {
		names := make([]string, len(d.Dims))
		line := make(map[string]any, len(d.Dims)+2)
		for i, dim := range d.Dims {
			names[i] = dim.Name
			line[dim.Name] = dim.Value
		}
		line[d.Name] = d.Value
		line["_aws"] = map[string]any{
			"Timestamp": d.At.UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  namespace,
				"Dimensions": [][]string{names},
				"Metrics":    []any{map[string]any{"Name": d.Name, "Unit": d.Unit, "StorageResolution": d.Resolution}},
			}},
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	_, err := w.Write(buf)
	return err
}
