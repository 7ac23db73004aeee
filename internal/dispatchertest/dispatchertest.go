// Package dispatchertest is what tests of a dispatcher need, in one place:
// a target (an embedded NATS server with a stream, read back after), a
// Config fast enough for tests and slow enough for a loaded machine,
// dispatchers built over any event log and stopped when the test ends, and
// waiting for conditions with a deadline.
package dispatchertest

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

// Stream is the stream a Target creates, with publish.DefaultSubjects.
const Stream = "EVENTS"

// Config is fast enough for tests and slow enough for a loaded machine.
func Config() dispatcher.Config {
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

// Context is a context for one test, cancelled when it ends.
func Context(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Logger sends logs to the test log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// WaitFor polls cond until it holds, or fails the test after a minute.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, time.Minute, 5*time.Millisecond, "waiting for %s", what)
}

// WaitAcked waits until d has acknowledged event seq.
func WaitAcked(t testing.TB, d *dispatcher.Dispatcher, seq uint64) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("LastAckedSeqNum %d", seq), func() bool { return d.State().LastAckedSeqNum >= seq })
}

// Target is an embedded NATS server with the stream, and the test's own
// connection to read it back.
type Target struct {
	T   testing.TB
	Srv *natsrv.Server
	NC  *nats.Conn
}

// NewTarget starts the server (with opts) and creates the stream.
func NewTarget(t testing.TB, opts natsrv.Options) *Target {
	t.Helper()
	srv := natstest.StartWith(t, opts)
	g := &Target{T: t, Srv: srv, NC: natstest.Connect(t, srv.URL())}
	_, _, err := publish.EnsureStream(Context(t), g.JS(), publish.StreamConfig{Name: Stream, Subjects: publish.DefaultSubjects})
	require.NoError(t, err)
	return g
}

// JS returns a JetStream context on the test's connection.
func (g *Target) JS() jetstream.JetStream {
	js, err := jetstream.New(g.NC)
	require.NoError(g.T, err)
	return js
}

// Messages returns the stream's messages, in stream order.
func (g *Target) Messages() []natstest.Message { return natstest.ReadStream(g.T, g.NC, Stream) }

// Count counts the messages in the stream, whoever wrote them.
func (g *Target) Count() uint64 {
	str, err := g.JS().Stream(Context(g.T), Stream)
	require.NoError(g.T, err)
	info, err := str.Info(Context(g.T))
	require.NoError(g.T, err)
	return info.State.Msgs
}

// Options shape a dispatcher; every field has a default.
type Options struct {
	// ID is the dispatcher ID (default "orders").
	ID string
	// URL is the NATS URL it connects to (default the target's server).
	URL string
	// Config (default Config()).
	Config dispatcher.Config
	// Creator (default a SubjectCreator on publish.DefaultSubjectPrefix).
	Creator dispatcher.MessageCreator
	// Options are added after the test logger.
	Options []dispatcher.Option
}

// Dispatcher builds a dispatcher over log on its own NATS connection,
// publishing to the stream; it is not started, and is stopped when the
// test ends.
func (g *Target) Dispatcher(log eventlog.Log, o Options) *dispatcher.Dispatcher {
	t := g.T
	t.Helper()
	if o.ID == "" {
		o.ID = "orders"
	}
	if o.URL == "" {
		o.URL = g.Srv.URL()
	}
	if o.Config == (dispatcher.Config{}) {
		o.Config = Config()
	}
	if o.Creator == nil {
		c, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
		require.NoError(t, err)
		o.Creator = c
	}
	pub, err := publish.NewJetStream(natstest.Connect(t, o.URL), Stream)
	require.NoError(t, err)
	w, err := eventlog.NewWatcher(log, o.ID)
	require.NoError(t, err)
	d, err := dispatcher.New(pub, w, o.Creator, o.Config, append([]dispatcher.Option{dispatcher.WithLogger(Logger(t))}, o.Options...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(c)
	})
	return d
}
