package dispatcher_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

const stream = "EVENTS"

// testConfig is fast enough for tests and slow enough for a loaded machine.
func testConfig() dispatcher.Config {
	return dispatcher.Config{
		CheckpointInterval: 20 * time.Millisecond,
		CheckpointTimeout:  5 * time.Second,
		StallTimeout:       5 * time.Second,
		StallCheckInterval: 50 * time.Millisecond,
		ProcessInterval:    5 * time.Millisecond,
		SeekTimeout:        5 * time.Second,
		BaseRetryInterval:  20 * time.Millisecond,
		MaxRetryInterval:   200 * time.Millisecond,
	}
}

// fixture is one test's world: an embedded NATS server with a stream, and
// an event log.
type fixture struct {
	t   *testing.T
	srv *natsrv.Server
	nc  *nats.Conn // the test's own connection, for reading back
	log eventlog.Log
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, natsrv.Options{}, eventlog.NewMemory())
}

func newFixtureWith(t *testing.T, opts natsrv.Options, log eventlog.Log) *fixture {
	t.Helper()
	srv := natstest.StartWith(t, opts)
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, _, err = publish.EnsureStream(ctx(t), js, publish.StreamConfig{Name: stream, Subjects: publish.DefaultSubjects})
	require.NoError(t, err)
	t.Cleanup(func() { log.Close() })
	return &fixture{t: t, srv: srv, nc: nc, log: log}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// dispatcherOpts configure newDispatcher.
type dispatcherOpts struct {
	id      string
	url     string // NATS URL; default the fixture's server
	cfg     dispatcher.Config
	creator dispatcher.MessageCreator
	opts    []dispatcher.Option
}

// newDispatcher builds a dispatcher over its own NATS connection; the test
// stops it at the end.
func (f *fixture) newDispatcher(o dispatcherOpts) *dispatcher.Dispatcher {
	f.t.Helper()
	if o.id == "" {
		o.id = "orders"
	}
	if o.url == "" {
		o.url = f.srv.URL()
	}
	if o.cfg == (dispatcher.Config{}) {
		o.cfg = testConfig()
	}
	if o.creator == nil {
		c, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
		require.NoError(f.t, err)
		o.creator = c
	}
	nc := natstest.Connect(f.t, o.url)
	pub, err := publish.NewJetStream(nc, stream)
	require.NoError(f.t, err)
	w, err := eventlog.NewWatcher(f.log, o.id)
	require.NoError(f.t, err)
	o.opts = append([]dispatcher.Option{dispatcher.WithLogger(testLogger(f.t))}, o.opts...)
	d, err := dispatcher.New(pub, w, o.creator, o.cfg, o.opts...)
	require.NoError(f.t, err)
	f.t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(c)
	})
	return d
}

func (f *fixture) append(n int) []uint64 {
	f.t.Helper()
	evs := make([]eventlog.Event, n)
	for i := range evs {
		evs[i] = eventlog.Event{Type: "order.created", Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	seqs, err := f.log.Append(ctx(f.t), evs...)
	require.NoError(f.t, err)
	return seqs
}

func (f *fixture) js() jetstream.JetStream {
	js, err := jetstream.New(f.nc)
	require.NoError(f.t, err)
	return js
}

// streamMsgs counts the messages in the stream, whoever wrote them.
func (f *fixture) streamMsgs() uint64 {
	str, err := f.js().Stream(ctx(f.t), stream)
	require.NoError(f.t, err)
	info, err := str.Info(ctx(f.t))
	require.NoError(f.t, err)
	return info.State.Msgs
}

func (f *fixture) stream() []natstest.Message {
	return natstest.ReadStream(f.t, f.nc, stream)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 5*time.Millisecond, "waiting for %s", what)
}

func waitAcked(t *testing.T, d *dispatcher.Dispatcher, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("LastAckedSeqNum %d", seq), func() bool { return d.State().LastAckedSeqNum >= seq })
}

// testLogger sends the dispatcher's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
