// Package benchkit is the delivery benchmark harness both runtimes share:
// an embedded NATS server with a file-storage stream, pre-filled event logs
// of 256-byte events, and the raw nats.go JetStream async publish of the
// same messages, measured in the same run, that every figure is compared
// with.
package benchkit

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

// PayloadSize is the size of every benchmark event.
const PayloadSize = 256

// Stream is the benchmark's stream.
const Stream = "BENCH"

// Harness is one benchmark's NATS server, stream and results.
type Harness struct {
	Server  *natsrv.Server
	JS      jetstream.JetStream
	Payload []byte
	rates   map[string]float64
}

// New starts the server.
func New(b *testing.B) *Harness {
	srv := natstest.Start(b)
	nc := natstest.Connect(b, srv.URL())
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(dispatcher.DefaultMaxInFlight))
	require.NoError(b, err)
	payload := make([]byte, PayloadSize)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	return &Harness{Server: srv, JS: js, Payload: payload, rates: map[string]float64{}}
}

// FreshStream deletes and re-creates the stream (file storage).
func (h *Harness) FreshStream(b *testing.B) {
	ctx := context.Background()
	_ = h.JS.DeleteStream(ctx, Stream)
	_, _, err := publish.EnsureStream(ctx, h.JS, publish.StreamConfig{Name: Stream, Subjects: publish.DefaultSubjects, Storage: jetstream.FileStorage})
	require.NoError(b, err)
}

// Raw runs the baseline as sub-benchmark "runtime=raw": b.N messages, as
// the dispatcher would publish them (KeySeqNum, Nats-Msg-Id, type header),
// built before the timer starts, published with PublishMsgAsync and awaited.
func (h *Harness) Raw(b *testing.B) {
	b.Run("runtime=raw", func(b *testing.B) {
		h.FreshStream(b)
		msgs := make([]*nats.Msg, b.N)
		for i := range msgs {
			seq := strconv.Itoa(i + 1)
			msgs[i] = &nats.Msg{Subject: publish.DefaultSubjectPrefix + ".bench", Data: h.Payload, Header: nats.Header{
				dispatcher.KeySeqNum: {seq}, nats.MsgIdHdr: {"bench:" + seq}, dispatcher.KeyEventType: {"bench"},
			}}
		}
		b.ResetTimer()
		for _, m := range msgs {
			if _, err := h.JS.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-h.JS.PublishAsyncComplete():
		case <-time.After(5 * time.Minute):
			b.Fatal("raw publish did not complete")
		}
		b.StopTimer()
		h.Report(b, "raw")
	})
}

// Report records and reports events/s of a finished sub-benchmark.
func (h *Harness) Report(b *testing.B, name string) {
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	h.rates[name] = rate
}

// PrintRatios prints each runtime's events/s as a ratio of the raw figure.
func (h *Harness) PrintRatios() {
	raw := h.rates["raw"]
	if raw == 0 {
		return
	}
	names := make([]string, 0, len(h.rates))
	for n := range h.rates {
		if n != "raw" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("ratio %s/raw: %.2f (%.0f vs %.0f events/s)\n", n, h.rates[n]/raw, h.rates[n], raw)
	}
}

// FilledLog returns a log of the given store ("sqlite", "postgres",
// "memory") holding n benchmark events. PostgreSQL is skipped unless
// SEQRELAY_TEST_POSTGRES_URL is set.
func (h *Harness) FilledLog(b *testing.B, store string, n int) eventlog.Log {
	ctx := context.Background()
	var log eventlog.Log = eventlog.NewMemory()
	switch store {
	case "sqlite":
		l, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "events.db"), sqlite.WithCreate())
		require.NoError(b, err)
		log = l
	case "postgres":
		url := pgtest.URL(b)
		l, err := postgres.Open(ctx, url, postgres.WithSchema(pgtest.Schema(b, url)), postgres.WithMigrate())
		require.NoError(b, err)
		log = l
	}
	b.Cleanup(func() { log.Close() })
	const chunk = 10000
	evs := make([]eventlog.Event, 0, chunk)
	for i := 0; i < n; i++ {
		evs = append(evs, eventlog.Event{Type: "bench", Payload: h.Payload})
		if len(evs) == chunk || i == n-1 {
			_, err := log.Append(ctx, evs...)
			require.NoError(b, err)
			evs = evs[:0]
		}
	}
	return log
}
