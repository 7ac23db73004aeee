package crashtest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/worker"
	"github.com/seqrelay/seqrelay/workflows"
)

// temporalRuntime runs the Temporal runtime: a Temporal server in the test
// process, the dispatcher workflow started once, and `seqrelay worker`
// processes as what the harness kills. A killed worker's batch is retried
// on the next worker after the heartbeat timeout; the workflow keeps the
// state, so nothing is lost and, thanks to the reconciliation with the
// stream, nothing is sent twice.
type temporalRuntime struct {
	ts *temporaltest.TestServer
}

const (
	temporalQueue      = "crash"
	temporalWorkflowID = "seqrelay-crash"
)

func (*temporalRuntime) name() string { return "temporal" }

func (r *temporalRuntime) prepare(t *testing.T, e *env) {
	r.ts = temporaltest.NewServer(temporaltest.WithT(t))
	_, err := r.ts.GetDefaultClient().ExecuteWorkflow(context.Background(),
		client.StartWorkflowOptions{ID: temporalWorkflowID, TaskQueue: temporalQueue},
		workflows.WorkflowName, workflows.Input{
			DispatcherID:  e.id,
			Stream:        e.stream,
			SubjectPrefix: e.prefix,
			BatchSize:     2000,
			BatchDuration: dispatcher.Duration(time.Second),
			Config: dispatcher.Config{
				CheckpointInterval: 200 * time.Millisecond,
				StallTimeout:       3 * time.Second,
				StallCheckInterval: 500 * time.Millisecond, // heartbeat timeout 1.5s
				BaseRetryInterval:  50 * time.Millisecond,
				MaxRetryInterval:   time.Second,
			},
		})
	require.NoError(t, err)
}

func (r *temporalRuntime) args(e *env, _ int) []string {
	return []string{"worker",
		"--temporal", r.ts.GetFrontendHostPort(),
		"--namespace", r.ts.GetDefaultNamespace(),
		"--task-queue", temporalQueue,
		"--store", e.store,
		"--data", e.dir,
		"--nats", e.natsURL,
		"--stream", e.stream,
		"--create-stream=false",
		"--log-level", "info",
	}
}

func (*temporalRuntime) ready(line string) bool { return strings.HasPrefix(line, "worker running") }

// caughtUp: a worker keeps no state of its own (the workflow does), so it
// can be stopped once it runs; the harness has waited for the stream.
func (r *temporalRuntime) caughtUp(line string, _ uint64) bool { return r.ready(line) }

// checkStopped: with a worker of the test's own (the last process is gone),
// the workflow reports every event acknowledged and checkpointed, and a
// stop signal completes it with that state in the store.
func (r *temporalRuntime) checkStopped(t *testing.T, e *env, stdout []string) {
	t.Helper()
	assert.Contains(t, strings.Join(stdout, "\n"), "worker stopped")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := sqlite.Open(ctx, e.store)
	require.NoError(t, err)
	defer l.Close()
	nc, err := nats.Connect(e.natsURL)
	require.NoError(t, err)
	defer nc.Close()
	c := r.ts.GetDefaultClient()
	w, err := worker.New(c, worker.Options{TaskQueue: temporalQueue, Logs: map[string]eventlog.Log{workflows.DefaultEventLog: l},
		NATS: nc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	defer w.Stop()

	var st workflows.Status
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, temporalWorkflowID, "", workflows.QueryState)
		if err != nil {
			return false
		}
		return v.Get(&st) == nil && st.LastCheckpoint == e.events
	}, time.Minute, 50*time.Millisecond, "the workflow's checkpoint reaches %d", e.events)
	t.Logf("workflow state: acked %d, checkpoint %d, batches %d, failures %d, stalls %d, published %d, duplicates %d",
		st.LastAckedSeqNum, st.LastCheckpoint, st.Batches, st.Failures, st.Stalls, st.Published, st.Duplicates)
	assert.EqualValues(t, e.events, st.LastAckedSeqNum)
	assert.False(t, st.Halted, st.LastError)
	require.NoError(t, c.SignalWorkflow(ctx, temporalWorkflowID, "", workflows.SignalStop, nil))
	var final workflows.Status
	require.NoError(t, c.GetWorkflow(ctx, temporalWorkflowID, "").Get(ctx, &final))
	assert.Equal(t, dispatcher.State{LastAckedSeqNum: e.events, LastObservedSeqNum: e.events, LastCheckpoint: e.events}, final.State)
	cp, err := l.LastCheckpoint(ctx, e.id)
	require.NoError(t, err)
	assert.Equal(t, e.events, cp, "checkpoint of dispatcher %q in the store", e.id)
}
