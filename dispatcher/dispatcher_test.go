package dispatcher_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
)

func TestEventFlow(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	seqs := f.append(5)
	dispatchertest.WaitAcked(t, d, seqs[4])

	msgs := f.Messages()
	require.Len(t, msgs, 5)
	for i, m := range msgs {
		assert.Equal(t, seqs[i], m.Seq, "KeySeqNum of message %d", i)
		assert.Equal(t, fmt.Sprint(seqs[i]), m.Header.Get(dispatcher.KeySeqNum))
		assert.Equal(t, fmt.Sprintf(`{"n":%d}`, i), string(m.Data))
		assert.Equal(t, "seqrelay.events.order.created", m.Subject)
		assert.Equal(t, dispatcher.MsgID("orders", seqs[i]), m.Header.Get("Nats-Msg-Id"))
	}
	dispatchertest.WaitFor(t, "checkpoint 5", func() bool { return d.State().LastCheckpoint == 5 })
	assert.Equal(t, dispatcher.State{LastAckedSeqNum: 5, LastObservedSeqNum: 5, LastCheckpoint: 5}, d.State())
}

func TestEventFlowFromSQLite(t *testing.T) {
	log, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.WithCreate())
	require.NoError(t, err)
	f := newFixtureWith(t, natsrv.Options{}, log)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	f.append(200)
	dispatchertest.WaitAcked(t, d, 200)
	assert.Equal(t, natstest.Range(1, 200), natstest.Seqs(f.Messages()))
}

// TestRecoversWhenNATSRestarts: NATS goes down after event 1; event 2 is
// appended; nothing arrives while it is down; NATS comes back on the same
// port; event 2 arrives and the stream holds each event exactly once.
func TestRecoversWhenNATSRestarts(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	f.append(1)
	dispatchertest.WaitAcked(t, d, 1)

	f.Srv.Shutdown()
	f.append(1)
	// Wait until the dispatcher has tried, and failed, to deliver event 2
	// at least twice while NATS is down.
	dispatchertest.WaitFor(t, "failed attempts while NATS is down", func() bool { return d.Status().Failures >= 2 })
	st := d.Status()
	assert.EqualValues(t, 1, st.LastAckedSeqNum, "nothing can be acknowledged while NATS is down")
	assert.True(t, st.Recovering)
	assert.NotEmpty(t, st.LastError)

	require.NoError(t, f.Srv.Restart())
	dispatchertest.WaitAcked(t, d, 2)
	assert.Equal(t, []uint64{1, 2}, natstest.Seqs(f.Messages()))
	dispatchertest.WaitFor(t, "recovered", func() bool { return !d.Status().Recovering })
}

// TestCheckpointAndRestart: the checkpoint reaches 5, the dispatcher stops,
// events 6-8 are appended, and a new dispatcher delivers exactly 6-8.
func TestCheckpointAndRestart(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	f.append(5)
	dispatchertest.WaitFor(t, "checkpoint 5", func() bool { return d.State().LastCheckpoint == 5 })
	require.NoError(t, d.Stop(ctx(t)))

	f.append(3)
	d2 := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d2.Start(ctx(t)))
	assert.EqualValues(t, 5, d2.State().LastCheckpoint, "starts from the stored checkpoint")
	dispatchertest.WaitAcked(t, d2, 8)
	st := d2.Status()
	assert.EqualValues(t, 3, st.Published, "the new dispatcher publishes 6-8 only")
	assert.Zero(t, st.Duplicates)
	assert.Equal(t, natstest.Range(1, 8), natstest.Seqs(f.Messages()))
}

// TestCheckpointOnStop: with periodic checkpointing effectively off, Stop
// still stores the final checkpoint.
func TestCheckpointOnStop(t *testing.T) {
	f := newFixture(t)
	cfg := dispatchertest.Config()
	cfg.CheckpointInterval = time.Hour
	d := f.newDispatcher(dispatchertest.Options{Config: cfg})
	require.NoError(t, d.Start(ctx(t)))
	f.append(3)
	dispatchertest.WaitAcked(t, d, 3)
	cp, err := f.log.LastCheckpoint(ctx(t), "orders")
	require.NoError(t, err)
	require.Zero(t, cp, "no periodic checkpoint within an hour")

	require.NoError(t, d.Stop(ctx(t)))
	cp, err = f.log.LastCheckpoint(ctx(t), "orders")
	require.NoError(t, err)
	assert.EqualValues(t, 3, cp)
	assert.EqualValues(t, 3, d.State().LastCheckpoint, "State stays readable after Stop")
}

func TestNegativeCheckpointIntervalStoresNothing(t *testing.T) {
	f := newFixture(t)
	cfg := dispatchertest.Config()
	cfg.CheckpointInterval = -1
	d := f.newDispatcher(dispatchertest.Options{Config: cfg})
	require.NoError(t, d.Start(ctx(t)))
	f.append(2)
	dispatchertest.WaitAcked(t, d, 2)
	require.NoError(t, d.Stop(ctx(t)))
	cp, err := f.log.LastCheckpoint(ctx(t), "orders")
	require.NoError(t, err)
	assert.Zero(t, cp)
}

// TestResumesAfterWhatTheStreamHolds: with no checkpoint at all, a new
// dispatcher learns from the stream where to resume, and re-sends nothing:
// no reliance on the server's de-duplication window.
func TestResumesAfterWhatTheStreamHolds(t *testing.T) {
	f := newFixture(t)
	cfg := dispatchertest.Config()
	cfg.CheckpointInterval = -1
	d := f.newDispatcher(dispatchertest.Options{Config: cfg})
	require.NoError(t, d.Start(ctx(t)))
	f.append(5)
	dispatchertest.WaitAcked(t, d, 5)
	require.NoError(t, d.Stop(ctx(t)))

	f.append(1)
	d2 := f.newDispatcher(dispatchertest.Options{Config: cfg})
	require.NoError(t, d2.Start(ctx(t)))
	dispatchertest.WaitAcked(t, d2, 6)
	st := d2.Status()
	assert.EqualValues(t, 1, st.Published)
	assert.Zero(t, st.Duplicates)
	assert.Equal(t, natstest.Range(1, 6), natstest.Seqs(f.Messages()))
}

// TestStalledPublishIsRecovered freezes the network between the dispatcher
// and NATS: the publish of event 2 gets no acknowledgement, the stall check
// finds it after StallTimeout, and delivery recovers once the network moves
// again, with event 2 in the stream once.
func TestStalledPublishIsRecovered(t *testing.T) {
	f := newFixture(t)
	proxy := natstest.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", f.Srv.Port()))
	cfg := dispatchertest.Config()
	cfg.StallTimeout = 300 * time.Millisecond
	cfg.StallCheckInterval = 50 * time.Millisecond
	cfg.SeekTimeout = 500 * time.Millisecond
	d := f.newDispatcher(dispatchertest.Options{URL: proxy.URL(), Config: cfg})
	require.NoError(t, d.Start(ctx(t)))
	f.append(1)
	dispatchertest.WaitAcked(t, d, 1)

	proxy.Freeze()
	f.append(1)
	dispatchertest.WaitFor(t, "a stall to be detected", func() bool {
		st := d.Status()
		return st.Failures >= 1 && st.Recovering
	})
	assert.Contains(t, d.Status().LastError, "publish stalled")
	assert.EqualValues(t, 1, d.State().LastAckedSeqNum)

	proxy.Thaw()
	dispatchertest.WaitAcked(t, d, 2)
	assert.Equal(t, []uint64{1, 2}, natstest.Seqs(f.Messages()))
}

func TestSkippedEventsAdvanceTheCheckpoint(t *testing.T) {
	f := newFixture(t)
	base, err := dispatcher.NewSubjectCreator("seqrelay.events")
	require.NoError(t, err)
	onlyOdd := dispatcher.MessageCreatorFunc(func(e eventlog.Event) (*nats.Msg, error) {
		if e.Seq%2 == 0 {
			return nil, nil
		}
		return base.CreateMessage(e)
	})
	d := f.newDispatcher(dispatchertest.Options{Creator: onlyOdd})
	require.NoError(t, d.Start(ctx(t)))
	f.append(6)
	dispatchertest.WaitFor(t, "checkpoint 6", func() bool { return d.State().LastCheckpoint == 6 })
	assert.Equal(t, []uint64{1, 3, 5}, natstest.Seqs(f.Messages()))
	st := d.Status()
	assert.EqualValues(t, 3, st.Skipped)
	assert.EqualValues(t, 5, st.LastAckedSeqNum)
	assert.EqualValues(t, 6, st.LastObservedSeqNum)
}

func TestLargeBacklogInOrder(t *testing.T) {
	f := newFixture(t)
	f.append(20000)
	d := f.newDispatcher(dispatchertest.Options{Options: []dispatcher.Option{dispatcher.WithMaxInFlight(256), dispatcher.WithBatchSize(100)}})
	require.NoError(t, d.Start(ctx(t)))
	dispatchertest.WaitAcked(t, d, 20000)
	assert.Equal(t, natstest.Range(1, 20000), natstest.Seqs(f.Messages()))
}
