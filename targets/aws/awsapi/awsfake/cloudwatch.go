package awsfake

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Series is one CloudWatch time series of the model: the datapoints of one statistic of
// one metric with one set of dimensions, as GetMetricData would aggregate them per period.
type Series struct {
	Namespace string
	Metric    string
	Dims      map[string]string
	Stat      string // Sum, Maximum, p99, ...
	Points    []Point
}

// Point is one datapoint, timestamped at the start of its period.
type Point struct {
	At    time.Time
	Value float64
}

// MetricQuery is one decoded query of a GetMetricData call.
type MetricQuery struct {
	ID         string
	Label      string
	Expression string // a SEARCH expression; "" for a MetricStat
	Namespace  string // MetricStat
	Metric     string
	Dims       map[string]string
	Period     int64
	Stat       string
}

// MetricDataRequest is one decoded GetMetricData call (Call.Body).
type MetricDataRequest struct {
	Queries    []MetricQuery
	Start, End time.Time
}

// AddSeries adds datapoints to the model of CloudWatch.
func (f *Server) AddSeries(s ...Series) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series = append(f.series, s...)
}

// MetricData returns the decoded GetMetricData calls so far.
func (f *Server) MetricData() []MetricDataRequest {
	var out []MetricDataRequest
	for _, c := range f.CallsOf("GetMetricData") {
		if r, ok := c.Body.(MetricDataRequest); ok {
			out = append(out, r)
		}
	}
	return out
}

func (f *Server) serveCloudWatch(w http.ResponseWriter, r *http.Request, body []byte) {
	op := strings.TrimPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/")
	req, err := decodeMetricData(body)
	if op != "GetMetricData" || r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || err != nil {
		f.t.Errorf("awsfake: CloudWatch %s (protocol %q) is not modelled: %v", op, r.Header.Get("Smithy-Protocol"), err)
		http.Error(w, "not modelled", http.StatusBadRequest)
		return
	}
	i, throttled := f.record(Call{Service: "cloudwatch", Action: op, Body: req, AccessKey: accessKey(r)})
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	if throttled {
		f.answered(i, http.StatusBadRequest)
		// CloudWatch is query-compatible: it names the error as its query protocol did, and
		// the SDK takes the code from this header.
		w.Header().Set("X-Amzn-Query-Error", "Throttling;Sender")
		write(w, "application/cbor", http.StatusBadRequest, cbor.Encode(cbor.Map{
			"__type": cbor.String("com.amazonaws.cloudwatch#Throttling"), "message": cbor.String("Rate exceeded")}))
		return
	}
	f.mu.Lock()
	var results cbor.List
	for _, q := range req.Queries {
		results = append(results, f.answerMetricQuery(q, req.Start, req.End)...)
	}
	f.mu.Unlock()
	f.answered(i, http.StatusOK)
	write(w, "application/cbor", http.StatusOK, cbor.Encode(cbor.Map{"MetricDataResults": results, "Messages": cbor.List{}}))
}

// answerMetricQuery returns the results of one query: the series a MetricStat names exactly, or
// every series a SEARCH expression matches, each with its datapoints in [start, end),
// newest first (CloudWatch's default TimestampDescending).
func (f *Server) answerMetricQuery(q MetricQuery, start, end time.Time) cbor.List {
	var out cbor.List
	for _, s := range f.series {
		if !f.matches(q, s) {
			continue
		}
		var ts, vs cbor.List
		for _, p := range slices.Backward(s.Points) {
			if !p.At.Before(start) && p.At.Before(end) {
				ts = append(ts, cbor.Tag{ID: 1, Value: cbor.Float64(float64(p.At.UnixMilli()) / 1e3)})
				vs = append(vs, cbor.Float64(p.Value))
			}
		}
		out = append(out, cbor.Map{"Id": cbor.String(q.ID), "Label": cbor.String(label(q.Label, s)),
			"Timestamps": ts, "Values": vs, "StatusCode": cbor.String("Complete")})
	}
	if len(out) == 0 && q.Expression == "" {
		out = cbor.List{cbor.Map{"Id": cbor.String(q.ID), "Label": cbor.String(q.Label), "Timestamps": cbor.List{},
			"Values": cbor.List{}, "StatusCode": cbor.String("Complete")}}
	}
	return out
}

func (f *Server) matches(q MetricQuery, s Series) bool {
	if q.Expression == "" {
		return q.Namespace == s.Namespace && q.Metric == s.Metric && q.Stat == s.Stat && maps.Equal(q.Dims, s.Dims)
	}
	terms, stat, ok := parseSearch(q.Expression)
	if !ok {
		f.t.Errorf("awsfake: SEARCH expression %q is outside the model", q.Expression)
		return false
	}
	if stat != s.Stat {
		return false
	}
	props := maps.Clone(s.Dims)
	if props == nil {
		props = map[string]string{}
	}
	props["Namespace"], props["MetricName"] = s.Namespace, s.Metric
	for name, values := range terms {
		if v, ok := props[name]; !ok || !slices.Contains(values, v) {
			return false
		}
	}
	return true
}

// The subset of CloudWatch's SEARCH syntax the model understands: exact terms
// Name="value", where terms of one name are alternatives (joined by OR) and terms of
// different names must all hold, and the statistic as the second argument.
var (
	searchCall = regexp.MustCompile(`^SEARCH\('(.*)',\s*'([A-Za-z0-9.]+)'(?:,\s*\d+)?\)$`)
	searchTerm = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.]*)="((?:[^"\\]|\\.)*)"`)
)

func parseSearch(expr string) (map[string][]string, string, bool) {
	m := searchCall.FindStringSubmatch(expr)
	if m == nil {
		return nil, "", false
	}
	terms := map[string][]string{}
	for _, t := range searchTerm.FindAllStringSubmatch(m[1], -1) {
		terms[t[1]] = append(terms[t[1]], strings.ReplaceAll(t[2], `\"`, `"`))
	}
	return terms, m[2], len(terms) > 0
}

// label expands the dynamic label ${PROP('Dim.NAME')} as CloudWatch does.
func label(l string, s Series) string {
	for name, v := range s.Dims {
		l = strings.ReplaceAll(l, "${PROP('Dim."+name+"')}", v)
	}
	if l == "" {
		return s.Metric
	}
	return l
}

func decodeMetricData(body []byte) (MetricDataRequest, error) {
	var req MetricDataRequest
	v, err := cbor.Decode(body)
	if err != nil {
		return req, err
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return req, fmt.Errorf("body is %T", v)
	}
	if req.Start, err = cbor.AsTime(m["StartTime"]); err != nil {
		return req, fmt.Errorf("StartTime: %w", err)
	}
	if req.End, err = cbor.AsTime(m["EndTime"]); err != nil {
		return req, fmt.Errorf("EndTime: %w", err)
	}
	list, _ := m["MetricDataQueries"].(cbor.List)
	for _, item := range list {
		qm, ok := item.(cbor.Map)
		if !ok {
			return req, fmt.Errorf("query is %T", item)
		}
		q := MetricQuery{ID: str(qm["Id"]), Label: str(qm["Label"]), Expression: str(qm["Expression"])}
		if ms, ok := qm["MetricStat"].(cbor.Map); ok {
			q.Stat = str(ms["Stat"])
			q.Period, _ = cbor.AsInt64(ms["Period"])
			mm, _ := ms["Metric"].(cbor.Map)
			q.Namespace, q.Metric = str(mm["Namespace"]), str(mm["MetricName"])
			q.Dims = map[string]string{}
			dl, _ := mm["Dimensions"].(cbor.List)
			for _, d := range dl {
				dm, _ := d.(cbor.Map)
				q.Dims[str(dm["Name"])] = str(dm["Value"])
			}
		} else {
			q.Period, _ = cbor.AsInt64(qm["Period"])
		}
		req.Queries = append(req.Queries, q)
	}
	return req, nil
}

func str(v cbor.Value) string {
	s, _ := v.(cbor.String)
	return string(s)
}
