package dispatcher_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
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
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

const benchPayload = 256

// BenchmarkDelivery measures end-to-end events/s from a pre-filled event log
// to acknowledged JetStream messages (256-byte payloads, file storage), and
// beside it, in the same run, a raw nats.go JetStream async publish of the
// same messages. One op is one event. Compare runs with benchstat:
//
//	go test -run '^$' -bench Delivery -count 6 ./dispatcher | tee bench.txt
//	benchstat -col /runtime bench.txt
func BenchmarkDelivery(b *testing.B) {
	srv := natstest.Start(b)
	nc := natstest.Connect(b, srv.URL())
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(dispatcher.DefaultMaxInFlight))
	require.NoError(b, err)
	payload := make([]byte, benchPayload)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	rates := map[string]float64{}

	b.Run("runtime=raw", func(b *testing.B) {
		freshStream(b, js)
		msgs := make([]*nats.Msg, b.N)
		for i := range msgs {
			seq := strconv.Itoa(i + 1)
			msgs[i] = &nats.Msg{Subject: "seqrelay.events.bench", Data: payload, Header: nats.Header{
				dispatcher.KeySeqNum: {seq}, nats.MsgIdHdr: {"bench:" + seq}, dispatcher.KeyEventType: {"bench"},
			}}
		}
		b.ResetTimer()
		for _, m := range msgs {
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(5 * time.Minute):
			b.Fatal("raw publish did not complete")
		}
		b.StopTimer()
		rates["raw"] = report(b)
	})

	stores := []string{"sqlite", "postgres", "memory"}
	for _, store := range stores {
		b.Run("runtime=dispatcher-"+store, func(b *testing.B) {
			freshStream(b, js)
			log := filledLog(b, store, b.N, payload)
			d := benchDispatcher(b, srv.URL(), log)
			b.ResetTimer()
			require.NoError(b, d.Start(context.Background()))
			for d.State().LastAckedSeqNum < uint64(b.N) {
				if st := d.Status(); st.Halted || st.Failures > 0 {
					b.Fatalf("delivery failed: %s", st.LastError)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			require.NoError(b, d.Stop(context.Background()))
			rates["dispatcher-"+store] = report(b)
		})
	}
	if raw := rates["raw"]; raw > 0 {
		for _, store := range stores {
			if r, ok := rates["dispatcher-"+store]; ok {
				fmt.Printf("ratio dispatcher-%s/raw: %.2f (%.0f vs %.0f events/s)\n", store, r/raw, r, raw)
			}
		}
	}
}

func report(b *testing.B) float64 {
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

func freshStream(b *testing.B, js jetstream.JetStream) {
	ctx := context.Background()
	_ = js.DeleteStream(ctx, stream)
	_, _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: stream, Subjects: publish.DefaultSubjects, Storage: jetstream.FileStorage})
	require.NoError(b, err)
}

func filledLog(b *testing.B, store string, n int, payload []byte) eventlog.Log {
	ctx := context.Background()
	var log eventlog.Log = eventlog.NewMemory()
	switch store {
	case "sqlite":
		l, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "events.db"), sqlite.WithCreate())
		require.NoError(b, err)
		log = l
	case "postgres": // skipped unless SEQRELAY_TEST_POSTGRES_URL is set
		url := pgtest.URL(b)
		l, err := postgres.Open(ctx, url, postgres.WithSchema(pgtest.Schema(b, url)), postgres.WithMigrate())
		require.NoError(b, err)
		log = l
	}
	b.Cleanup(func() { log.Close() })
	const chunk = 10000
	evs := make([]eventlog.Event, 0, chunk)
	for i := 0; i < n; i++ {
		evs = append(evs, eventlog.Event{Type: "bench", Payload: payload})
		if len(evs) == chunk || i == n-1 {
			_, err := log.Append(ctx, evs...)
			require.NoError(b, err)
			evs = evs[:0]
		}
	}
	return log
}

func benchDispatcher(b *testing.B, url string, log eventlog.Log) *dispatcher.Dispatcher {
	nc, err := nats.Connect(url)
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	pub, err := publish.NewJetStream(nc, stream)
	require.NoError(b, err)
	w, err := eventlog.NewWatcher(log, "bench")
	require.NoError(b, err)
	creator, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
	require.NoError(b, err)
	d, err := dispatcher.New(pub, w, creator, dispatcher.Config{}, dispatcher.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(b, err)
	return d
}
