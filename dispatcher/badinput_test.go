package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

// validDeps returns a publisher, a watcher and a creator that New accepts.
func validDeps(t *testing.T) (dispatcher.Publisher, dispatcher.Watcher, dispatcher.MessageCreator) {
	t.Helper()
	srv := natstest.Start(t)
	pub, err := publish.NewJetStream(natstest.Connect(t, srv.URL()), stream)
	require.NoError(t, err)
	w, err := eventlog.NewWatcher(eventlog.NewMemory(), "orders")
	require.NoError(t, err)
	creator, err := dispatcher.NewSubjectCreator("x")
	require.NoError(t, err)
	return pub, w, creator
}

func TestNewRejectsNilDependenciesByName(t *testing.T) {
	pub, w, creator := validDeps(t)
	var nilWatcher *eventlog.Watcher

	for _, tc := range []struct {
		name    string
		pub     dispatcher.Publisher
		w       dispatcher.Watcher
		creator dispatcher.MessageCreator
	}{
		{"publisher", nil, w, creator},
		{"watcher", pub, nil, creator},
		{"watcher", pub, nilWatcher, creator},
		{"message creator", pub, w, nil},
	} {
		_, err := dispatcher.New(tc.pub, tc.w, tc.creator, dispatcher.Config{})
		require.ErrorIs(t, err, dispatcher.ErrNilDependency, tc.name)
		assert.Contains(t, err.Error(), "the "+tc.name+" is nil")
		var de *dispatcher.ErrDispatcher
		require.True(t, errors.As(err, &de))
		assert.Equal(t, "new", de.Op)
	}
}

func TestNewRejectsInvalidConfigAndOptions(t *testing.T) {
	pub, w, creator := validDeps(t)
	_, err := dispatcher.New(pub, w, creator, dispatcher.Config{BaseRetryInterval: time.Minute, MaxRetryInterval: time.Second})
	require.ErrorIs(t, err, dispatcher.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MaxRetryInterval")

	for _, tc := range []struct {
		opt  dispatcher.Option
		want string
	}{
		{dispatcher.WithBatchSize(0), "batch size 0"},
		{dispatcher.WithMaxInFlight(-1), "max in flight -1"},
		{dispatcher.WithPoisonPolicy("drop"), `unknown poison policy "drop"`},
		{dispatcher.WithDeadLetterSubject("a..b"), "dead-letter subject"},
		{dispatcher.WithLogger(nil), "logger"},
		{dispatcher.WithWriterID(""), "writer ID"},
	} {
		_, err := dispatcher.New(pub, w, creator, dispatcher.Config{}, tc.opt)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestStartTwiceAndStopIdempotent(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Stop(ctx(t)), "Stop before Start is a no-op")
	require.NoError(t, d.Start(ctx(t)))
	err := d.Start(ctx(t))
	require.ErrorIs(t, err, dispatcher.ErrAlreadyRunning)
	assert.Contains(t, err.Error(), "already running")
	require.NoError(t, d.Stop(ctx(t)))
	require.NoError(t, d.Stop(ctx(t)))

	// A stopped dispatcher starts again and carries on.
	f.append(1)
	require.NoError(t, d.Start(ctx(t)))
	dispatchertest.WaitAcked(t, d, 1)
}

func TestStartFailsWhenTheCheckpointCannotBeLoaded(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, f.log.Close())
	err := d.Start(ctx(t))
	require.ErrorIs(t, err, eventlog.ErrClosed)
	assert.Contains(t, err.Error(), "dispatcher: start: load checkpoint")
	require.NoError(t, d.Stop(ctx(t)), "a failed Start leaves nothing running")
}

// TestStopHonoursItsDeadline: with an acknowledgement that never comes
// (the network is frozen), Stop gives up at its deadline.
func TestStopHonoursItsDeadline(t *testing.T) {
	f := newFixture(t)
	proxy := natstest.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", f.Srv.Port()))
	cfg := dispatchertest.Config()
	cfg.StallTimeout = time.Minute
	d := f.newDispatcher(dispatchertest.Options{URL: proxy.URL(), Config: cfg})
	require.NoError(t, d.Start(ctx(t)))
	f.append(1)
	dispatchertest.WaitAcked(t, d, 1)

	proxy.Freeze()
	f.append(1)
	dispatchertest.WaitFor(t, "event 2 in flight", func() bool { return d.State().LastObservedSeqNum == 2 })
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Stop(c)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "dispatcher: stop")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.EqualValues(t, 1, d.State().LastAckedSeqNum)
	proxy.Thaw()
}

func TestForeignStreamHaltsDelivery(t *testing.T) {
	f := newFixture(t)
	_, err := f.JS().Publish(ctx(t), "seqrelay.other", []byte("not ours"))
	require.NoError(t, err)
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	f.append(1)
	dispatchertest.WaitFor(t, "halt", func() bool { return d.Status().Halted })
	assert.Contains(t, d.Status().LastError, "not published by seqrelay")
	assert.EqualValues(t, 1, f.Count(), "nothing published after the foreign message")
}

func TestStreamOfAnotherDispatcherHaltsDelivery(t *testing.T) {
	f := newFixture(t)
	a := f.newDispatcher(dispatchertest.Options{ID: "a"})
	require.NoError(t, a.Start(ctx(t)))
	f.append(1)
	dispatchertest.WaitAcked(t, a, 1)
	require.NoError(t, a.Stop(ctx(t)))

	b := f.newDispatcher(dispatchertest.Options{ID: "b"})
	require.NoError(t, b.Start(ctx(t)))
	dispatchertest.WaitFor(t, "halt", func() bool { return b.Status().Halted })
	assert.Contains(t, b.Status().LastError, `not one of dispatcher "b"`)
}

func TestPublisherRejectsBadArguments(t *testing.T) {
	_, err := publish.NewJetStream(nil, "S")
	assert.ErrorContains(t, err, "connection is nil")
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	for name, want := range map[string]string{"": "empty", "a.b": "may not contain", "a b": "may not contain"} {
		_, err := publish.NewJetStream(nc, name)
		assert.ErrorContains(t, err, want, name)
	}
	pub, err := publish.NewJetStream(nc, "MISSING")
	require.NoError(t, err)
	_, err = pub.Begin(ctx(t))
	require.ErrorIs(t, err, publish.ErrStreamNotFound)
	assert.Contains(t, err.Error(), `"MISSING"`)

	nc.Close()
	_, err = pub.Begin(ctx(t))
	require.ErrorIs(t, err, publish.ErrNotConnected)
}

// TestMissingStreamThenCreated: without its stream the dispatcher retries
// with a clear error in its status; once the stream exists, delivery starts
// at the first event, nothing lost.
func TestMissingStreamThenCreated(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.JS().DeleteStream(ctx(t), stream))
	d := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, d.Start(ctx(t)))
	f.append(3)
	dispatchertest.WaitFor(t, "a failure", func() bool { return d.Status().Failures >= 2 })
	st := d.Status()
	assert.Contains(t, st.LastError, `stream not found: "EVENTS"`)
	assert.Zero(t, st.LastAckedSeqNum)

	_, _, err := publish.EnsureStream(ctx(t), f.JS(), publish.StreamConfig{Name: stream, Subjects: publish.DefaultSubjects})
	require.NoError(t, err)
	dispatchertest.WaitAcked(t, d, 3)
	assert.Equal(t, []uint64{1, 2, 3}, natstest.Seqs(f.Messages()))
}
