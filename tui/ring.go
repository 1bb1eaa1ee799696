package tui

// ring keeps the last cap items pushed into it, oldest first. Every list the console
// keeps is a ring, so a burst of events cannot grow its memory.
type ring[T any] struct {
	buf   []T
	start int
	n     int
}

func newRing[T any](capacity int) ring[T] { return ring[T]{buf: make([]T, capacity)} }

func (r *ring[T]) push(v T) {
	if len(r.buf) == 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

// len returns how many items the ring holds.
func (r *ring[T]) len() int { return r.n }

// at returns the i-th oldest item.
func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

// ptr returns a pointer to the i-th oldest item.
func (r *ring[T]) ptr(i int) *T { return &r.buf[(r.start+i)%len(r.buf)] }

// last returns a pointer to the newest item, or nil.
func (r *ring[T]) last() *T {
	if r.n == 0 {
		return nil
	}
	return &r.buf[(r.start+r.n-1)%len(r.buf)]
}

// tail returns up to k newest items, oldest first, skipping the newest skip items.
func (r *ring[T]) tail(k, skip int) []T {
	end := r.n - skip
	if end < 0 {
		end = 0
	}
	begin := end - k
	if begin < 0 {
		begin = 0
	}
	out := make([]T, 0, end-begin)
	for i := begin; i < end; i++ {
		out = append(out, r.at(i))
	}
	return out
}
