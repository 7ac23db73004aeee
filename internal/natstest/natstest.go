// Package natstest starts embedded NATS servers with JetStream for tests,
// each on a random port with its own store, and reads streams back.
package natstest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/internal/natsrv"
)

// Start starts a server that the test shuts down when it ends.
func Start(t testing.TB) *natsrv.Server {
	t.Helper()
	return StartWith(t, natsrv.Options{})
}

// StartWith starts a server with options; StoreDir defaults to a temp dir.
func StartWith(t testing.TB, opts natsrv.Options) *natsrv.Server {
	t.Helper()
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s, err := natsrv.Start(opts)
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to url with endless reconnects, closed when the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// Message is a stored message, decoded.
type Message struct {
	StreamSeq uint64
	Seq       uint64 // KeySeqNum
	Subject   string
	Data      []byte
	Header    nats.Header
}

// ReadStream returns every message in the stream, in stream order.
func ReadStream(t testing.TB, nc *nats.Conn, stream string) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	str, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := str.Info(ctx)
	require.NoError(t, err)
	var out []Message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := str.GetMsg(ctx, seq)
		require.NoError(t, err)
		k, err := strconv.ParseUint(m.Header.Get(dispatcher.KeySeqNum), 10, 64)
		require.NoError(t, err, "message %d has no %s", seq, dispatcher.KeySeqNum)
		out = append(out, Message{StreamSeq: seq, Seq: k, Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	return out
}

// Seqs returns the KeySeqNum of each message.
func Seqs(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// Range returns first..last.
func Range(first, last uint64) []uint64 {
	var out []uint64
	for s := first; s <= last; s++ {
		out = append(out, s)
	}
	return out
}
