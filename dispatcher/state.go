package dispatcher

import "time"

// State is the dispatcher's progress.
type State struct {
	// LastAckedSeqNum is the highest event whose publish the server
	// acknowledged. Acks are cumulative: every event <= it is delivered.
	LastAckedSeqNum uint64
	// LastObservedSeqNum is the highest event read and handed to the
	// publisher, or skipped by the message creator.
	LastObservedSeqNum uint64
	// LastCheckpoint is the highest sequence durably recorded as done.
	LastCheckpoint uint64
}

// Tracker holds the sequence rules both runtimes share: what has been
// observed, sent and acknowledged, what the checkpoint target is, and where
// delivery resumes after a failure. It is plain data, not safe for
// concurrent use, and deterministic, so a Temporal workflow can run it.
type Tracker struct {
	// S is the seed-compatible State.
	S State
	// LastSentSeqNum is the highest event handed to the publisher (not
	// skipped). Events in (LastAckedSeqNum, LastSentSeqNum] are pending.
	LastSentSeqNum uint64
}

// NewTracker resumes from a State. A State alone does not say which events
// after LastAckedSeqNum were skipped and which were pending, so the tracker
// resumes after max(LastAckedSeqNum, LastCheckpoint), with nothing pending.
// (To carry progress exactly, carry the Tracker.)
func NewTracker(s State) Tracker {
	done := max(s.LastAckedSeqNum, s.LastCheckpoint)
	return Tracker{
		S:              State{LastAckedSeqNum: done, LastObservedSeqNum: done, LastCheckpoint: s.LastCheckpoint},
		LastSentSeqNum: done,
	}
}

// Observe records that event seq was read: sent to the publisher, or
// skipped (sent false). Sequence numbers only move forward.
func (t *Tracker) Observe(seq uint64, sent bool) {
	if seq <= t.S.LastObservedSeqNum {
		return
	}
	t.S.LastObservedSeqNum = seq
	if sent {
		t.LastSentSeqNum = seq
	}
}

// Ack records a cumulative acknowledgement: every event <= seq is delivered.
// An ack beyond what was sent is ignored.
func (t *Tracker) Ack(seq uint64) {
	if seq <= t.S.LastAckedSeqNum || seq > t.LastSentSeqNum {
		return
	}
	t.S.LastAckedSeqNum = seq
}

// Pending reports whether sent events await acknowledgement.
func (t *Tracker) Pending() bool { return t.LastSentSeqNum > t.S.LastAckedSeqNum }

// CheckpointTarget is the highest sequence number such that every event at
// or below it is done: LastObservedSeqNum when nothing is pending, else
// LastAckedSeqNum.
func (t *Tracker) CheckpointTarget() uint64 {
	if t.Pending() {
		return t.S.LastAckedSeqNum
	}
	return t.S.LastObservedSeqNum
}

// NeedsCheckpoint reports whether the checkpoint target is ahead of the
// stored checkpoint.
func (t *Tracker) NeedsCheckpoint() bool { return t.CheckpointTarget() > t.S.LastCheckpoint }

// Checkpointed records that seq was durably stored as the checkpoint.
func (t *Tracker) Checkpointed(seq uint64) {
	t.S.LastCheckpoint = max(t.S.LastCheckpoint, seq)
}

// Rewind forgets pending events after a failure and returns the sequence
// number to resume after: the checkpoint target. Events after it will be
// read and sent again.
func (t *Tracker) Rewind() uint64 {
	resume := t.CheckpointTarget()
	t.S.LastObservedSeqNum = resume
	t.LastSentSeqNum = t.S.LastAckedSeqNum
	return resume
}

// Reconcile records that the target already holds every event <= tail (the
// newest event found there), so delivery resumes after the later of tail
// and the current position.
func (t *Tracker) Reconcile(tail uint64) {
	if tail > t.S.LastAckedSeqNum {
		t.S.LastAckedSeqNum = tail
		t.LastSentSeqNum = max(t.LastSentSeqNum, tail)
	}
	if tail > t.S.LastObservedSeqNum {
		t.S.LastObservedSeqNum = tail
	}
}

// Status is State plus what an operator needs to judge the dispatcher.
type Status struct {
	State
	// Published, Skipped and Duplicates count events since start:
	// acknowledged by the server, skipped by the message creator, and
	// acknowledged as duplicates (re-sends of events the server held).
	// They count what this dispatcher saw acknowledged: events that a
	// crashed predecessor (or, in Temporal, a batch cut short) delivered are
	// found in the stream by reconciliation and not counted again.
	Published  uint64
	Skipped    uint64
	Duplicates uint64
	// DeadLettered counts poison events published to the dead-letter subject.
	DeadLettered uint64
	// Recovering is true between a failure and the next session that
	// reaches the target.
	Recovering bool
	// Failures counts failed attempts since start; ConsecutiveFailures those
	// since the last progress.
	Failures            uint64
	ConsecutiveFailures uint64
	// LastError is the most recent failure, empty if none.
	LastError     string    `json:",omitempty"`
	LastErrorTime time.Time `json:",omitzero"`
	// Halted is true when delivery stopped on an error that retrying cannot
	// fix (a poison event under the stop policy); LastError says which.
	Halted bool `json:",omitempty"`
}
