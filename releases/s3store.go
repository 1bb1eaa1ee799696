package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/kilnhq/kiln/backend"
)

// S3Store is the [Store] of a shared backend: the stack's lock, rollout state and history
// are objects under a prefix of an S3 bucket (AWS S3 or any S3-compatible store), so
// every machine that reaches the bucket sees the same ones.
//
// The lock is a lease. It is taken with a conditional write (If-None-Match: * when there
// is no lock object, If-Match on the object's ETag when the last holder released it),
// renewed with If-Match while the holder runs, and released by overwriting it, again
// with If-Match. A conditional write that loses a race fails with 412, so exactly one of
// several machines taking the lock at once gets it. A holder on another host is stale only
// once its lease has expired (by the reader's clock: keep clocks in sync, as NTP does); a
// holder on this host is judged by its pid, as with the file backend.
type S3Store struct {
	client        *s3.Client
	bucket, dir   string
	stack, host   string
	lease         time.Duration
	renewInterval time.Duration
	timeout       time.Duration
	// Now is the clock of lease expiry and LockedError.At; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	held *s3Lease // while this store holds the lock
}

var _ Store = (*S3Store)(nil)

// s3Lease is the lock this store holds: what it wrote and the object's ETag after it.
type s3Lease struct {
	doc  lockDoc
	etag string
	lost error // set once a renewal found the lock taken from us
	stop chan struct{}
	done chan struct{}
}

// lockDoc is the lock object. A released lock stays as a document with Released set, so
// the next holder takes it with If-Match rather than recreating it.
type lockDoc struct {
	Holder   Holder    `json:"holder"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// S3Options say where an S3Store keeps its objects and how long its leases last.
type S3Options struct {
	// Client reaches the bucket.
	Client *s3.Client
	// Bucket and Prefix locate the backend; the stack's objects are under
	// <Prefix>/.kiln/<stack>/, beside Pulumi's own .pulumi/.
	Bucket, Prefix string
	// Lease is how long a lock stays fresh without renewal; zero is backend.DefaultLease.
	Lease time.Duration
	// Host names this machine in the lock; empty is os.Hostname.
	Host string
	// Timeout bounds each call of the backend; zero is DefaultStoreTimeout.
	Timeout time.Duration
}

// OpenS3Store opens the store of stack in a shared S3 backend.
func OpenS3Store(opts S3Options, stack string) (*S3Store, error) {
	if opts.Client == nil || opts.Bucket == "" || stack == "" {
		return nil, errors.New("open release store: an S3 store needs a client, a bucket and a stack")
	}
	host := opts.Host
	if host == "" {
		var err error
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "unknown"
		}
	}
	lease := opts.Lease
	if lease <= 0 {
		lease = backend.DefaultLease
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	return &S3Store{client: opts.Client, bucket: opts.Bucket, dir: path.Join(opts.Prefix, ".kiln", stack),
		stack: stack, host: host, lease: lease, renewInterval: lease / 3, timeout: timeout}, nil
}

func (s *S3Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *S3Store) key(name string) string { return path.Join(s.dir, name) }

// errPrecondition is a conditional write that lost: the object changed (or appeared).
var errPrecondition = errors.New("precondition failed")

// get reads an object; found is false when there is none.
func (s *S3Store) get(ctx context.Context, name string) (data []byte, etag string, found bool, err error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		if isNoSuchKey(err) {
			return nil, "", false, nil
		}
		return nil, "", false, err
	}
	defer out.Body.Close()
	data, err = io.ReadAll(out.Body)
	if err != nil {
		return nil, "", false, err
	}
	return data, aws.ToString(out.ETag), true, nil
}

// put writes an object whole; ifMatch "*"-less conditions: ifNoneMatch creates only,
// ifMatch replaces only that version. It returns the new ETag.
func (s *S3Store) put(ctx context.Context, name string, data []byte, ifNoneMatch bool, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name)), Body: bytes.NewReader(data),
		ContentType: aws.String("application/json")}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if isPreconditionFailed(err) {
			return "", errPrecondition
		}
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func isNoSuchKey(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

func (s *S3Store) readLock(ctx context.Context) (doc lockDoc, etag string, found bool, err error) {
	data, etag, found, err := s.get(ctx, lockFile)
	if err != nil || !found {
		return doc, etag, found, err
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, etag, true, fmt.Errorf("s3://%s/%s: %w", s.bucket, s.key(lockFile), err)
	}
	return doc, etag, true, nil
}

// Lock implements [Store.Lock]. While the lock is held, a goroutine renews its lease; the
// returned unlock stops it and releases the lock.
func (s *S3Store) Lock(ctx context.Context, h Holder) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
	}
	if h.Since.IsZero() {
		h.Since = s.now().UTC().Round(0)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	doc := lockDoc{Holder: h}
	for range 3 {
		cur, etag, found, err := s.readLock(ctx)
		if err != nil && !found {
			return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
		}
		if found && (err != nil || !cur.Released) {
			return nil, s.lockedError(cur, err)
		}
		doc.Expires = s.now().Add(s.lease).UTC().Round(0)
		data, _ := json.Marshal(doc) // a lockDoc always marshals
		newTag, err := s.put(ctx, lockFile, data, !found, etag)
		if errors.Is(err, errPrecondition) {
			continue // someone else wrote the lock meanwhile: read who
		}
		if err != nil {
			return nil, fmt.Errorf("lock stack %s: %w", s.stack, err)
		}
		l := &s3Lease{doc: doc, etag: newTag, stop: make(chan struct{}), done: make(chan struct{})}
		s.mu.Lock()
		s.held = l
		s.mu.Unlock()
		go s.renew(l)
		var once sync.Once
		var uerr error
		return func() error {
			once.Do(func() { uerr = s.unlock(l) })
			return uerr
		}, nil
	}
	return nil, fmt.Errorf("lock stack %s: the lock kept changing hands", s.stack)
}

// lockedError describes a held lock: stale once the holder is known to be gone (a
// process of this host that no longer runs, or a lease that expired).
func (s *S3Store) lockedError(cur lockDoc, rerr error) *LockedError {
	le := &LockedError{Stack: s.stack, Holder: cur.Holder, At: s.now(), Expires: cur.Expires, Err: rerr}
	if rerr != nil {
		return le
	}
	switch judge(cur.Holder, s.host) {
	case holderGone:
		le.Stale = true
	case holderOtherHost:
		le.OtherHost = true
		le.Stale = !s.now().Before(cur.Expires)
	}
	return le
}

// renew extends the lease every renewInterval until stopped; a renewal that finds the
// lock changed marks it lost, and the holder's next write fails with ErrLockLost.
func (s *S3Store) renew(l *s3Lease) {
	defer close(l.done)
	t := time.NewTicker(s.renewInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		doc, etag := l.doc, l.etag
		s.mu.Unlock()
		doc.Expires = s.now().Add(s.lease).UTC().Round(0)
		data, _ := json.Marshal(doc)
		ctx, cancel := context.WithTimeout(context.Background(), s.renewInterval)
		newTag, err := s.put(ctx, lockFile, data, false, etag)
		cancel()
		s.mu.Lock()
		switch {
		case errors.Is(err, errPrecondition):
			l.lost = fmt.Errorf("renew the lock of stack %s: %w: someone broke it", s.stack, ErrLockLost)
		case err == nil:
			l.doc, l.etag = doc, newTag
		}
		// Another error (the backend unreachable for a moment) is retried at the next
		// tick; the lease outlives two missed renewals.
		lost := l.lost != nil
		s.mu.Unlock()
		if lost {
			return
		}
	}
}

func (s *S3Store) unlock(l *s3Lease) error {
	close(l.stop)
	<-l.done
	s.mu.Lock()
	if s.held == l {
		s.held = nil
	}
	lost, doc, etag := l.lost, l.doc, l.etag
	s.mu.Unlock()
	if lost != nil {
		return lost
	}
	doc.Released = true
	doc.Expires = s.now().UTC().Round(0)
	data, _ := json.Marshal(doc)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if _, err := s.put(ctx, lockFile, data, false, etag); err != nil {
		if errors.Is(err, errPrecondition) {
			return fmt.Errorf("unlock stack %s: %w: it was broken", s.stack, ErrLockLost)
		}
		return fmt.Errorf("unlock stack %s: %w", s.stack, err)
	}
	return nil
}

// BreakLock implements [Store.BreakLock]: it refuses while the holder is alive on this
// host or its lease is fresh on another, and releases the lock with If-Match otherwise,
// so a lock taken meanwhile by someone else stays.
func (s *S3Store) BreakLock(expected Holder) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	cur, etag, found, rerr := s.readLock(ctx)
	if !found && rerr == nil || rerr == nil && cur.Released {
		return nil
	}
	if !found {
		return fmt.Errorf("break lock of stack %s: %w", s.stack, rerr)
	}
	switch {
	case rerr != nil:
		if expected != (Holder{}) {
			return fmt.Errorf("break lock of stack %s: %w: the lock cannot be read (%v), not held by %s", s.stack, ErrLockChanged, rerr, expected)
		}
	case !cur.Holder.Same(expected):
		return fmt.Errorf("break lock of stack %s: %w: it is held by %s since %s, not by %s", s.stack, ErrLockChanged, cur.Holder,
			sinceText(cur.Holder.Since, time.Time{}), expected)
	default:
		switch judge(cur.Holder, s.host) {
		case holderAlive:
			return fmt.Errorf("break lock of stack %s: %w: %s; stop it instead", s.stack, ErrHolderAlive, cur.Holder)
		case holderOtherHost:
			if s.now().Before(cur.Expires) {
				return fmt.Errorf("break lock of stack %s: %w: %s renewed its lease until %s; wait until then, or stop it",
					s.stack, ErrHolderAlive, cur.Holder, cur.Expires.Local().Format("15:04:05"))
			}
		}
	}
	doc := cur
	doc.Released, doc.Expires = true, s.now().UTC().Round(0)
	data, _ := json.Marshal(doc)
	if _, err := s.put(ctx, lockFile, data, false, etag); err != nil {
		if errors.Is(err, errPrecondition) {
			return fmt.Errorf("break lock of stack %s: %w", s.stack, ErrLockChanged)
		}
		return fmt.Errorf("break lock of stack %s: %w", s.stack, err)
	}
	return nil
}

// checkHeld fails with ErrLockLost when this store took the lock and it is no longer its
// own: a renewal found it broken, or the lock object is not the one it last wrote.
func (s *S3Store) checkHeld(ctx context.Context, what string) error {
	s.mu.Lock()
	l := s.held
	var lost error
	var etag string
	if l != nil {
		lost, etag = l.lost, l.etag
	}
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	if lost != nil {
		return fmt.Errorf("%s: %w", what, lost)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(lockFile))})
	if err != nil {
		return fmt.Errorf("%s of stack %s: read the lock: %w", what, s.stack, err)
	}
	if aws.ToString(out.ETag) != etag {
		// A renewal may have just replaced it: compare with the latest we wrote.
		s.mu.Lock()
		etag = l.etag
		s.mu.Unlock()
		if aws.ToString(out.ETag) != etag {
			return fmt.Errorf("%s of stack %s: %w", what, s.stack, ErrLockLost)
		}
	}
	return nil
}

// DefaultStoreTimeout bounds one call of the backend: an unreachable or slow backend gives an
// error, never a hang.
const DefaultStoreTimeout = 30 * time.Second

// SaveState implements [Store.SaveState]: one PUT, which S3 applies whole or not at all.
func (s *S3Store) SaveState(st State) error {
	if st.ID == "" {
		return fmt.Errorf("save rollout state of stack %s: field id is empty", s.stack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.checkHeld(ctx, "save rollout state"); err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save rollout state of stack %s: %w", s.stack, err)
	}
	if _, err := s.put(ctx, stateFile, append(data, '\n'), false, ""); err != nil {
		return fmt.Errorf("save rollout state of stack %s: %w", s.stack, err)
	}
	return nil
}

// LoadState implements [Store.LoadState].
func (s *S3Store) LoadState() (State, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	data, _, found, err := s.get(ctx, stateFile)
	if err != nil {
		return State{}, false, fmt.Errorf("load rollout state of stack %s: %w", s.stack, err)
	}
	if !found {
		return State{}, false, nil
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, false, fmt.Errorf("load rollout state of stack %s: %w", s.stack, err)
	}
	return st, true, nil
}

// ClearState implements [Store.ClearState].
func (s *S3Store) ClearState() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.checkHeld(ctx, "clear rollout state"); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(stateFile))})
	if err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("clear rollout state of stack %s: %w", s.stack, err)
	}
	return nil
}

// Record implements [Store.Record]: read, upsert and a conditional write of the history,
// again from the read if another writer got in between, so no record is ever lost.
func (s *S3Store) Record(r Record) error {
	if r.ID == "" {
		return fmt.Errorf("record release of stack %s: field id is empty", s.stack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.checkHeld(ctx, "record release"); err != nil {
		return err
	}
	for range 10 {
		recs, etag, found, err := s.history(ctx)
		if err != nil {
			return fmt.Errorf("record release %s: %w", r.ID, err)
		}
		_, err = s.put(ctx, historyFile, encodeHistory(upsert(recs, r)), !found, etag)
		if errors.Is(err, errPrecondition) {
			continue
		}
		if err != nil {
			return fmt.Errorf("record release %s of stack %s: %w", r.ID, s.stack, err)
		}
		return nil
	}
	return fmt.Errorf("record release %s of stack %s: the history kept changing", r.ID, s.stack)
}

func (s *S3Store) history(ctx context.Context) ([]Record, string, bool, error) {
	data, etag, found, err := s.get(ctx, historyFile)
	if err != nil || !found {
		return nil, "", found, err
	}
	var doc historyDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, "", true, fmt.Errorf("read history of stack %s: %w", s.stack, err)
	}
	return doc.Records, etag, true, nil
}

// MarkMoved implements [Store.MarkMoved].
func (s *S3Store) MarkMoved(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	data, err := json.Marshal(moved{To: url, At: s.now().UTC()})
	if err != nil {
		return err
	}
	_, err = s.put(ctx, movedFile, data, false, "")
	return err
}

// MovedTo implements [Store.MovedTo].
func (s *S3Store) MovedTo() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	data, _, found, err := s.get(ctx, movedFile)
	if err != nil || !found {
		return "", err
	}
	var m moved
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("s3://%s/%s: %w", s.bucket, s.key(movedFile), err)
	}
	return m.To, nil
}

// History implements [Store.History].
func (s *S3Store) History() ([]Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	recs, _, _, err := s.history(ctx)
	if err != nil {
		return nil, fmt.Errorf("read history of stack %s: %w", s.stack, err)
	}
	return recs, nil
}
