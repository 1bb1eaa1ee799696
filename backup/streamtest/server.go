// Package streamtest is a DynamoDB Streams server for tests: it speaks the
// real JSON 1.0 API (ListStreams, DescribeStream, GetShardIterator,
// GetRecords) with shards, splits, iterators that expire after 15 minutes
// and 24 h retention, on an injectable clock. dynalite has no Streams, so
// tests mirror the writes they make to dynalite into this server.
package streamtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	// IteratorTTL is how long a shard iterator stays valid.
	IteratorTTL = 15 * time.Minute
	// Retention is how long records stay readable.
	Retention = 24 * time.Hour
)

// Server is a DynamoDB Streams API server on 127.0.0.1.
type Server struct {
	URL string

	mu      sync.Mutex
	now     time.Time
	seq     int64
	streams map[string]*stream
	// OnGetRecords, when set, runs before each GetRecords is answered
	// (without the server lock), so tests can advance time mid-read.
	OnGetRecords func(call int)
	calls        int
	srv          *httptest.Server
}

type stream struct {
	arn, table, view string
	keySchema        []map[string]string
	shards           []*shard
	nextShard        int
}

type shard struct {
	id, parent string
	records    []record
	trimmed    int // records before this index are gone
	closed     bool
	startSeq   string
	endSeq     string
}

type record struct {
	seq      string
	created  time.Time
	event    string
	keys     json.RawMessage
	newImage json.RawMessage
	oldImage json.RawMessage
}

// New starts a server whose clock starts at start. Close it when done.
func New(start time.Time) *Server {
	s := &Server{now: start, streams: map[string]*stream{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Advance moves the server's clock forward and trims records older than
// Retention.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
	for _, st := range s.streams {
		for _, sh := range st.shards {
			for sh.trimmed < len(sh.records) && s.now.Sub(sh.records[sh.trimmed].created) > Retention {
				sh.trimmed++
			}
		}
	}
}

// CreateStream creates a NEW_AND_OLD_IMAGES stream for table with one open
// shard and returns its ARN. hashKey names the partition key attribute.
func (s *Server) CreateStream(table, hashKey, rangeKey string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	arn := fmt.Sprintf("arn:aws:dynamodb:us-east-1:000000000000:table/%s/stream/%s", table, s.now.UTC().Format("2006-01-02T15:04:05.000"))
	ks := []map[string]string{{"AttributeName": hashKey, "KeyType": "HASH"}}
	if rangeKey != "" {
		ks = append(ks, map[string]string{"AttributeName": rangeKey, "KeyType": "RANGE"})
	}
	st := &stream{arn: arn, table: table, view: "NEW_AND_OLD_IMAGES", keySchema: ks}
	st.newShard("")
	s.streams[arn] = st
	return arn
}

func (st *stream) newShard(parent string) *shard {
	st.nextShard++
	sh := &shard{id: fmt.Sprintf("shardId-%020d-%08x", st.nextShard, st.nextShard*2654435761), parent: parent}
	st.shards = append(st.shards, sh)
	return sh
}

// Record appends a change. keys and images are DynamoDB JSON objects;
// newImage is nil for REMOVE. A key always goes to the same open shard, so
// its changes stay in one parent→child lineage, as in DynamoDB.
func (s *Server) Record(arn, event string, keys, newImage, oldImage json.RawMessage, hashValue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[arn]
	var open []*shard
	for _, sh := range st.shards {
		if !sh.closed {
			open = append(open, sh)
		}
	}
	h := fnv.New32a()
	h.Write([]byte(hashValue))
	sh := open[int(h.Sum32())%len(open)]
	s.seq++
	seq := fmt.Sprintf("%021d", s.seq*100)
	if sh.startSeq == "" {
		sh.startSeq = seq
	}
	sh.records = append(sh.records, record{seq: seq, created: s.now, event: event, keys: keys, newImage: newImage, oldImage: oldImage})
}

// Split closes every open shard and gives each two children.
func (s *Server) Split(arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[arn]
	for _, sh := range append([]*shard(nil), st.shards...) {
		if sh.closed {
			continue
		}
		sh.closed = true
		if n := len(sh.records); n > 0 {
			sh.endSeq = sh.records[n-1].seq
		} else {
			s.seq++
			sh.endSeq = fmt.Sprintf("%021d", s.seq*100)
		}
		st.newShard(sh.id)
		st.newShard(sh.id)
	}
}

type apiError struct {
	code, msg string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "DynamoDBStreams_20120810.")
	body, _ := io.ReadAll(r.Body)
	if !ok {
		writeErr(w, apiError{"UnknownOperationException", "unknown target " + target})
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeErr(w, apiError{"SerializationException", err.Error()})
		return
	}
	if op == "GetRecords" && s.OnGetRecords != nil {
		s.mu.Lock()
		s.calls++
		n := s.calls
		s.mu.Unlock()
		s.OnGetRecords(n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out any
	var aerr *apiError
	switch op {
	case "ListStreams":
		out, aerr = s.listStreams(in)
	case "DescribeStream":
		out, aerr = s.describeStream(in)
	case "GetShardIterator":
		out, aerr = s.getShardIterator(in)
	case "GetRecords":
		out, aerr = s.getRecords(in)
	default:
		aerr = &apiError{"UnknownOperationException", "unsupported operation " + op}
	}
	if aerr != nil {
		writeErr(w, *aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

func writeErr(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + e.code, "message": e.msg})
}

func str(in map[string]any, k string) string { v, _ := in[k].(string); return v }

func (s *Server) listStreams(in map[string]any) (any, *apiError) {
	var out []map[string]string
	for _, st := range s.streams {
		if t := str(in, "TableName"); t != "" && t != st.table {
			continue
		}
		out = append(out, map[string]string{"StreamArn": st.arn, "TableName": st.table, "StreamLabel": st.arn[strings.LastIndex(st.arn, "/")+1:]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["StreamArn"] < out[j]["StreamArn"] })
	return map[string]any{"Streams": out}, nil
}

func (s *Server) stream(arn string) (*stream, *apiError) {
	st, ok := s.streams[arn]
	if !ok {
		return nil, &apiError{"ResourceNotFoundException", "Requested resource not found: Stream: " + arn + " not found"}
	}
	return st, nil
}

func (s *Server) describeStream(in map[string]any) (any, *apiError) {
	st, e := s.stream(str(in, "StreamArn"))
	if e != nil {
		return nil, e
	}
	limit := 100
	if l, ok := in["Limit"].(float64); ok && l > 0 {
		limit = int(l)
	}
	start := str(in, "ExclusiveStartShardId")
	var shards []map[string]any
	var last string
	past := start == ""
	for _, sh := range st.shards {
		if !past {
			past = sh.id == start
			continue
		}
		if len(shards) == limit {
			break
		}
		rng := map[string]string{}
		if sh.startSeq != "" {
			rng["StartingSequenceNumber"] = sh.startSeq
		}
		if sh.closed {
			rng["EndingSequenceNumber"] = sh.endSeq
		}
		d := map[string]any{"ShardId": sh.id, "SequenceNumberRange": rng}
		if sh.parent != "" {
			d["ParentShardId"] = sh.parent
		}
		shards = append(shards, d)
		last = sh.id
	}
	desc := map[string]any{
		"StreamArn": st.arn, "StreamLabel": st.arn[strings.LastIndex(st.arn, "/")+1:], "StreamStatus": "ENABLED",
		"StreamViewType": st.view, "TableName": st.table, "KeySchema": st.keySchema, "Shards": shards,
	}
	if len(shards) == limit && last != st.shards[len(st.shards)-1].id {
		desc["LastEvaluatedShardId"] = last
	}
	return map[string]any{"StreamDescription": desc}, nil
}

type iterator struct {
	Stream string `json:"s"`
	Shard  string `json:"h"`
	Pos    int    `json:"p"`
	Issued int64  `json:"t"`
}

func (s *Server) encodeIter(st *stream, sh *shard, pos int) string {
	b, _ := json.Marshal(iterator{st.arn, sh.id, pos, s.now.UnixNano()})
	return base64.StdEncoding.EncodeToString(b)
}

func (st *stream) shard(id string) *shard {
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

func (s *Server) getShardIterator(in map[string]any) (any, *apiError) {
	st, e := s.stream(str(in, "StreamArn"))
	if e != nil {
		return nil, e
	}
	sh := st.shard(str(in, "ShardId"))
	if sh == nil {
		return nil, &apiError{"ResourceNotFoundException", "Requested resource not found: Shard does not exist"}
	}
	var pos int
	switch t := str(in, "ShardIteratorType"); t {
	case "TRIM_HORIZON":
		pos = sh.trimmed
	case "LATEST":
		pos = len(sh.records)
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		seq := str(in, "SequenceNumber")
		i := sort.Search(len(sh.records), func(i int) bool { return sh.records[i].seq >= seq })
		if i == len(sh.records) || sh.records[i].seq != seq {
			return nil, &apiError{"ValidationException", "Invalid SequenceNumber for shard " + sh.id}
		}
		if i < sh.trimmed {
			return nil, &apiError{"TrimmedDataAccessException", "the requested sequence number is beyond the trim horizon"}
		}
		pos = i
		if t == "AFTER_SEQUENCE_NUMBER" {
			pos++
		}
	default:
		return nil, &apiError{"ValidationException", "invalid ShardIteratorType " + t}
	}
	return map[string]any{"ShardIterator": s.encodeIter(st, sh, pos)}, nil
}

func (s *Server) getRecords(in map[string]any) (any, *apiError) {
	raw, err := base64.StdEncoding.DecodeString(str(in, "ShardIterator"))
	var it iterator
	if err == nil {
		err = json.Unmarshal(raw, &it)
	}
	if err != nil {
		return nil, &apiError{"ValidationException", "invalid ShardIterator"}
	}
	if s.now.Sub(time.Unix(0, it.Issued)) > IteratorTTL {
		return nil, &apiError{"ExpiredIteratorException", "Iterator expired. The iterator was created at time " + time.Unix(0, it.Issued).UTC().String()}
	}
	st, e := s.stream(it.Stream)
	if e != nil {
		return nil, e
	}
	sh := st.shard(it.Shard)
	if sh == nil {
		return nil, &apiError{"ResourceNotFoundException", "shard not found"}
	}
	if it.Pos < sh.trimmed {
		return nil, &apiError{"TrimmedDataAccessException", "the iterator points before the trim horizon"}
	}
	limit := 1000
	if l, ok := in["Limit"].(float64); ok && l > 0 {
		limit = int(l)
	}
	end := min(it.Pos+limit, len(sh.records))
	recs := []map[string]any{}
	for _, r := range sh.records[it.Pos:end] {
		d := map[string]any{
			"ApproximateCreationDateTime": float64(r.created.Unix()), "Keys": r.keys, "SequenceNumber": r.seq,
			"SizeBytes": len(r.keys) + len(r.newImage) + len(r.oldImage), "StreamViewType": st.view,
		}
		if r.newImage != nil {
			d["NewImage"] = r.newImage
		}
		if r.oldImage != nil {
			d["OldImage"] = r.oldImage
		}
		recs = append(recs, map[string]any{
			"eventID": "ev-" + r.seq, "eventName": r.event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
			"awsRegion": "us-east-1", "dynamodb": d,
		})
	}
	out := map[string]any{"Records": recs}
	if !(sh.closed && end == len(sh.records)) {
		out["NextShardIterator"] = s.encodeIter(st, sh, end)
	}
	return out, nil
}
