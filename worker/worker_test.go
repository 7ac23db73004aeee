package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/internal/verify"
	"github.com/seqrelay/seqrelay/publish"
	"github.com/seqrelay/seqrelay/worker"
	"github.com/seqrelay/seqrelay/workflows"
)

const taskQueue = "seqrelay-test"

func e2eConfig() dispatcher.Config {
	return dispatcher.Config{
		CheckpointInterval: 200 * time.Millisecond,
		StallTimeout:       3 * time.Second,
		StallCheckInterval: 500 * time.Millisecond,
		BaseRetryInterval:  100 * time.Millisecond,
		MaxRetryInterval:   time.Second,
		SeekTimeout:        5 * time.Second,
	}
}

type e2e struct {
	t   *testing.T
	ts  *temporaltest.TestServer
	c   client.Client
	log eventlog.Log
	js  jetstream.JetStream
	url string
}

func newE2E(t *testing.T, store string) *e2e {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, _, err = publish.EnsureStream(context.Background(), js, publish.StreamConfig{Name: publish.DefaultStream, Subjects: publish.DefaultSubjects})
	require.NoError(t, err)
	var log eventlog.Log
	if store == "postgres" { // skipped unless SEQRELAY_TEST_POSTGRES_URL is set
		url := pgtest.URL(t)
		l, err := postgres.Open(context.Background(), url, postgres.WithSchema(pgtest.Schema(t, url)), postgres.WithMigrate())
		require.NoError(t, err)
		log = l
	} else {
		l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.WithCreate())
		require.NoError(t, err)
		log = l
	}
	t.Cleanup(func() { log.Close() })
	return &e2e{t: t, ts: ts, c: ts.GetDefaultClient(), log: log, js: js, url: srv.URL()}
}

// startWorker starts a worker with its own NATS connection.
func (e *e2e) startWorker() func() {
	w, err := worker.New(e.c, worker.Options{
		TaskQueue: taskQueue,
		Logs:      map[string]eventlog.Log{workflows.DefaultEventLog: e.log},
		NATS:      natstest.Connect(e.t, e.url),
	})
	require.NoError(e.t, err)
	require.NoError(e.t, w.Start())
	return w.Stop
}

func (e *e2e) append(n int, from int) {
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		evs := make([]eventlog.Event, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			evs = append(evs, eventlog.Event{Type: "order.created", Payload: fmt.Appendf(nil, `{"n":%d}`, from+j)})
		}
		_, err := e.log.Append(context.Background(), evs...)
		require.NoError(e.t, err)
	}
}

// query asks the workflow for its state; it can fail for a while after a
// worker restart (a new worker first replays the workflow's history).
func (e *e2e) query(id string) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st workflows.Status
	v, err := e.c.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

// waitFor polls the workflow's state until cond holds; failed queries are
// retried until the deadline.
func (e *e2e) waitFor(id, what string, cond func(workflows.Status) bool) workflows.Status {
	e.t.Helper()
	var (
		mu      sync.Mutex
		st      workflows.Status
		lastErr error
	)
	ok := assert.Eventually(e.t, func() bool {
		s, err := e.query(id)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			lastErr = err
			return false
		}
		st = s
		return cond(s)
	}, 2*time.Minute, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		e.t.Fatalf("waiting for %s: last state %+v, last query error: %v", what, st, lastErr)
	}
	return st
}

func (e *e2e) waitAcked(id string, seq uint64) workflows.Status {
	return e.waitFor(id, fmt.Sprintf("LastAckedSeqNum %d", seq), func(s workflows.Status) bool { return s.LastAckedSeqNum >= seq })
}

func (e *e2e) verify(n uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := verify.Stream(ctx, e.js, publish.DefaultStream)
	require.NoError(e.t, err)
	assert.True(e.t, rep.ExactlyOnce(1, n), rep.String())
	e.t.Logf("stream: %s", rep)
}

// TestEndToEnd runs the workflow on a real Temporal server with a real
// worker, SQLite or PostgreSQL, and JetStream: 10000 events arrive in order
// exactly once; then a worker is stopped in the middle of a second batch of
// events and a new one carries on, still exactly once.
func TestEndToEnd(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { endToEnd(t, store) })
	}
}

func endToEnd(t *testing.T, store string) {
	e := newE2E(t, store)
	stop1 := e.startWorker()
	id := "seqrelay-orders"
	ctx := context.Background()
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue},
		workflows.WorkflowName, workflows.Input{DispatcherID: "orders", BatchSize: 2000, BatchDuration: dispatcher.Duration(time.Second), Config: e2eConfig()})
	require.NoError(t, err)

	e.append(10000, 1)
	st := e.waitAcked(id, 10000)
	assert.EqualValues(t, 10000, st.LastAckedSeqNum)
	e.verify(10000)
	e.waitFor(id, "checkpoint 10000", func(s workflows.Status) bool { return s.LastCheckpoint == 10000 })

	// Pause and resume (their signals are part of the recorded history).
	require.NoError(t, e.c.SignalWorkflow(ctx, id, "", workflows.SignalPause, nil))
	e.waitFor(id, "paused", func(s workflows.Status) bool { return s.Paused })
	require.NoError(t, e.c.SignalWorkflow(ctx, id, "", workflows.SignalResume, nil))

	// Second batch of events; stop the worker in the middle of it.
	e.append(10000, 10001)
	mid := e.waitFor(id, "delivery of the second batch to begin", func(s workflows.Status) bool { return s.LastAckedSeqNum > 10000 }).LastAckedSeqNum
	stop1() // queries need a worker: none until the next one starts
	t.Logf("worker stopped after LastAckedSeqNum %d", mid)
	stop2 := e.startWorker()
	defer stop2()
	st = e.waitAcked(id, 20000)
	e.verify(20000)

	require.NoError(t, e.c.SignalWorkflow(ctx, id, "", workflows.SignalStop, nil))
	var final workflows.Status
	require.NoError(t, run.Get(ctx, &final))
	assert.Equal(t, dispatcher.State{LastAckedSeqNum: 20000, LastObservedSeqNum: 20000, LastCheckpoint: 20000}, final.State)
	cp, err := e.log.LastCheckpoint(ctx, "orders")
	require.NoError(t, err)
	assert.EqualValues(t, 20000, cp, "stop stores the final checkpoint in the event log")

	events := e.history(id, run.GetRunID())
	t.Logf("history: %d events for 20000 events delivered (%.1f per 10000)", len(events.Events), float64(len(events.Events))/2)
	if path := os.Getenv("SEQRELAY_RECORD_HISTORY"); path != "" && store == "sqlite" {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(events)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, b, 0o644))
		t.Logf("recorded the history in %s", path)
	}
}

func (e *e2e) history(id, runID string) *historypb.History {
	it := e.c.GetWorkflowHistory(context.Background(), id, runID, false, 0)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(e.t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

func TestInvalidInputFailsTheWorkflow(t *testing.T) {
	e := newE2E(t, "sqlite")
	defer e.startWorker()()
	ctx := context.Background()
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bad", TaskQueue: taskQueue},
		workflows.WorkflowName, json.RawMessage(`{"DispatcherID": "orders", "Config": {"StallTimeout": "1s"}}`))
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid config: StallCheckInterval is 30s: must be less than StallTimeout (1s)")
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	_, err := worker.New(nil, worker.Options{})
	assert.ErrorContains(t, err, "Temporal client is nil")
}
