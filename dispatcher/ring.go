package dispatcher

import "time"

// ring is the FIFO of events in flight: their sequence numbers and when
// they were sent.
type ring struct {
	seq  []uint64
	sent []time.Time
	head int
	n    int
}

func newRing(capacity int) *ring {
	return &ring{seq: make([]uint64, capacity), sent: make([]time.Time, capacity)}
}

func (r *ring) len() int   { return r.n }
func (r *ring) full() bool { return r.n == len(r.seq) }

func (r *ring) push(seq uint64, sent time.Time) {
	i := (r.head + r.n) % len(r.seq)
	r.seq[i], r.sent[i] = seq, sent
	r.n++
}

func (r *ring) front() (uint64, time.Time, bool) {
	if r.n == 0 {
		return 0, time.Time{}, false
	}
	return r.seq[r.head], r.sent[r.head], true
}

func (r *ring) pop() {
	r.head = (r.head + 1) % len(r.seq)
	r.n--
}
