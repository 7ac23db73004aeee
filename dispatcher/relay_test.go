package dispatcher_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

// newRelay returns a Relay and a publisher over the fixture (the pieces the
// Temporal activity uses).
func (f *fixture) newRelay(cfg dispatcher.Config) (*dispatcher.Relay, dispatcher.Publisher) {
	creator, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
	require.NoError(f.T, err)
	r, err := dispatcher.NewRelay("orders", f.log, creator, cfg, dispatcher.WithLogger(dispatchertest.Logger(f.T)), dispatcher.WithBatchSize(7))
	require.NoError(f.T, err)
	pub, err := publish.NewJetStream(natstest.Connect(f.T, f.Srv.URL()), stream)
	require.NoError(f.T, err)
	return r, pub
}

func TestRelayRunOptions(t *testing.T) {
	f := newFixture(t)
	r, pub := f.newRelay(dispatchertest.Config())
	f.append(25)
	p := dispatcher.NewProgress(dispatcher.NewTracker(dispatcher.State{}))

	// MaxEvents ends a run after that many events, all acknowledged.
	require.NoError(t, r.Deliver(ctx(t), pub, p, nil, dispatcher.RunOptions{MaxEvents: 10}))
	assert.Equal(t, dispatcher.State{LastAckedSeqNum: 10, LastObservedSeqNum: 10}, p.State())

	// CaughtUpReturn ends a run once it delivered and caught up.
	start := time.Now()
	require.NoError(t, r.Deliver(ctx(t), pub, p, nil, dispatcher.RunOptions{IdleReturn: time.Minute, CaughtUpReturn: 50 * time.Millisecond}))
	assert.EqualValues(t, 25, p.State().LastAckedSeqNum)
	assert.Less(t, time.Since(start), 30*time.Second, "did not wait for IdleReturn")

	// IdleReturn ends a run that found nothing; Heartbeat is called meanwhile.
	var beats atomic.Int32
	require.NoError(t, r.Deliver(ctx(t), pub, p, nil, dispatcher.RunOptions{
		IdleReturn: 200 * time.Millisecond,
		Heartbeat:  func(dispatcher.State) { beats.Add(1) },
	}))
	assert.EqualValues(t, 25, p.State().LastAckedSeqNum)
	assert.Positive(t, beats.Load(), "heartbeats every StallCheckInterval while healthy")

	// A stop channel ends a run gracefully.
	stop := make(chan struct{})
	close(stop)
	require.NoError(t, r.Deliver(ctx(t), pub, p, stop, dispatcher.RunOptions{}))
	assert.Equal(t, natstest.Range(1, 25), natstest.Seqs(f.Messages()))
}

// TestRelayResumesFromAStaleTracker: a retried activity starts from the
// tracker it was scheduled with; the stream's tail moves it on, so nothing
// is published twice.
func TestRelayResumesFromAStaleTracker(t *testing.T) {
	f := newFixture(t)
	r, pub := f.newRelay(dispatchertest.Config())
	f.append(12)
	stale := dispatcher.NewTracker(dispatcher.State{})
	require.NoError(t, r.Deliver(ctx(t), pub, dispatcher.NewProgress(stale), nil, dispatcher.RunOptions{MaxEvents: 12}))

	f.append(3)
	p := dispatcher.NewProgress(stale) // as if the first attempt's result was lost
	require.NoError(t, r.Deliver(ctx(t), pub, p, nil, dispatcher.RunOptions{CaughtUpReturn: time.Millisecond, IdleReturn: time.Minute}))
	st := p.Status()
	assert.EqualValues(t, 15, st.LastAckedSeqNum)
	assert.EqualValues(t, 3, st.Published)
	assert.Zero(t, st.Duplicates)
	assert.Equal(t, natstest.Range(1, 15), natstest.Seqs(f.Messages()))
}

func TestRelayCancelled(t *testing.T) {
	f := newFixture(t)
	r, pub := f.newRelay(dispatchertest.Config())
	c, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Deliver(c, pub, dispatcher.NewProgress(dispatcher.Tracker{}), nil, dispatcher.RunOptions{})
	assert.ErrorIs(t, err, context.Canceled)
}
