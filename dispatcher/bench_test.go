package dispatcher_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/benchkit"
	"github.com/seqrelay/seqrelay/publish"
)

// BenchmarkDelivery measures end-to-end events/s of the in-process runtime
// from a pre-filled event log to acknowledged JetStream messages (256-byte
// payloads, file storage), beside a raw nats.go JetStream async publish of
// the same messages in the same run, and prints the ratios. One op is one
// event. (The Temporal runtime's figure: BenchmarkTemporalDelivery in
// package worker.) Compare runs with benchstat:
//
//	go test -run '^$' -bench Delivery -count 6 ./dispatcher | tee bench.txt
//	benchstat -col /runtime bench.txt
func BenchmarkDelivery(b *testing.B) {
	h := benchkit.New(b)
	h.Raw(b)
	for _, store := range []string{"sqlite", "postgres", "memory"} {
		b.Run("runtime=dispatcher-"+store, func(b *testing.B) {
			h.FreshStream(b)
			d := benchDispatcher(b, h.Server.URL(), h.FilledLog(b, store, b.N))
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
			h.Report(b, "dispatcher-"+store)
		})
	}
	h.PrintRatios()
}

func benchDispatcher(b *testing.B, url string, log eventlog.Log) *dispatcher.Dispatcher {
	nc, err := nats.Connect(url)
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	pub, err := publish.NewJetStream(nc, benchkit.Stream)
	require.NoError(b, err)
	w, err := eventlog.NewWatcher(log, "bench")
	require.NoError(b, err)
	creator, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
	require.NoError(b, err)
	d, err := dispatcher.New(pub, w, creator, dispatcher.Config{}, dispatcher.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(b, err)
	return d
}
