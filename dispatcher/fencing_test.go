package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natstest"
)

// TestTwoDispatchersOnOneStream: a second dispatcher with the same ID is
// started by mistake on the same log and stream. Their publishes race; the
// one that loses a race halts with ErrFenced naming the conflict, the other
// delivers everything, and the stream holds every event once, in order.
func TestTwoDispatchersOnOneStream(t *testing.T) {
	f := newFixture(t)
	a := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, a.Start(ctx(t)))
	f.append(50)
	dispatchertest.WaitAcked(t, a, 50)

	b := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, b.Start(ctx(t)))
	var winner, loser *dispatcher.Dispatcher
	for i := 0; i < 200 && loser == nil; i++ {
		f.append(25)
		switch {
		case a.Status().Halted:
			winner, loser = b, a
		case b.Status().Halted:
			winner, loser = a, b
		}
		if loser == nil {
			dispatchertest.WaitFor(t, "both to catch up or one to halt", func() bool {
				return a.Status().Halted || b.Status().Halted ||
					(a.State().LastAckedSeqNum == uint64(75+25*i) && b.State().LastAckedSeqNum == uint64(75+25*i))
			})
		}
	}
	require.NotNil(t, loser, "one of two dispatchers racing on one stream must halt")
	st := loser.Status()
	assert.Contains(t, st.LastError, "fenced off by another writer")
	assert.Contains(t, st.LastError, "two dispatchers with one ID run on one log and stream")

	head, err := f.log.Head(ctx(t))
	require.NoError(t, err)
	f.append(10)
	dispatchertest.WaitAcked(t, winner, head+10)
	assert.False(t, winner.Status().Halted)
	assert.Equal(t, natstest.Range(1, head+10), natstest.Seqs(f.Messages()))
}
