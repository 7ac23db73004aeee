package worker_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/benchkit"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/worker"
	"github.com/seqrelay/seqrelay/workflows"
)

// BenchmarkTemporalDelivery measures end-to-end events/s of the Temporal
// runtime (a real in-process Temporal server, a worker, a pre-filled
// SQLite log, 256-byte events, a file-storage stream) beside the raw
// JetStream figure of the same run, and reports the workflow history it
// took per 10000 events delivered.
//
//	go test -run '^$' -bench TemporalDelivery -benchtime 100000x -count 6 ./worker
func BenchmarkTemporalDelivery(b *testing.B) {
	h := benchkit.New(b)
	h.Raw(b)
	ts := temporaltest.NewServer()
	b.Cleanup(ts.Stop)
	c := ts.GetDefaultClient()
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run("runtime=temporal-"+store, func(b *testing.B) {
			h.FreshStream(b)
			log := h.FilledLog(b, store, b.N)
			w, err := worker.New(c, worker.Options{
				TaskQueue: "bench", Logs: map[string]eventlog.Log{workflows.DefaultEventLog: log},
				NATS: natstest.Connect(b, h.Server.URL()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			require.NoError(b, err)
			require.NoError(b, w.Start())
			defer w.Stop()
			id := "bench-" + b.Name()
			ctx := context.Background()
			b.ResetTimer()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "bench"},
				workflows.WorkflowName, workflows.Input{DispatcherID: "bench", Stream: benchkit.Stream})
			require.NoError(b, err)
			for {
				v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryState)
				require.NoError(b, err)
				var st workflows.Status
				require.NoError(b, v.Get(&st))
				if st.LastAckedSeqNum >= uint64(b.N) {
					break
				}
				require.False(b, st.Halted, st.LastError)
				time.Sleep(10 * time.Millisecond)
			}
			b.StopTimer()
			h.Report(b, "temporal-"+store)
			require.NoError(b, c.SignalWorkflow(ctx, id, run.GetRunID(), workflows.SignalStop, nil))
			require.NoError(b, run.Get(ctx, nil))
			events := 0
			for it := c.GetWorkflowHistory(ctx, id, run.GetRunID(), false, 0); it.HasNext(); events++ {
				_, err := it.Next()
				require.NoError(b, err)
			}
			b.ReportMetric(float64(events)*10000/float64(b.N), "history-events/10k")
		})
	}
	h.PrintRatios()
}
