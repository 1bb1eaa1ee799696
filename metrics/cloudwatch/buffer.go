package cloudwatch

import "time"

// Dim is one CloudWatch dimension.
type Dim struct {
	Name, Value string // dimension name and value
}

// Datum is one value waiting to be sent with PutMetricData.
type Datum struct {
	Name       string    // metric name
	Dims       []Dim     // sorted by name; shared between datums of a series, never modified
	Value      float64   // a finite value
	Unit       string    // a CloudWatch StandardUnit, e.g. "Count", "Bytes", "None"
	At         time.Time // when the value was gathered
	Resolution int32     // 1 or 60
}

// ring is a fixed-capacity FIFO of datums. When full, adding drops the oldest datum. Every
// datum gets a sequence number so a batch taken from the head can be committed after the
// send even if some of it was dropped meanwhile.
type ring struct {
	buf     []Datum
	head    int    // index of the oldest datum
	n       int    // datums held
	headSeq uint64 // sequence number of buf[head]
	dropped uint64
}

func newRing(capacity int) *ring { return &ring{buf: make([]Datum, capacity)} }

func (r *ring) push(d Datum) {
	if r.n == len(r.buf) {
		r.buf[r.head] = Datum{} // release its strings for the collector
		r.head = (r.head + 1) % len(r.buf)
		r.headSeq++
		r.n--
		r.dropped++
	}
	r.buf[(r.head+r.n)%len(r.buf)] = d
	r.n++
}

// peek copies up to max datums from the head into dst while fits accepts them, and returns
// them with the sequence number just past the last one.
func (r *ring) peek(dst []Datum, max int, fits func(Datum) bool) ([]Datum, uint64) {
	dst = dst[:0]
	for i := 0; i < r.n && len(dst) < max; i++ {
		d := r.buf[(r.head+i)%len(r.buf)]
		if !fits(d) && len(dst) > 0 {
			break
		}
		dst = append(dst, d)
	}
	return dst, r.headSeq + uint64(len(dst))
}

// commit removes every datum with a sequence number below upTo that is still held.
func (r *ring) commit(upTo uint64) {
	for r.n > 0 && r.headSeq < upTo {
		r.buf[r.head] = Datum{}
		r.head = (r.head + 1) % len(r.buf)
		r.headSeq++
		r.n--
	}
}
