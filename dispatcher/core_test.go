package dispatcher_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

// subscriber records the KeySeqNum of every core message it receives.
type subscriber struct {
	mu   sync.Mutex
	seqs []uint64
}

func (s *subscriber) got() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.seqs...)
}

func coreDispatcher(t *testing.T, f *fixture, cfg dispatcher.Config) *dispatcher.Dispatcher {
	pub, err := publish.NewCore(natstest.Connect(t, f.Srv.URL()), time.Second)
	require.NoError(t, err)
	w, err := eventlog.NewWatcher(f.log, "orders")
	require.NoError(t, err)
	creator, err := dispatcher.NewSubjectCreator("plain")
	require.NoError(t, err)
	d, err := dispatcher.New(pub, w, creator, cfg, dispatcher.WithLogger(dispatchertest.Logger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	return d
}

// TestCoreNATSTarget: without JetStream, events arrive in order, and the
// guarantee is at least once overall: a dispatcher that restarts from an
// older checkpoint sends events again, which subscribers de-duplicate by
// KeySeqNum.
func TestCoreNATSTarget(t *testing.T) {
	f := newFixture(t)
	sub := &subscriber{}
	s, err := f.NC.Subscribe("plain.>", func(m *nats.Msg) {
		seq, err := strconv.ParseUint(m.Header.Get(dispatcher.KeySeqNum), 10, 64)
		if err == nil {
			sub.mu.Lock()
			sub.seqs = append(sub.seqs, seq)
			sub.mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, f.NC.Flush())
	defer s.Unsubscribe()

	cfg := dispatchertest.Config()
	cfg.CheckpointInterval = -1 // nothing persisted: a restart resends
	d := coreDispatcher(t, f, cfg)
	require.NoError(t, d.Start(ctx(t)))
	f.append(20)
	dispatchertest.WaitAcked(t, d, 20)
	dispatchertest.WaitFor(t, "20 messages", func() bool { return len(sub.got()) == 20 })
	assert.Equal(t, natstest.Range(1, 20), sub.got(), "in order, once, while nothing fails")
	require.NoError(t, d.Stop(ctx(t)))

	d2 := coreDispatcher(t, f, cfg)
	require.NoError(t, d2.Start(ctx(t)))
	dispatchertest.WaitAcked(t, d2, 20)
	dispatchertest.WaitFor(t, "the resend", func() bool { return len(sub.got()) == 40 })
	assert.Equal(t, append(natstest.Range(1, 20), natstest.Range(1, 20)...), sub.got(),
		"no stream to reconcile with: at least once, de-duplicate by KeySeqNum")
}
