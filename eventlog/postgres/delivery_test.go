package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/internal/verify"
)

func appendN(t *testing.T, l eventlog.Log, prefix string, n int) []uint64 {
	t.Helper()
	evs := make([]eventlog.Event, n)
	for i := range evs {
		evs[i] = eventlog.Event{Type: "order.created", Payload: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	seqs, err := l.Append(ctx(t), evs...)
	require.NoError(t, err)
	return seqs
}

// TestDispatcherFlow: a dispatcher delivers from PostgreSQL, checkpoints,
// and a new dispatcher resumes after the checkpoint.
func TestDispatcherFlow(t *testing.T) {
	d := newDB(t)
	l := d.open()
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())
	seqs := appendN(t, l, "a", 200)
	assert.Equal(t, uint64(1), seqs[0])
	assert.Equal(t, uint64(200), seqs[199])
	waitAcked(t, disp, 200)
	waitFor(t, "checkpoint 200", func() bool { return disp.State().LastCheckpoint == 200 })
	require.NoError(t, disp.Stop(ctx(t)))
	cp, err := l.LastCheckpoint(ctx(t), "orders")
	require.NoError(t, err)
	assert.EqualValues(t, 200, cp)

	appendN(t, l, "b", 3)
	disp2 := r.dispatcher(l, "orders", testConfig())
	assert.EqualValues(t, 200, disp2.State().LastCheckpoint)
	waitAcked(t, disp2, 203)
	assert.EqualValues(t, 3, disp2.Status().Published)
	msgs := r.messages()
	assert.Equal(t, natstest.Range(1, 203), natstest.Seqs(msgs))
	assert.Equal(t, "a-0", string(msgs[0].Data))
	assert.Equal(t, "b-2", string(msgs[202].Data))
	assert.Equal(t, "seqrelay.events.order.created", msgs[0].Subject)
}

// TestNotificationsWakeTheDispatcher: the dispatcher polls once an hour, so
// only NOTIFY can bring it events appended through another Log value (as by
// another process). After its connections are killed, the listener
// reconnects and notifications flow again.
func TestNotificationsWakeTheDispatcher(t *testing.T) {
	d := newDB(t)
	reader := d.open()
	writer := d.open()
	r := newRelay(t)
	cfg := testConfig()
	cfg.ProcessInterval = time.Hour
	disp := r.dispatcher(reader, "orders", cfg)

	pool := d.pool()
	commitOne := func(payload string) {
		tx, err := pool.Begin(ctx(t))
		require.NoError(t, err)
		require.NoError(t, writer.AppendTx(ctx(t), tx, eventlog.Event{Type: "t", Payload: []byte(payload)}))
		require.NoError(t, tx.Commit(ctx(t)))
	}
	commitOne("1")
	waitAcked(t, disp, 1)

	require.NotZero(t, d.killConns())
	waitFor(t, "the listener to reconnect", d.listening)
	commitOne("2") // found by NOTIFY, or by the read that follows a failed one
	waitAcked(t, disp, 2)
	waitFor(t, "the dispatcher to recover", func() bool { return !disp.Status().Recovering })
	commitOne("3") // only NOTIFY can bring this one
	waitAcked(t, disp, 3)
	assert.Equal(t, []uint64{1, 2, 3}, natstest.Seqs(r.messages()))
}

// TestConcurrentWriters: 8 writers append 10000 events in small random
// transactions, through pgx, database/sql and Log.Append, rolling some back,
// while a dispatcher delivers. Every committed event arrives once, in a
// gap-free sequence 1..N, and no rolled-back one does.
func TestConcurrentWriters(t *testing.T) {
	d := newDB(t)
	l := d.open(postgres.WithMaxConns(12))
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())
	pool := d.pool()
	sqlDB := d.sqlDB()

	const writers, total = 8, 10000
	var (
		mu         sync.Mutex
		committed  = map[string]bool{}
		rolledBack = map[string]bool{}
		wg         sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i, attempt := 0, 0; i < total/writers; attempt++ {
				n := min(1+rng.IntN(5), total/writers-i)
				evs := make([]eventlog.Event, n)
				for j := range evs {
					evs[j] = eventlog.Event{Type: "w", Payload: fmt.Appendf(nil, "%d-%d-%d", w, attempt, j)}
				}
				commit := rng.IntN(10) != 0
				var err error
				switch w % 3 {
				case 0:
					err = pgxTx(ctx(t), pool, l, commit, evs)
				case 1:
					err = sqlTx(ctx(t), sqlDB, l, commit, evs)
				default:
					commit = true
					_, err = l.Append(ctx(t), evs...)
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, e := range evs {
					if commit {
						committed[string(e.Payload)] = true
					} else {
						rolledBack[string(e.Payload)] = true
					}
				}
				mu.Unlock()
				if commit {
					i += n
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, committed, total)
	require.NotEmpty(t, rolledBack)

	waitAcked(t, disp, total)
	rep, err := verify.Stream(ctx(t), r.js(), stream)
	require.NoError(t, err)
	assert.True(t, rep.ExactlyOnce(1, total), rep.String())
	delivered := map[string]bool{}
	for _, m := range r.messages() {
		p := string(m.Data)
		assert.False(t, delivered[p], "delivered twice: %s", p)
		assert.False(t, rolledBack[p], "rolled back, yet delivered: %s", p)
		delivered[p] = true
	}
	assert.Equal(t, committed, delivered)
	head, err := l.Head(ctx(t))
	require.NoError(t, err)
	assert.EqualValues(t, total, head)
}

func pgxTx(ctx context.Context, pool *pgxpool.Pool, l *postgres.Log, commit bool, evs []eventlog.Event) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := l.AppendTx(ctx, tx, evs...); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return tx.Rollback(ctx)
}

func sqlTx(ctx context.Context, db *sql.DB, l *postgres.Log, commit bool, evs []eventlog.Event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := l.AppendSQLTx(ctx, tx, evs...); err != nil {
		return err
	}
	if commit {
		return tx.Commit()
	}
	return tx.Rollback()
}

// TestConnectionsKilledDuringDelivery: every connection of the test (the
// dispatcher's reads and checkpoints, the listener, the writer) is killed
// again and again while events are appended and delivered. The dispatcher
// recovers; every event whose append succeeded arrives once, the sequence
// has no gap, and nothing arrives that was not appended.
func TestConnectionsKilledDuringDelivery(t *testing.T) {
	d := newDB(t)
	l := d.open()
	writer := d.open()
	appendN(t, l, "pre", 3000)
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())

	const kills = 40
	terminated := 0
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for range kills {
			time.Sleep(30 * time.Millisecond) // pacing only: the checks do not depend on it
			terminated += d.killConns()
		}
	}()
	ok, maybe := appendThroughFailures(t, writer, 500, killed)
	t.Logf("%d kills terminated %d connections; %d appends succeeded, %d failed", kills, terminated, len(ok), len(maybe))
	require.Greater(t, terminated, 10, "connections were killed during delivery")

	assertDeliveredOnce(t, l, r, disp, ok, maybe, 3000)
}

// appendThroughFailures appends small batches, each event with a unique
// payload, until at least n succeeded and done is closed. It returns the
// payloads whose append succeeded, and those whose append failed (they may
// or may not have committed).
func appendThroughFailures(t *testing.T, l *postgres.Log, n int, done <-chan struct{}) (ok, maybe map[string]bool) {
	t.Helper()
	ok, maybe = map[string]bool{}, map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; ; i++ {
		select {
		case <-done:
			if len(ok) >= n {
				return ok, maybe
			}
		default:
		}
		require.True(t, time.Now().Before(deadline), "appends kept failing: %d of %d succeeded", len(ok), n)
		evs := make([]eventlog.Event, 3)
		for j := range evs {
			evs[j] = eventlog.Event{Type: "w", Payload: fmt.Appendf(nil, "w-%d-%d", i, j)}
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := l.Append(c, evs...)
		cancel()
		for _, e := range evs {
			if err == nil {
				ok[string(e.Payload)] = true
			} else {
				maybe[string(e.Payload)] = true
			}
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // gentler on a server that is down; not a wait for a condition
		}
	}
}

// assertDeliveredOnce waits until the dispatcher has delivered the whole
// log, then checks the stream: 1..head once each, every ok payload there,
// and nothing but ok, maybe and the pre-appended ones.
func assertDeliveredOnce(t *testing.T, l *postgres.Log, r *relay, disp *dispatcher.Dispatcher, ok, maybe map[string]bool, pre int) {
	t.Helper()
	var head uint64
	waitFor(t, "the head to be readable", func() bool {
		h, err := l.Head(ctx(t))
		head = h
		return err == nil
	})
	waitAcked(t, disp, head)
	rep, err := verify.Stream(ctx(t), r.js(), stream)
	require.NoError(t, err)
	require.True(t, rep.ExactlyOnce(1, head), rep.String())
	delivered := map[string]bool{}
	for _, m := range r.messages() {
		delivered[string(m.Data)] = true
	}
	for p := range ok {
		assert.True(t, delivered[p], "appended, yet not delivered: %s", p)
	}
	for i := range pre {
		assert.True(t, delivered[fmt.Sprintf("pre-%d", i)], "pre-%d not delivered", i)
	}
	for p := range delivered {
		var pi int
		if _, err := fmt.Sscanf(p, "pre-%d", &pi); err == nil {
			continue
		}
		assert.True(t, ok[p] || maybe[p], "delivered, yet never appended: %s", p)
	}
	assert.False(t, disp.Status().Halted, disp.Status().LastError)
}

// TestServerRestart restarts the PostgreSQL server while events are
// appended and delivered. It disturbs every other user of the server, so it
// runs only with SEQRELAY_TEST_PG_RESTART=1 (CI runs it in a step of its own).
func TestServerRestart(t *testing.T) {
	if os.Getenv("SEQRELAY_TEST_PG_RESTART") != "1" {
		t.Skip("restarts the PostgreSQL server: run with SEQRELAY_TEST_PG_RESTART=1 (alone: it disturbs other tests)")
	}
	versions, err := os.ReadDir("/etc/postgresql")
	require.NoError(t, err)
	require.Len(t, versions, 1, "one PostgreSQL cluster version in /etc/postgresql")
	version := versions[0].Name()

	d := newDB(t)
	l := d.open()
	writer := d.open()
	appendN(t, l, "pre", 2000)
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())

	restarted := make(chan struct{})
	var restartErr error
	go func() {
		defer close(restarted)
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart").CombinedOutput()
		if err != nil {
			restartErr = fmt.Errorf("pg_ctlcluster restart: %w: %s", err, out)
		}
	}()
	ok, maybe := appendThroughFailures(t, writer, 500, restarted)
	require.NoError(t, restartErr)
	t.Logf("%d appends succeeded, %d failed", len(ok), len(maybe))
	waitFor(t, "the listener to reconnect", d.listening)
	more := appendN(t, writer, "post", 1)
	waitAcked(t, disp, more[0])
	ok["post-0"] = true
	assertDeliveredOnce(t, l, r, disp, ok, maybe, 2000)
}

// TestPollingWithoutTheTrigger: with the NOTIFY trigger disabled (as the
// package doc suggests for many concurrent writers), dispatchers still find
// events by polling.
func TestPollingWithoutTheTrigger(t *testing.T) {
	d := newDB(t)
	l := d.open()
	d.admin(`ALTER TABLE ` + pgx.Identifier{d.schema, "seqrelay_events"}.Sanitize() + ` DISABLE TRIGGER seqrelay_events_notify`)
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())
	require.NoError(t, pgxTx(ctx(t), d.pool(), l, true, []eventlog.Event{{Type: "t", Payload: []byte("polled")}}))
	waitAcked(t, disp, 1)
	assert.Equal(t, "polled", string(r.messages()[0].Data))
}
