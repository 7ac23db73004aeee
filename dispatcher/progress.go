package dispatcher

import (
	"sync"
	"time"
)

// Progress is a Tracker with the counters of Status, safe for concurrent use:
// the Relay updates it while State and Status read it.
type Progress struct {
	mu sync.Mutex
	t  Tracker
	s  Status // counters and error fields; s.State is filled from t on read
}

// NewProgress starts from a Tracker.
func NewProgress(t Tracker) *Progress { return &Progress{t: t} }

// State returns the seed-compatible State.
func (p *Progress) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t.S
}

// Tracker returns a copy of the tracker.
func (p *Progress) Tracker() Tracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t
}

// Status returns State and counters.
func (p *Progress) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	s.State = p.t.S
	return s
}

func (p *Progress) observe(seq uint64, sent bool) {
	p.mu.Lock()
	p.t.Observe(seq, sent)
	if !sent {
		p.s.Skipped++
	}
	p.mu.Unlock()
}

func (p *Progress) ack(a Ack) {
	p.mu.Lock()
	p.t.Ack(a.Seq)
	p.s.Published++
	if a.Duplicate {
		p.s.Duplicates++
	}
	p.s.ConsecutiveFailures = 0
	p.mu.Unlock()
}

// began records a session that began: the target is reachable again.
// Recovery ends; the backoff resets only with progress (ack or reconcile).
func (p *Progress) began(tail uint64) {
	p.mu.Lock()
	if tail > p.t.S.LastAckedSeqNum {
		p.s.ConsecutiveFailures = 0
	}
	p.t.Reconcile(tail)
	p.s.Recovering = false
	p.mu.Unlock()
}

// checkpointTarget returns the target if it is ahead of the checkpoint.
func (p *Progress) checkpointTarget() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t.CheckpointTarget(), p.t.NeedsCheckpoint()
}

func (p *Progress) checkpointed(seq uint64) {
	p.mu.Lock()
	p.t.Checkpointed(seq)
	p.mu.Unlock()
}

func (p *Progress) rewind() {
	p.mu.Lock()
	p.t.Rewind()
	p.mu.Unlock()
}

// fail records a failure and returns the consecutive failure count.
func (p *Progress) fail(err error, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.Recovering = true
	p.s.Failures++
	p.s.ConsecutiveFailures++
	p.s.LastError = err.Error()
	p.s.LastErrorTime = now
	return int(p.s.ConsecutiveFailures)
}

func (p *Progress) halt(err error, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.Halted = true
	p.s.LastError = err.Error()
	p.s.LastErrorTime = now
}

func (p *Progress) deadLettered() {
	p.mu.Lock()
	p.s.DeadLettered++
	p.mu.Unlock()
}
