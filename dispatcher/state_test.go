package dispatcher

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTrackerRules(t *testing.T) {
	tr := NewTracker(State{})
	assert.Zero(t, tr.CheckpointTarget())

	tr.Observe(1, true)
	tr.Observe(2, false) // skipped
	tr.Observe(3, true)
	assert.Equal(t, State{LastObservedSeqNum: 3}, tr.S)
	assert.True(t, tr.Pending())
	assert.Zero(t, tr.CheckpointTarget(), "pending: target is the last ack")

	tr.Ack(1)
	assert.EqualValues(t, 1, tr.CheckpointTarget())
	tr.Ack(3) // cumulative
	assert.False(t, tr.Pending())
	assert.EqualValues(t, 3, tr.CheckpointTarget())

	tr.Observe(4, false) // skipped with nothing pending: target follows observed
	assert.EqualValues(t, 4, tr.CheckpointTarget())
	assert.True(t, tr.NeedsCheckpoint())
	tr.Checkpointed(4)
	assert.False(t, tr.NeedsCheckpoint())
	tr.Checkpointed(2) // never backwards
	assert.EqualValues(t, 4, tr.S.LastCheckpoint)
}

func TestTrackerIgnoresStaleAndFutureAcks(t *testing.T) {
	tr := NewTracker(State{})
	tr.Observe(5, true)
	tr.Ack(7) // never sent
	assert.Zero(t, tr.S.LastAckedSeqNum)
	tr.Ack(5)
	tr.Ack(3) // stale
	assert.EqualValues(t, 5, tr.S.LastAckedSeqNum)
	tr.Observe(4, true) // backwards: ignored
	assert.EqualValues(t, 5, tr.S.LastObservedSeqNum)
}

func TestTrackerRewind(t *testing.T) {
	tr := NewTracker(State{})
	for s := uint64(1); s <= 5; s++ {
		tr.Observe(s, true)
	}
	tr.Ack(2)
	assert.EqualValues(t, 2, tr.Rewind())
	assert.Equal(t, State{LastAckedSeqNum: 2, LastObservedSeqNum: 2}, tr.S)
	assert.False(t, tr.Pending())

	// Trailing skipped events with nothing pending are kept.
	tr.Observe(3, true)
	tr.Ack(3)
	tr.Observe(4, false)
	assert.EqualValues(t, 4, tr.Rewind())
}

func TestTrackerReconcile(t *testing.T) {
	tr := NewTracker(State{LastCheckpoint: 5})
	assert.Equal(t, State{LastAckedSeqNum: 5, LastObservedSeqNum: 5, LastCheckpoint: 5}, tr.S)
	tr.Reconcile(3) // the target is behind: the checkpoint wins
	assert.EqualValues(t, 5, tr.S.LastObservedSeqNum)
	tr.Reconcile(9) // the target is ahead: resume after it
	assert.Equal(t, State{LastAckedSeqNum: 9, LastObservedSeqNum: 9, LastCheckpoint: 5}, tr.S)
	assert.False(t, tr.Pending())
	assert.EqualValues(t, 9, tr.CheckpointTarget())
}

func TestNewTrackerFromState(t *testing.T) {
	// Observed beyond acked may hide pending events: resume after the ack.
	tr := NewTracker(State{LastAckedSeqNum: 7, LastObservedSeqNum: 9, LastCheckpoint: 6})
	assert.Equal(t, State{LastAckedSeqNum: 7, LastObservedSeqNum: 7, LastCheckpoint: 6}, tr.S)
	assert.False(t, tr.Pending())
}
